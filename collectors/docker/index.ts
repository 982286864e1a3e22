/** The Docker (and Podman) collector as the registry sees it. */
import { defineCollector } from '../descriptor.js';

/** docker: container stats, OOM kills, GPU OOMs and restarts. */
export const dockerCollector = defineCollector({
  name: 'docker',
  produces: ['containers', 'dockerContainers', 'containerIncidents'],
  loadSchema: async () => (await import('./config.js')).dockerConfigSchema,
  create: async (section, shared, deps) =>
    (await import('./docker-collector.js')).createDockerCollector(section, {
      clock: deps.clock,
      env: deps.env,
      random: deps.random,
      procRoot: shared.procRoot,
      cgroupRoot: shared.cgroupRoot,
      usesGpu: deps.usesGpu,
    }),
  loadMetrics: () => import('./docker-collector.js'),
  loadDoctorCheck: async () => (await import('./doctor.js')).dockerSocketCheck,
});
