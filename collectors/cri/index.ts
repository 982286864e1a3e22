/** The CRI collector (containerd, CRI-O) as the registry sees it. */
import { defineCollector } from '../descriptor.js';

/** cri: Kubernetes names (container, pod, namespace) of GPU containers from the CRI runtime. */
export const criCollector = defineCollector({
  name: 'cri',
  produces: ['containers'],
  loadSchema: async () => (await import('./config.js')).criConfigSchema,
  create: async (section, _shared, deps) =>
    (await import('./cri-collector.js')).createCriCollector(section, {
      clock: deps.clock,
      unnamedGpuContainers: deps.unnamedGpuContainers,
    }),
  loadMetrics: () => import('./cri-collector.js'),
  loadDoctorCheck: async () => (await import('./doctor.js')).criSocketCheck,
});
