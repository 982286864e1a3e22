import { z } from 'zod';
import {
  zCollectorMode,
  zInt,
  zInterval,
  zTimeout,
  setting,
  zPath,
} from '../../agent/config-schema.js';

/** Settings of the kernel log collector (config key `collectors.kmsg`). */
export const kmsgConfigSchema = z
  .object({
    /** `/dev/kmsg`, or a regular file in kmsg record format that something appends to. */
    path: setting(zPath().default('/dev/kmsg'), {
      env: 'GPULSE_KMSG',
      flag: 'kmsg',
      description:
        'kernel log for Xid errors: /dev/kmsg or a file in kmsg record format (default /dev/kmsg)',
    }),
    /** auto: read it when readable, else say so once; required: unreadable is an error; off. */
    mode: setting(zCollectorMode.default('auto'), {
      env: 'GPULSE_KMSG_MODE',
      description: 'read Xid errors from the kernel log (auto: unreadable is not an error)',
    }),
    /** How often new records are read. */
    interval: setting(zInterval(100).default(1000), {
      env: 'GPULSE_KMSG_INTERVAL',
      description: 'how often new kernel log records are read (default 1s)',
    }),
    /** Limit for one read. */
    timeout: setting(zTimeout().default(10_000), {
      env: 'GPULSE_KMSG_TIMEOUT',
      description: 'limit for one kernel log read (default 10s)',
    }),
    /**
     * Distinct (GPU, Xid) pairs counted at most; Xids of further pairs are dropped and counted
     * (gpulse_kmsg_xids_dropped_total). A real host has a few GPUs and a handful of Xid codes.
     */
    maxXidSeries: setting(zInt({ min: 1, max: 100_000 }).default(512), {
      env: 'GPULSE_KMSG_MAX_XID_SERIES',
      description:
        'distinct (GPU, Xid) pairs counted at most; further ones are dropped and counted (default 512)',
    }),
  })
  .strict();

/** Parsed kmsg collector settings. */
export type KmsgConfig = z.infer<typeof kmsgConfigSchema>;
