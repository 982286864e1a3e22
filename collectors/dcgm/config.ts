import { z } from 'zod';
import {
  zCollectorMode,
  zInterval,
  zTimeout,
  setting,
  zPath,
  zStallIntervals,
} from '../../agent/config-schema.js';

/** Settings of the DCGM collector (config key `collectors.dcgm`). */
export const dcgmConfigSchema = z
  .object({
    /** Path or name (looked up on PATH) of dcgmi. */
    binary: setting(zPath().default('dcgmi'), {
      env: 'GPULSE_DCGMI',
      flag: 'dcgmi',
      description: 'dcgmi binary (default: dcgmi on PATH)',
    }),
    /** auto: run when a host engine answers, else say so once; required: its absence is an error; off. */
    mode: setting(zCollectorMode.default('auto'), {
      env: 'GPULSE_DCGM_MODE',
      flag: 'dcgm-mode',
      description: 'run the DCGM collector (auto: no host engine is not an error)',
    }),
    /** Host engine to ask (`dcgmi --host`): `localhost`, `host:port` or a unix socket path. */
    host: setting(z.string().min(1).default('localhost'), {
      env: 'GPULSE_DCGM_HOST',
      valueName: 'HOST',
      description: 'DCGM host engine address for dcgmi --host (default localhost)',
    }),
    /** Sampling interval of the long-lived `dcgmi dmon` stream. */
    interval: setting(zInterval(100).default(5000), {
      env: 'GPULSE_DCGM_INTERVAL',
      description: 'DCGM sampling interval (default 5s)',
    }),
    /** Limit for one-shot calls (`dcgmi discovery -l`). */
    timeout: setting(zTimeout().default(10_000), {
      env: 'GPULSE_DCGM_TIMEOUT',
      description: 'limit for dcgmi discovery -l (default 10s)',
    }),
    /** The stream is killed and restarted when silent this many intervals. */
    stallIntervals: setting(zStallIntervals(), {
      env: 'GPULSE_DCGM_STALL_INTERVALS',
      description: 'the dmon stream is restarted when silent for N intervals (default 3)',
    }),
    /** DCGM field names to watch; empty: every field of the catalogue. */
    fields: setting(z.array(z.string().regex(/^DCGM_FI_\w+$/)).default([]), {
      env: 'GPULSE_DCGM_FIELDS',
      valueName: 'NAMES',
      description: 'comma-separated DCGM field names to watch (default: the whole catalogue)',
      list: true,
    }),
    /** auto: watch profiling (DCP) fields, and drop them when the GPUs do not support them; off. */
    profiling: setting(z.enum(['auto', 'off']).default('auto'), {
      env: 'GPULSE_DCGM_PROFILING',
      description:
        'watch DCGM profiling fields (SM/tensor/DRAM activity) where supported (default auto)',
    }),
  })
  .strict();

/** Parsed DCGM collector settings. */
export type DcgmConfig = z.infer<typeof dcgmConfigSchema>;
