import { z } from 'zod';
import type { SettingBinding } from '../../agent/config-schema.js';

/** Settings of the exposition (config key `metrics`). */
export const metricsConfigSchema = z
  .object({
    /**
     * none: gpulse's own names only; dcgm: also serve dcgm-exporter's names, units and labels
     * (DCGM_FI_DEV_GPU_UTIL ...) so dashboards built for dcgm-exporter work unchanged.
     */
    compat: z.enum(['none', 'dcgm']).default('none'),
  })
  .strict();

/** Parsed exposition settings. */
export type MetricsConfig = z.infer<typeof metricsConfigSchema>;

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
