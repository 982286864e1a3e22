/** Environment variables and flags of these settings: plain data the CLI reads without loading zod. */
import type { SettingBinding } from '../../agent/config-schema.js';

/** Environment variables and flags of the host collector. */
export const hostSettings: readonly SettingBinding[] = [
  {
    path: ['collectors', 'host', 'mode'],
    env: 'GPULSE_HOST_MODE',
    valueName: 'auto|off',
    description: 'host CPU, memory, disk and network collector',
  },
  {
    path: ['collectors', 'host', 'interval'],
    env: 'GPULSE_HOST_INTERVAL',
    valueName: 'DURATION',
    description: 'host collector interval (default 15s)',
  },
  {
    path: ['collectors', 'host', 'timeout'],
    env: 'GPULSE_HOST_TIMEOUT',
    valueName: 'DURATION',
    description: 'limit for one host collection (default 10s)',
  },
  {
    path: ['collectors', 'host', 'procRoot'],
    env: 'GPULSE_HOST_PROC_ROOT',
    valueName: 'DIR',
    description: "the host's /proc for host series only (default: the agent-wide procRoot)",
  },
  {
    path: ['collectors', 'host', 'sysRoot'],
    env: 'GPULSE_HOST_SYS_ROOT',
    valueName: 'DIR',
    description: "the host's /sys, for temperatures (default /sys)",
  },
  {
    path: ['collectors', 'host', 'rootfs'],
    env: 'GPULSE_HOST_ROOTFS',
    valueName: 'DIR',
    description: "where the host's / is mounted, for filesystem sizes (default /)",
  },
];
