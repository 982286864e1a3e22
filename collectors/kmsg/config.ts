import { z } from 'zod';
import { zCollectorMode, zDuration, type SettingBinding } from '../../agent/config-schema.js';

/** Settings of the kernel log collector (config key `collectors.kmsg`). */
export const kmsgConfigSchema = z
  .object({
    /** auto: read it when readable, else say so once; required: unreadable is an error; off. */
    mode: zCollectorMode.default('auto'),
    /** `/dev/kmsg`, or a regular file in kmsg record format that something appends to. */
    path: z.string().min(1).default('/dev/kmsg'),
    /** How often new records are read. */
    interval: zDuration({ min: 100 }).default(1000),
    /** Limit for one read. */
    timeout: zDuration({ min: 100 }).default(10_000),
  })
  .strict();

/** Parsed kmsg collector settings. */
export type KmsgConfig = z.infer<typeof kmsgConfigSchema>;

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
];
