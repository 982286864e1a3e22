/** The pod-resources collector as the registry sees it. */
import { defineCollector } from '../descriptor.js';

/** pod-resources: which pod and container the kubelet gave which GPU (pod-resources API v1). */
export const podResourcesCollector = defineCollector({
  name: 'pod-resources',
  produces: ['deviceAllocations', 'allocatableDevices'],
  loadSchema: async () => (await import('./config.js')).podResourcesConfigSchema,
  create: async (section) => (await import('./collector.js')).createPodResourcesCollector(section),
  loadMetrics: () => import('./collector.js'),
  loadDoctorCheck: async () => (await import('./doctor.js')).podResourcesCheck,
});
