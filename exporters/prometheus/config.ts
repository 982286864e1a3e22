import { z } from 'zod';

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
