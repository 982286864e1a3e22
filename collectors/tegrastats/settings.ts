/** Environment variables and flags of these settings: plain data the CLI reads without loading zod. */
import type { SettingBinding } from '../../agent/config-schema.js';

/** Environment variables and flags of the tegrastats collector. */
export const tegrastatsSettings: readonly SettingBinding[] = [
  {
    path: ['collectors', 'tegrastats', 'binary'],
    env: 'GPULSE_TEGRASTATS',
    flag: 'tegrastats',
    valueName: 'PATH',
    description: 'tegrastats binary (default: tegrastats on PATH)',
  },
  {
    path: ['collectors', 'tegrastats', 'mode'],
    env: 'GPULSE_TEGRASTATS_MODE',
    flag: 'tegrastats-mode',
    valueName: 'auto|required|off',
    description: 'run the Jetson tegrastats collector (auto: no tegrastats is not an error)',
  },
  {
    path: ['collectors', 'tegrastats', 'interval'],
    env: 'GPULSE_TEGRASTATS_INTERVAL',
    flag: 'tegrastats-interval',
    valueName: 'DURATION',
    description: 'Jetson sampling interval, tegrastats --interval (default 5s)',
  },
  {
    path: ['collectors', 'tegrastats', 'stallIntervals'],
    env: 'GPULSE_TEGRASTATS_STALL_INTERVALS',
    valueName: 'N',
    description: 'tegrastats silent for N intervals is killed and restarted (default 3)',
  },
  {
    path: ['collectors', 'tegrastats', 'root'],
    env: 'GPULSE_TEGRASTATS_ROOT',
    valueName: 'DIR',
    description: 'root of /proc/device-tree and /etc/nv_tegra_release (a container: /host)',
  },
  {
    path: ['collectors', 'tegrastats', 'model'],
    env: 'GPULSE_JETSON_MODEL',
    valueName: 'NAME',
    description: 'Jetson model for gpulse_gpu_info{name} (default: /proc/device-tree/model)',
  },
  {
    path: ['collectors', 'tegrastats', 'uuid'],
    env: 'GPULSE_JETSON_UUID',
    valueName: 'ID',
    description: "Jetson GPU uuid label (default: nvidia-smi's UUID, else jetson-<serial>)",
  },
  {
    path: ['collectors', 'tegrastats', 'timeout'],
    env: 'GPULSE_TEGRASTATS_TIMEOUT',
    valueName: 'DURATION',
    description: 'limit for the one-shot nvidia-smi -L asked for the GPU UUID (default 10s)',
  },
];
