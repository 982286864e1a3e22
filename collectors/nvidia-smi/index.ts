/** The nvidia-smi collector as the registry sees it. */
import { defineCollector } from '../descriptor.js';
import { nvidiaSmiSettings } from './settings.js';

/** nvidia-smi: GPU readings, processes, MIG and page retirement. */
export const nvidiaSmiCollector = defineCollector({
  name: 'nvidia-smi',
  settings: nvidiaSmiSettings,
  loadSchema: async () => (await import('./config.js')).nvidiaSmiConfigSchema,
  // A constrained device samples less often and runs fewer child processes: no per-process
  // stream and no `-q -x` stream (MIG and page retirement are datacenter concerns).
  edgeDefaults: [
    [['interval'], '10s'],
    [['processes'], 'off'],
    [['xmlInterval'], 0],
  ],
  create: async (section, shared, deps) =>
    (await import('./nvidia-smi.js')).createNvidiaSmiCollector(section, {
      ...deps,
      procRoot: shared.procRoot,
    }),
  loadMetrics: () => import('./nvidia-smi.js'),
});
