/** The nvidia-smi collector as the registry sees it. */
import { join } from 'node:path';
import { packageRoot } from '../../agent/package-info.js';
import { defineCollector } from '../descriptor.js';

/** nvidia-smi: GPU readings, processes, MIG and page retirement. */
export const nvidiaSmiCollector = defineCollector({
  name: 'nvidia-smi',
  produces: ['gpus', 'lostGpus', 'gpuProcesses', 'gpuProcessUtilization'],
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
  loadDoctorCheck: async () =>
    (await import('../../agent/doctor/checks/nvidia-smi.js')).nvidiaSmiCheck,
  // A discrete-GPU profile or capture runs the simulated nvidia-smi (a collector turned off stays
  // off); a Jetson runs it only where its JetPack ships one (it answers N/A and stands down).
  simulate: (section, machine) => {
    if (machine.jetson === undefined && !machine.tegrastatsCapture) {
      return {
        ...section,
        binary: nvidiaSmiSimulatorPath(),
        mode: section.mode === 'off' ? ('off' as const) : ('required' as const),
      };
    }
    return machine.jetson?.nvidiaSmiCapture === undefined
      ? { ...section, mode: 'off' as const }
      : { ...section, binary: nvidiaSmiSimulatorPath(), mode: 'auto' as const };
  },
});

/** Path of the simulated nvidia-smi executable next to this build. */
export function nvidiaSmiSimulatorPath(): string {
  return join(packageRoot(), 'dist', 'collectors', 'nvidia-smi', 'simulator', 'nvidia-smi.js');
}
