/** The DCGM collector as the registry sees it. */
import { defineCollector } from '../descriptor.js';
import { dcgmSettings } from './settings.js';

/** dcgm: DCGM's device, profiling and NVLink fields through `dcgmi dmon`. */
export const dcgmCollector = defineCollector({
  name: 'dcgm',
  settings: dcgmSettings,
  loadSchema: async () => (await import('./config.js')).dcgmConfigSchema,
  create: async (section, _shared, deps) =>
    (await import('./dcgm.js')).createDcgmCollector(section, deps),
  loadMetrics: () => import('./dcgm.js'),
});
