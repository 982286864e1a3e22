import { z } from 'zod';
import { zCollectorMode, zDuration, zInt, type SettingBinding } from '../../agent/config-schema.js';

/** Settings of the nvidia-smi collector (config key `collectors.nvidia-smi`). */
export const nvidiaSmiConfigSchema = z
  .object({
    /** auto: run, report no_data without a GPU; required: a missing GPU is an error; off. */
    mode: zCollectorMode.default('auto'),
    /** Path or name (looked up on PATH) of nvidia-smi. */
    binary: z.string().min(1).default('nvidia-smi'),
    /** Sampling interval of the long-lived --query-gpu and --query-compute-apps streams. */
    interval: zDuration({ min: 100 }).default(5000),
    /** Interval of the `-q -x` stream for what the CSV lacks (MIG, retired pages); 0 turns it off. */
    xmlInterval: zDuration().default(60_000),
    /** Per-process GPU memory from --query-compute-apps. */
    processes: z.enum(['on', 'off']).default('on'),
    /** Per-process GPU utilization from a long-lived `nvidia-smi pmon` (per-container GPU use). */
    pmon: z.enum(['on', 'off']).default('on'),
    /** Limit for one-shot calls (--help-query-gpu, -L). */
    timeout: zDuration({ min: 100 }).default(10_000),
    /** A stream silent for this many intervals is killed and restarted (hung driver). */
    stallIntervals: zInt({ min: 2, max: 100 }).default(3),
    /** Query fields never requested, as globs (e.g. "remapped_rows.histogram.*"). */
    excludeFields: z.array(z.string()).default([]),
  })
  .strict();

/** Parsed nvidia-smi collector settings. */
export type NvidiaSmiConfig = z.infer<typeof nvidiaSmiConfigSchema>;

/** Environment variables and flags of the nvidia-smi collector. */
export const nvidiaSmiSettings: readonly SettingBinding[] = [
  {
    path: ['collectors', 'nvidia-smi', 'binary'],
    env: 'GPULSE_NVIDIA_SMI',
    flag: 'nvidia-smi',
    valueName: 'PATH',
    description: 'nvidia-smi binary (default: nvidia-smi on PATH)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'mode'],
    env: 'GPULSE_NVIDIA_SMI_MODE',
    flag: 'nvidia-smi-mode',
    valueName: 'auto|required|off',
    description: 'run the nvidia-smi collector (auto: no GPU is not an error)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'interval'],
    env: 'GPULSE_NVIDIA_SMI_INTERVAL',
    flag: 'interval',
    valueName: 'DURATION',
    description: 'GPU sampling interval (default 5s)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'xmlInterval'],
    env: 'GPULSE_NVIDIA_SMI_XML_INTERVAL',
    flag: 'xml-interval',
    valueName: 'DURATION',
    description: 'interval of `nvidia-smi -q -x` for MIG and retired pages; 0 = off (default 60s)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'processes'],
    env: 'GPULSE_NVIDIA_SMI_PROCESSES',
    valueName: 'on|off',
    description: 'per-process GPU memory (default on)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'timeout'],
    env: 'GPULSE_NVIDIA_SMI_TIMEOUT',
    valueName: 'DURATION',
    description: 'limit for one-shot calls such as --help-query-gpu (default 10s)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'stallIntervals'],
    env: 'GPULSE_NVIDIA_SMI_STALL_INTERVALS',
    valueName: 'N',
    description: 'a stream silent for N intervals is killed and restarted (default 3)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'pmon'],
    env: 'GPULSE_NVIDIA_SMI_PMON',
    valueName: 'on|off',
    description: 'per-process GPU utilization from nvidia-smi pmon (default on)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'excludeFields'],
    env: 'GPULSE_NVIDIA_SMI_EXCLUDE_FIELDS',
    valueName: 'GLOBS',
    list: true,
    description: 'comma-separated --query-gpu fields never requested',
  },
];
