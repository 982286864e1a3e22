import { z } from 'zod';
import {
  setting,
  zCollectorMode,
  zDuration,
  zInterval,
  zPath,
  zRatio,
  zTimeout,
} from '../../agent/config-schema.js';

/** The kubelet's pod-resources socket (Kubernetes 1.20+ serves API v1 on it). */
export const DEFAULT_POD_RESOURCES_SOCKET = '/var/lib/kubelet/pod-resources/kubelet.sock';

/** Settings of the pod-resources collector (config key `collectors.pod-resources`). */
export const podResourcesConfigSchema = z
  .object({
    /** auto: run, report no_data without the kubelet's socket; required: a missing socket is an error; off. */
    mode: setting(zCollectorMode.default('auto'), {
      env: 'GPULSE_POD_RESOURCES_MODE',
      flag: 'pod-resources-mode',
      description: 'read GPU allocations from the kubelet (auto: no socket is not an error)',
    }),
    /** The kubelet's pod-resources socket. */
    socket: setting(zPath().default(DEFAULT_POD_RESOURCES_SOCKET), {
      env: 'GPULSE_POD_RESOURCES_SOCKET',
      flag: 'pod-resources-socket',
      description: `kubelet pod-resources socket (default ${DEFAULT_POD_RESOURCES_SOCKET})`,
    }),
    /** How often allocations are read (one local List call). */
    interval: setting(zInterval(1000).default(10_000), {
      env: 'GPULSE_POD_RESOURCES_INTERVAL',
      description: 'how often GPU allocations are read from the kubelet (default 10s)',
    }),
    /** Limit of one call to the kubelet. */
    timeout: setting(zTimeout().default(5000), {
      env: 'GPULSE_POD_RESOURCES_TIMEOUT',
      description: 'limit of one pod-resources call (default 5s)',
    }),
    /**
     * Extended resources that are GPUs: exact names, or a prefix ending in `*`
     * (`nvidia.com/mig-*` takes the MIG strategy "mixed" resources).
     */
    resources: setting(
      z
        .array(z.string().regex(/^[A-Za-z0-9.\-_/]+\*?$/, 'expected a resource name or prefix*'))
        .min(1)
        .default(['nvidia.com/gpu', 'nvidia.com/mig-*']),
      {
        env: 'GPULSE_POD_RESOURCES_RESOURCES',
        list: true,
        valueName: 'NAME,...',
        description: 'extended resources counted as GPUs (default nvidia.com/gpu,nvidia.com/mig-*)',
      },
    ),
    /** An allocated GPU whose utilization stays under this share is idle. */
    idleBelow: setting(zRatio().default(0.05), {
      env: 'GPULSE_POD_RESOURCES_IDLE_BELOW',
      description: 'utilization under which an allocated GPU counts as idle (default 5%)',
    }),
    /** How long an allocated GPU stays under `idleBelow` before it is reported idle (event, gauge). */
    idleAfter: setting(zDuration({ min: 0 }).default(600_000), {
      env: 'GPULSE_POD_RESOURCES_IDLE_AFTER',
      description: 'how long under idleBelow before an allocation turns idle (default 10m)',
    }),
  })
  .strict();

/** Parsed pod-resources collector settings. */
export type PodResourcesConfig = z.infer<typeof podResourcesConfigSchema>;
