import { z } from 'zod';
import { zDuration, type SettingBinding } from '../../agent/config-schema.js';

/** Settings of the host collector (config key `collectors.host`). */
export const hostConfigSchema = z
  .object({
    mode: z.enum(['auto', 'off']).default('auto'),
    interval: zDuration({ min: 1000 }).default(15_000),
    timeout: zDuration({ min: 100 }).default(10_000),
    /** The host's /proc for this collector only; unset, the agent-wide `procRoot` applies. */
    procRoot: z.string().min(1).optional(),
    /** The host's /sys, for temperature sensors. */
    sysRoot: z.string().min(1).default('/sys'),
    /** Where the host's root filesystem is mounted, for filesystem sizes (node_exporter's --path.rootfs). */
    rootfs: z.string().min(1).default('/'),
  })
  .strict();

/** Parsed host collector settings. */
export type HostConfig = z.infer<typeof hostConfigSchema>;

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
