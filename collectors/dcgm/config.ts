import { z } from 'zod';
import { zCollectorMode, zDuration, zInt, type SettingBinding } from '../../agent/config-schema.js';

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
    interval: zDuration({ min: 100 }).default(5000),
    /** Limit for one-shot calls (`dcgmi discovery -l`). */
    timeout: zDuration({ min: 100 }).default(10_000),
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

/** Environment variables and flags of the DCGM collector. */
export const dcgmSettings: readonly SettingBinding[] = [
  {
    path: ['collectors', 'dcgm', 'binary'],
    env: 'GPULSE_DCGMI',
    flag: 'dcgmi',
    valueName: 'PATH',
    description: 'dcgmi binary (default: dcgmi on PATH)',
  },
  {
    path: ['collectors', 'dcgm', 'mode'],
    env: 'GPULSE_DCGM_MODE',
    flag: 'dcgm-mode',
    valueName: 'auto|required|off',
    description: 'run the DCGM collector (auto: no host engine is not an error)',
  },
  {
    path: ['collectors', 'dcgm', 'host'],
    env: 'GPULSE_DCGM_HOST',
    valueName: 'HOST',
    description: 'DCGM host engine address for dcgmi --host (default localhost)',
  },
  {
    path: ['collectors', 'dcgm', 'interval'],
    env: 'GPULSE_DCGM_INTERVAL',
    valueName: 'DURATION',
    description: 'DCGM sampling interval (default 5s)',
  },
  {
    path: ['collectors', 'dcgm', 'timeout'],
    env: 'GPULSE_DCGM_TIMEOUT',
    valueName: 'DURATION',
    description: 'limit for dcgmi discovery -l (default 10s)',
  },
  {
    path: ['collectors', 'dcgm', 'stallIntervals'],
    env: 'GPULSE_DCGM_STALL_INTERVALS',
    valueName: 'N',
    description: 'the dmon stream is restarted when silent for N intervals (default 3)',
  },
  {
    path: ['collectors', 'dcgm', 'fields'],
    env: 'GPULSE_DCGM_FIELDS',
    valueName: 'NAMES',
    list: true,
    description: 'comma-separated DCGM field names to watch (default: the whole catalogue)',
  },
  {
    path: ['collectors', 'dcgm', 'profiling'],
    env: 'GPULSE_DCGM_PROFILING',
    valueName: 'auto|off',
    description:
      'watch DCGM profiling fields (SM/tensor/DRAM activity) where supported (default auto)',
  },
];
