/** The series of the GPU allocation component (declared once, at module load). */
import { counter, gauge } from '../../core/metric.js';

/** Identity labels of an allocation's idle series: the GPU, and the container it is given to. */
export const IDLE_LABELS = ['gpu', 'uuid', 'pod', 'namespace', 'container'] as const;

/** Every family this component serves. */
export const allocationMetrics = {
  info: gauge(
    'gpulse_gpu_allocation_info',
    'A device the kubelet allocated to a container; always 1. mig_uuid is empty for a whole GPU; ' +
      "gpu and uuid are empty when the agent does not see the device; device is the device plugin's id.",
    ['gpu', 'uuid', 'mig_uuid', 'device', 'resource', 'pod', 'namespace', 'container'],
  ),
  allocatable: gauge(
    'gpulse_gpu_allocatable_devices',
    'Devices of this extended resource the kubelet can allocate.',
    ['resource'],
  ),
  allocated: gauge(
    'gpulse_gpu_allocated_devices',
    'Devices of this extended resource the kubelet allocated to containers.',
    ['resource'],
  ),
  unknown: gauge(
    'gpulse_gpu_allocated_unknown_devices',
    'Allocated devices whose id matches no GPU or MIG device the agent sees now.',
    ['resource'],
  ),
  idleSeconds: counter(
    'gpulse_gpu_allocated_idle_seconds_total',
    'Seconds the whole GPU allocated to this container ran under the idle threshold ' +
      '(pod-resources idleBelow).',
    IDLE_LABELS,
  ),
  idle: gauge(
    'gpulse_gpu_allocation_idle',
    'The whole GPU allocated to this container has stayed under the idle threshold for the idle ' +
      'window (pod-resources idleBelow, idleAfter): 1, else 0.',
    IDLE_LABELS,
  ),
} as const;
