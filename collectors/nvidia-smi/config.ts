import { z } from 'zod';
import { zCollectorMode, zInt, zInterval, zTimeout } from '../../agent/config-schema.js';

/** Settings of the nvidia-smi collector (config key `collectors.nvidia-smi`). */
export const nvidiaSmiConfigSchema = z
  .object({
    /** auto: run, report no_data without a GPU; required: a missing GPU is an error; off. */
    mode: zCollectorMode.default('auto'),
    /** Path or name (looked up on PATH) of nvidia-smi. */
    binary: z.string().min(1).default('nvidia-smi'),
    /** Sampling interval of the long-lived --query-gpu and --query-compute-apps streams. */
    interval: zInterval(100).default(5000),
    /** Interval of the `-q -x` stream for what the CSV lacks (MIG, retired pages); 0 turns it off. */
    xmlInterval: zInterval(0).default(60_000),
    /** Per-process GPU memory from --query-compute-apps. */
    processes: z.enum(['on', 'off']).default('on'),
    /** Per-process GPU utilization from a long-lived `nvidia-smi pmon` (per-container GPU use). */
    pmon: z.enum(['on', 'off']).default('on'),
    /** Limit for one-shot calls (--help-query-gpu, -L). */
    timeout: zTimeout().default(10_000),
    /** A stream silent for this many intervals is killed and restarted (hung driver). */
    stallIntervals: zInt({ min: 2, max: 100 }).default(3),
    /** Query fields never requested, as globs (e.g. "remapped_rows.histogram.*"). */
    excludeFields: z.array(z.string()).default([]),
  })
  .strict();

/** Parsed nvidia-smi collector settings. */
export type NvidiaSmiConfig = z.infer<typeof nvidiaSmiConfigSchema>;
