/** Environment variables and flags of these settings: plain data the CLI reads without loading zod. */
import type { SettingBinding } from '../../agent/config-schema.js';

/** Environment variables and flags of the nvidia-smi collector. */
export const nvidiaSmiSettings: readonly SettingBinding[] = [
  {
    path: ['collectors', 'nvidia-smi', 'binary'],
    env: 'GPULSE_NVIDIA_SMI',
    flag: 'nvidia-smi',
    valueName: 'PATH',
    description: 'nvidia-smi binary (default: nvidia-smi on PATH)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'mode'],
    env: 'GPULSE_NVIDIA_SMI_MODE',
    flag: 'nvidia-smi-mode',
    valueName: 'auto|required|off',
    description: 'run the nvidia-smi collector (auto: no GPU is not an error)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'interval'],
    env: 'GPULSE_NVIDIA_SMI_INTERVAL',
    flag: 'interval',
    valueName: 'DURATION',
    description: 'GPU sampling interval (default 5s)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'xmlInterval'],
    env: 'GPULSE_NVIDIA_SMI_XML_INTERVAL',
    flag: 'xml-interval',
    valueName: 'DURATION',
    description: 'interval of `nvidia-smi -q -x` for MIG and retired pages; 0 = off (default 60s)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'processes'],
    env: 'GPULSE_NVIDIA_SMI_PROCESSES',
    valueName: 'on|off',
    description: 'per-process GPU memory (default on)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'timeout'],
    env: 'GPULSE_NVIDIA_SMI_TIMEOUT',
    valueName: 'DURATION',
    description: 'limit for one-shot calls such as --help-query-gpu (default 10s)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'stallIntervals'],
    env: 'GPULSE_NVIDIA_SMI_STALL_INTERVALS',
    valueName: 'N',
    description: 'a stream silent for N intervals is killed and restarted (default 3)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'pmon'],
    env: 'GPULSE_NVIDIA_SMI_PMON',
    valueName: 'on|off',
    description: 'per-process GPU utilization from nvidia-smi pmon (default on)',
  },
  {
    path: ['collectors', 'nvidia-smi', 'excludeFields'],
    env: 'GPULSE_NVIDIA_SMI_EXCLUDE_FIELDS',
    valueName: 'GLOBS',
    list: true,
    description: 'comma-separated --query-gpu fields never requested',
  },
];
