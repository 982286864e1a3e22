import { z } from 'zod';
import { zCollectorMode, zInt, zInterval, zTimeout } from '../../agent/config-schema.js';

/** Settings of the kernel log collector (config key `collectors.kmsg`). */
export const kmsgConfigSchema = z
  .object({
    /** auto: read it when readable, else say so once; required: unreadable is an error; off. */
    mode: zCollectorMode.default('auto'),
    /** `/dev/kmsg`, or a regular file in kmsg record format that something appends to. */
    path: z.string().min(1).default('/dev/kmsg'),
    /** How often new records are read. */
    interval: zInterval(100).default(1000),
    /** Limit for one read. */
    timeout: zTimeout().default(10_000),
    /**
     * Distinct (GPU, Xid) pairs counted at most; Xids of further pairs are dropped and counted
     * (gpulse_kmsg_xids_dropped_total). A real host has a few GPUs and a handful of Xid codes.
     */
    maxXidSeries: zInt({ min: 1, max: 100_000 }).default(512),
  })
  .strict();

/** Parsed kmsg collector settings. */
export type KmsgConfig = z.infer<typeof kmsgConfigSchema>;
