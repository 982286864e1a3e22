import { collectorRegistry, type AnyCollectorDescriptor } from '../../../collectors/index.js';
import type { Check } from '../types.js';
import { agentEndpointCheck } from './agent-endpoint.js';
import { cgroupCheck } from './cgroup.js';
import { containerToolkitCheck } from './container-toolkit.js';
import { diskCheck } from './disk.js';
import { driverCudaCheck } from './driver-cuda.js';
import { hostProcCheck } from './host-proc.js';
import { mqttCheck } from './mqtt.js';

/**
 * The printed order: the host's checks, and a collector's own check (from its descriptor) in the
 * slot that names it. A collector with a check and no slot here comes after the last slot.
 */
const ORDER: readonly (Check | { readonly collector: string })[] = [
  { collector: 'nvidia-smi' },
  driverCudaCheck,
  containerToolkitCheck,
  { collector: 'docker' },
  { collector: 'cri' },
  { collector: 'pod-resources' },
  cgroupCheck,
  hostProcCheck,
  { collector: 'dcgm' },
  mqttCheck,
  diskCheck,
  agentEndpointCheck,
];

/** Every check, in the order they are printed: the host's and each registered collector's. */
export async function loadChecks(
  registry: readonly AnyCollectorDescriptor[] = collectorRegistry,
): Promise<Check[]> {
  const own = new Map<string, Check>();
  for (const d of registry) if (d.loadDoctorCheck) own.set(d.name, await d.loadDoctorCheck());
  const slots = ORDER.flatMap((c) => ('collector' in c ? [c.collector] : []));
  const unslotted = [...own].filter(([name]) => !slots.includes(name)).map(([, check]) => check);
  return ORDER.flatMap((c) => {
    if (!('collector' in c)) return [c];
    const check = own.get(c.collector);
    const here = check ? [check] : [];
    return c.collector === slots.at(-1) ? [...here, ...unslotted] : here;
  });
}
