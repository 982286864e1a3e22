import { z } from 'zod';
import { zCollectorMode, zInt, zInterval, zTimeout } from '../../agent/config-schema.js';

/** Settings of the DCGM collector (config key `collectors.dcgm`). */
export const dcgmConfigSchema = z
  .object({
    /** auto: run when a host engine answers, else say so once; required: its absence is an error; off. */
    mode: zCollectorMode.default('auto'),
    /** Path or name (looked up on PATH) of dcgmi. */
    binary: z.string().min(1).default('dcgmi'),
    /** Host engine to ask (`dcgmi --host`): `localhost`, `host:port` or a unix socket path. */
    host: z.string().min(1).default('localhost'),
    /** Sampling interval of the long-lived `dcgmi dmon` stream. */
    interval: zInterval(100).default(5000),
    /** Limit for one-shot calls (`dcgmi discovery -l`). */
    timeout: zTimeout().default(10_000),
    /** The stream is killed and restarted when silent this many intervals. */
    stallIntervals: zInt({ min: 2, max: 100 }).default(3),
    /** DCGM field names to watch; empty: every field of the catalogue. */
    fields: z.array(z.string().regex(/^DCGM_FI_\w+$/)).default([]),
    /** auto: watch profiling (DCP) fields, and drop them when the GPUs do not support them; off. */
    profiling: z.enum(['auto', 'off']).default('auto'),
  })
  .strict();

/** Parsed DCGM collector settings. */
export type DcgmConfig = z.infer<typeof dcgmConfigSchema>;
