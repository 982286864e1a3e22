import { z } from 'zod';
import {
  zCollectorMode,
  zInterval,
  zTimeout,
  setting,
  zDir,
  zPath,
  zStallIntervals,
} from '../../agent/config-schema.js';

/** Settings of the tegrastats collector (config key `collectors.tegrastats`). */
export const tegrastatsConfigSchema = z
  .object({
    /** Path or name (looked up on PATH) of tegrastats. */
    binary: setting(zPath().default('tegrastats'), {
      env: 'GPULSE_TEGRASTATS',
      flag: 'tegrastats',
      description: 'tegrastats binary (default: tegrastats on PATH)',
    }),
    /** auto: run, report no_data where there is no tegrastats (not a Jetson); required; off. */
    mode: setting(zCollectorMode.default('auto'), {
      env: 'GPULSE_TEGRASTATS_MODE',
      flag: 'tegrastats-mode',
      description: 'run the Jetson tegrastats collector (auto: no tegrastats is not an error)',
    }),
    /** `tegrastats --interval`: one line per interval. */
    interval: setting(zInterval(100).default(5000), {
      env: 'GPULSE_TEGRASTATS_INTERVAL',
      flag: 'tegrastats-interval',
      description: 'Jetson sampling interval, tegrastats --interval (default 5s)',
    }),
    /** A silent tegrastats is killed and restarted after this many intervals. */
    stallIntervals: setting(zStallIntervals(), {
      env: 'GPULSE_TEGRASTATS_STALL_INTERVALS',
      description: 'tegrastats silent for N intervals is killed and restarted (default 3)',
    }),
    /** Root under which /proc/device-tree and /etc/nv_tegra_release are read (e.g. /host). */
    root: setting(zDir().default('/'), {
      env: 'GPULSE_TEGRASTATS_ROOT',
      description: 'root of /proc/device-tree and /etc/nv_tegra_release (a container: /host)',
    }),
    /** Module name for `gpulse_gpu_info{name}`; default: /proc/device-tree/model. */
    model: setting(z.string().min(1).optional(), {
      env: 'GPULSE_JETSON_MODEL',
      valueName: 'NAME',
      description: 'Jetson model for gpulse_gpu_info{name} (default: /proc/device-tree/model)',
    }),
    /** GPU identity (`uuid` label); default: nvidia-smi's UUID of the GPU, else the serial number. */
    uuid: setting(z.string().min(1).optional(), {
      env: 'GPULSE_JETSON_UUID',
      valueName: 'ID',
      description: "Jetson GPU uuid label (default: nvidia-smi's UUID, else jetson-<serial>)",
    }),
    /** Limit for the one-shot `nvidia-smi -L` asked for the GPU's UUID. */
    timeout: setting(zTimeout().default(10_000), {
      env: 'GPULSE_TEGRASTATS_TIMEOUT',
      description: 'limit for the one-shot nvidia-smi -L asked for the GPU UUID (default 10s)',
    }),
  })
  .strict();

/** Parsed tegrastats collector settings. */
export type TegrastatsConfig = z.infer<typeof tegrastatsConfigSchema>;
