import { z } from 'zod';
import { zCollectorMode, zInterval, zTimeout } from '../../agent/config-schema.js';

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
  })
  .strict();

/** Parsed kmsg collector settings. */
export type KmsgConfig = z.infer<typeof kmsgConfigSchema>;
