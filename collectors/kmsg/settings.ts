/** Environment variables and flags of these settings: plain data the CLI reads without loading zod. */
import type { SettingBinding } from '../../agent/config-schema.js';

/** Environment variables and flags of the kmsg collector. */
export const kmsgSettings: readonly SettingBinding[] = [
  {
    path: ['collectors', 'kmsg', 'path'],
    env: 'GPULSE_KMSG',
    flag: 'kmsg',
    valueName: 'PATH',
    description:
      'kernel log for Xid errors: /dev/kmsg or a file in kmsg record format (default /dev/kmsg)',
  },
  {
    path: ['collectors', 'kmsg', 'mode'],
    env: 'GPULSE_KMSG_MODE',
    valueName: 'auto|required|off',
    description: 'read Xid errors from the kernel log (auto: unreadable is not an error)',
  },
  {
    path: ['collectors', 'kmsg', 'interval'],
    env: 'GPULSE_KMSG_INTERVAL',
    valueName: 'DURATION',
    description: 'how often new kernel log records are read (default 1s)',
  },
  {
    path: ['collectors', 'kmsg', 'timeout'],
    env: 'GPULSE_KMSG_TIMEOUT',
    valueName: 'DURATION',
    description: 'limit for one kernel log read (default 10s)',
  },
  {
    path: ['collectors', 'kmsg', 'maxXidSeries'],
    env: 'GPULSE_KMSG_MAX_XID_SERIES',
    valueName: 'N',
    description:
      'distinct (GPU, Xid) pairs counted at most; further ones are dropped and counted (default 512)',
  },
];
