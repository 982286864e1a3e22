import { z } from 'zod';
import {
  zCollectorMode,
  zInterval,
  zTimeout,
  setting,
  zPath,
  zStallIntervals,
} from '../../agent/config-schema.js';

/** Settings of the nvidia-smi collector (config key `collectors.nvidia-smi`). */
export const nvidiaSmiConfigSchema = z
  .object({
    /** Path or name (looked up on PATH) of nvidia-smi. */
    binary: setting(zPath().default('nvidia-smi'), {
      env: 'GPULSE_NVIDIA_SMI',
      flag: 'nvidia-smi',
      description: 'nvidia-smi binary (default: nvidia-smi on PATH)',
    }),
    /** auto: run, report no_data without a GPU; required: a missing GPU is an error; off. */
    mode: setting(zCollectorMode.default('auto'), {
      env: 'GPULSE_NVIDIA_SMI_MODE',
      flag: 'nvidia-smi-mode',
      description: 'run the nvidia-smi collector (auto: no GPU is not an error)',
    }),
    /** Sampling interval of the long-lived --query-gpu and --query-compute-apps streams. */
    interval: setting(zInterval(100).default(5000), {
      env: 'GPULSE_NVIDIA_SMI_INTERVAL',
      flag: 'interval',
      description: 'GPU sampling interval (default 5s)',
    }),
    /** Interval of the `-q -x` stream for what the CSV lacks (MIG, retired pages); 0 turns it off. */
    xmlInterval: setting(zInterval(0).default(60_000), {
      env: 'GPULSE_NVIDIA_SMI_XML_INTERVAL',
      flag: 'xml-interval',
      description:
        'interval of `nvidia-smi -q -x` for MIG and retired pages; 0 = off (default 60s)',
    }),
    /** Per-process GPU memory from --query-compute-apps. */
    processes: setting(z.enum(['on', 'off']).default('on'), {
      env: 'GPULSE_NVIDIA_SMI_PROCESSES',
      description: 'per-process GPU memory (default on)',
    }),
    /** Limit for one-shot calls (--help-query-gpu, -L). */
    timeout: setting(zTimeout().default(10_000), {
      env: 'GPULSE_NVIDIA_SMI_TIMEOUT',
      description: 'limit for one-shot calls such as --help-query-gpu (default 10s)',
    }),
    /** A stream silent for this many intervals is killed and restarted (hung driver). */
    stallIntervals: setting(zStallIntervals(), {
      env: 'GPULSE_NVIDIA_SMI_STALL_INTERVALS',
      description: 'a stream silent for N intervals is killed and restarted (default 3)',
    }),
    /** Per-process GPU utilization from a long-lived `nvidia-smi pmon` (per-container GPU use). */
    pmon: setting(z.enum(['on', 'off']).default('on'), {
      env: 'GPULSE_NVIDIA_SMI_PMON',
      description: 'per-process GPU utilization from nvidia-smi pmon (default on)',
    }),
    /** Query fields never requested, as globs (e.g. "remapped_rows.histogram.*"). */
    excludeFields: setting(z.array(z.string()).default([]), {
      env: 'GPULSE_NVIDIA_SMI_EXCLUDE_FIELDS',
      valueName: 'GLOBS',
      description: 'comma-separated --query-gpu fields never requested',
      list: true,
    }),
  })
  .strict();

/** Parsed nvidia-smi collector settings. */
export type NvidiaSmiConfig = z.infer<typeof nvidiaSmiConfigSchema>;
