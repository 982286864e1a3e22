/** Environment variables and flags of these settings: plain data the CLI reads without loading zod. */
import type { SettingBinding } from '../../agent/config-schema.js';

/** Environment variables and flags of the exposition. */
export const metricsSettings: readonly SettingBinding[] = [
  {
    path: ['metrics', 'compat'],
    env: 'GPULSE_METRICS_COMPAT',
    flag: 'metrics-compat',
    valueName: 'dcgm,nvidia-gpu-exporter|none',
    description:
      'also serve the metric names, units and labels of dcgm-exporter (dcgm) and/or nvidia_gpu_exporter (nvidia-gpu-exporter) for existing dashboards and alerts; comma-separated (default none)',
    list: true,
  },
];
