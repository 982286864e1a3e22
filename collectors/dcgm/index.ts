/** The DCGM collector as the registry sees it. */
import { join } from 'node:path';
import { packageRoot } from '../../agent/package-info.js';
import { defineCollector } from '../descriptor.js';

/** dcgm: DCGM's device, profiling and NVLink fields through `dcgmi dmon`. */
export const dcgmCollector = defineCollector({
  name: 'dcgm',
  produces: ['dcgmGpus', 'xidTotals', 'xidErrors'],
  loadSchema: async () => (await import('./config.js')).dcgmConfigSchema,
  create: async (section, _shared, deps) =>
    (await import('./dcgm.js')).createDcgmCollector(section, deps),
  loadMetrics: () => import('./dcgm.js'),
  loadDoctorCheck: async () => (await import('./doctor.js')).dcgmCheck,
  // The simulated host engine answers unless GPULSE_SIM_DCGM=absent says it is not there; a
  // replayed capture or a Jetson has no DCGM to simulate.
  simulate: (section, machine) => ({
    ...section,
    binary: dcgmiSimulatorPath(),
    mode: machine.capture !== undefined || machine.jetson !== undefined ? 'off' : section.mode,
  }),
});

/** Path of the simulated dcgmi executable next to this build. */
export function dcgmiSimulatorPath(): string {
  return join(packageRoot(), 'dist', 'collectors', 'dcgm', 'simulator', 'dcgmi.js');
}
