/** Environment variables and flags of these settings: plain data the CLI reads without loading zod. */
import type { SettingBinding } from '../../agent/config-schema.js';

/** Environment variables and flags of the exposition. */
export const metricsSettings: readonly SettingBinding[] = [
  {
    path: ['metrics', 'compat'],
    env: 'GPULSE_METRICS_COMPAT',
    flag: 'metrics-compat',
    valueName: 'none|dcgm',
    description:
      'also serve dcgm-exporter metric names, units and labels for existing dashboards (default none)',
  },
];
