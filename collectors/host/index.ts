/** The host collector as the registry sees it. */
import { defineCollector } from '../descriptor.js';

/** host: CPU, memory, disks, network and temperature of the machine. */
export const hostCollector = defineCollector({
  name: 'host',
  produces: [],
  loadSchema: async () => (await import('./config.js')).hostConfigSchema,
  // tegrastats already reports per-core CPU, RAM and swap on a Jetson; disks change slowly.
  edgeDefaults: [[['interval'], '60s']],
  // One /proc setting serves attribution and host series; the collector's own key overrides it.
  create: async (section, shared) =>
    (await import('./host.js')).createHostCollector({
      ...section,
      procRoot: section.procRoot ?? shared.procRoot,
    }),
  loadMetrics: () => import('./host.js'),
});
