/** The Jetson tegrastats collector as the registry sees it. */
import { defineCollector } from '../descriptor.js';
import type { NvidiaSmiConfig } from '../nvidia-smi/config.js';
import { tegrastatsSettings } from './settings.js';

/** tegrastats: the GPU, CPU, memory and rails of a Jetson. */
export const tegrastatsCollector = defineCollector({
  name: 'tegrastats',
  settings: tegrastatsSettings,
  loadSchema: async () => (await import('./config.js')).tegrastatsConfigSchema,
  edgeDefaults: [[['interval'], '10s']],
  create: async (section, shared, deps) => {
    // The GPU's UUID comes from nvidia-smi where it runs (JetPack 6), so both agree on it.
    const smi = shared.collectors['nvidia-smi'] as NvidiaSmiConfig | undefined;
    return (await import('./tegrastats.js')).createTegrastatsCollector(section, {
      ...deps,
      nvidiaSmi: smi === undefined || smi.mode === 'off' ? undefined : smi.binary,
    });
  },
  loadMetrics: () => import('./tegrastats.js'),
});
