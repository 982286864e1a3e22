import type { Check } from '../types.js';
import { agentEndpointCheck } from './agent-endpoint.js';
import { cgroupCheck } from './cgroup.js';
import { containerToolkitCheck } from './container-toolkit.js';
import { dcgmCheck } from './dcgm.js';
import { diskCheck } from './disk.js';
import { dockerSocketCheck } from './docker-socket.js';
import { driverCudaCheck } from './driver-cuda.js';
import { hostProcCheck } from './host-proc.js';
import { mqttCheck } from './mqtt.js';
import { nvidiaSmiCheck } from './nvidia-smi.js';

/** Every check, in the order they are printed. */
export const CHECKS: readonly Check[] = [
  nvidiaSmiCheck,
  driverCudaCheck,
  containerToolkitCheck,
  dockerSocketCheck,
  cgroupCheck,
  hostProcCheck,
  dcgmCheck,
  mqttCheck,
  diskCheck,
  agentEndpointCheck,
];
