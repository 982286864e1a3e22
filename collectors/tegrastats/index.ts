/** The Jetson tegrastats collector as the registry sees it. */
import { join } from 'node:path';
import { packageRoot } from '../../agent/package-info.js';
import { defineCollector } from '../descriptor.js';
import type { NvidiaSmiConfig } from '../nvidia-smi/config.js';

/** tegrastats: the GPU, CPU, memory and rails of a Jetson. */
export const tegrastatsCollector = defineCollector({
  name: 'tegrastats',
  produces: ['gpus'],
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
  // A Jetson profile or a tegrastats capture runs the simulated tegrastats; other machines have none.
  simulate: (section, machine) =>
    machine.jetson === undefined && !machine.tegrastatsCapture
      ? { ...section, mode: 'off' as const }
      : {
          ...section,
          binary: tegrastatsSimulatorPath(),
          mode: 'required' as const,
          model: section.model ?? machine.jetson?.model,
        },
});

/** Path of the simulated tegrastats executable next to this build. */
export function tegrastatsSimulatorPath(): string {
  return join(packageRoot(), 'dist', 'collectors', 'tegrastats', 'simulator', 'tegrastats.js');
}
