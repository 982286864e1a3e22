/** Environment variables and flags of these settings: plain data the CLI reads without loading zod. */
import type { SettingBinding } from '../../agent/config-schema.js';

/** Environment variables and flags of the DCGM collector. */
export const dcgmSettings: readonly SettingBinding[] = [
  {
    path: ['collectors', 'dcgm', 'binary'],
    env: 'GPULSE_DCGMI',
    flag: 'dcgmi',
    valueName: 'PATH',
    description: 'dcgmi binary (default: dcgmi on PATH)',
  },
  {
    path: ['collectors', 'dcgm', 'mode'],
    env: 'GPULSE_DCGM_MODE',
    flag: 'dcgm-mode',
    valueName: 'auto|required|off',
    description: 'run the DCGM collector (auto: no host engine is not an error)',
  },
  {
    path: ['collectors', 'dcgm', 'host'],
    env: 'GPULSE_DCGM_HOST',
    valueName: 'HOST',
    description: 'DCGM host engine address for dcgmi --host (default localhost)',
  },
  {
    path: ['collectors', 'dcgm', 'interval'],
    env: 'GPULSE_DCGM_INTERVAL',
    valueName: 'DURATION',
    description: 'DCGM sampling interval (default 5s)',
  },
  {
    path: ['collectors', 'dcgm', 'timeout'],
    env: 'GPULSE_DCGM_TIMEOUT',
    valueName: 'DURATION',
    description: 'limit for dcgmi discovery -l (default 10s)',
  },
  {
    path: ['collectors', 'dcgm', 'stallIntervals'],
    env: 'GPULSE_DCGM_STALL_INTERVALS',
    valueName: 'N',
    description: 'the dmon stream is restarted when silent for N intervals (default 3)',
  },
  {
    path: ['collectors', 'dcgm', 'fields'],
    env: 'GPULSE_DCGM_FIELDS',
    valueName: 'NAMES',
    list: true,
    description: 'comma-separated DCGM field names to watch (default: the whole catalogue)',
  },
  {
    path: ['collectors', 'dcgm', 'profiling'],
    env: 'GPULSE_DCGM_PROFILING',
    valueName: 'auto|off',
    description:
      'watch DCGM profiling fields (SM/tensor/DRAM activity) where supported (default auto)',
  },
];
