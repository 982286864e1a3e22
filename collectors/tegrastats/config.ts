import { z } from 'zod';
import { zCollectorMode, zInt, zInterval, zTimeout } from '../../agent/config-schema.js';

/** Settings of the tegrastats collector (config key `collectors.tegrastats`). */
export const tegrastatsConfigSchema = z
  .object({
    /** auto: run, report no_data where there is no tegrastats (not a Jetson); required; off. */
    mode: zCollectorMode.default('auto'),
    /** Path or name (looked up on PATH) of tegrastats. */
    binary: z.string().min(1).default('tegrastats'),
    /** `tegrastats --interval`: one line per interval. */
    interval: zInterval(100).default(5000),
    /** A silent tegrastats is killed and restarted after this many intervals. */
    stallIntervals: zInt({ min: 2, max: 100 }).default(3),
    /** Root under which /proc/device-tree and /etc/nv_tegra_release are read (e.g. /host). */
    root: z.string().min(1).default('/'),
    /** Module name for `gpulse_gpu_info{name}`; default: /proc/device-tree/model. */
    model: z.string().min(1).optional(),
    /** GPU identity (`uuid` label); default: nvidia-smi's UUID of the GPU, else the serial number. */
    uuid: z.string().min(1).optional(),
    /** Limit for the one-shot `nvidia-smi -L` asked for the GPU's UUID. */
    timeout: zTimeout().default(10_000),
  })
  .strict();

/** Parsed tegrastats collector settings. */
export type TegrastatsConfig = z.infer<typeof tegrastatsConfigSchema>;
