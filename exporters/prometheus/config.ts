import { z } from 'zod';
import { setting } from '../../agent/config-schema.js';

/** Peer exporters whose metric names gpulse can also serve (`metrics.compat`). */
export const COMPAT_NAMINGS = ['dcgm', 'nvidia-gpu-exporter'] as const;

/** One peer naming. */
export type CompatNaming = (typeof COMPAT_NAMINGS)[number];

const zNaming = z.enum(['none', ...COMPAT_NAMINGS]);

/**
 * A list of namings; one name alone (`dcgm`, the form before there were two) and `none` are
 * still accepted, so existing config files and `GPULSE_METRICS_COMPAT=dcgm` keep working.
 */
const zCompat = z
  .preprocess((value) => (typeof value === 'string' ? [value] : value), z.array(zNaming))
  .transform((list, ctx) => {
    if (list.includes('none') && list.length > 1) {
      ctx.addIssue({
        code: 'custom',
        message: `"none" cannot be combined with other namings, got ${JSON.stringify(list)}`,
      });
      return z.NEVER;
    }
    return [...new Set(list.filter((n): n is CompatNaming => n !== 'none'))];
  });

/** Settings of the exposition (config key `metrics`). */
export const metricsConfigSchema = z
  .object({
    /**
     * Peer namings served besides gpulse's own: dcgm (dcgm-exporter's DCGM_FI_DEV_GPU_UTIL ...)
     * and nvidia-gpu-exporter (nvidia_gpu_exporter's nvidia_smi_utilization_gpu_ratio ...), so
     * dashboards and alerts built for those exporters work unchanged. Empty: gpulse's names only.
     */
    compat: setting(zCompat.default([]), {
      env: 'GPULSE_METRICS_COMPAT',
      flag: 'metrics-compat',
      valueName: 'dcgm,nvidia-gpu-exporter|none',
      description:
        'also serve the metric names, units and labels of dcgm-exporter (dcgm) and/or nvidia_gpu_exporter (nvidia-gpu-exporter) for existing dashboards and alerts; comma-separated (default none)',
      list: true,
    }),
  })
  .strict();

/** Parsed exposition settings. */
export type MetricsConfig = z.infer<typeof metricsConfigSchema>;
