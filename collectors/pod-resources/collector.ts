/**
 * The pod-resources collector: which pod and container the kubelet gave which GPU, read from the
 * kubelet's pod-resources API v1 on its unix socket, once per interval.
 */
import { access, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname } from 'node:path';
import { CollectorError, NoDataError, errorMessage } from '../../agent/core/errors.js';
import type { AllocatableDevice, DeviceAllocation, Facts } from '../../agent/core/facts.js';
import { counter, gauge, SampleBuilder } from '../../agent/core/metric.js';
import type { CollectContext, CollectorOutput, PolledCollector } from '../../agent/core/types.js';
import { GrpcCallError } from '../grpc-client.js';
import {
  PodResourcesClient,
  type AllocatableResponse,
  type ContainerDevicesMessage,
  type ListResponse,
} from './client.js';
import type { PodResourcesConfig } from './config.js';

/** Collector name. */
export const POD_RESOURCES = 'pod-resources';

/** Self series of the pod-resources collector. */
export const podResourcesMetrics = {
  requests: counter(
    'gpulse_pod_resources_requests_total',
    'Calls to the kubelet pod-resources API by method and gRPC status code (OK when answered).',
    ['method', 'code'],
  ),
  allocatableSupported: gauge(
    'gpulse_pod_resources_allocatable_supported',
    'Whether the kubelet answers GetAllocatableResources (1) or is too old to (0: Kubernetes before 1.23, or 1.21-1.22 without the KubeletPodResourcesGetAllocatable gate).',
  ),
  gpuPods: gauge(
    'gpulse_pod_resources_gpu_pods',
    'Pods the kubelet gave at least one device of a GPU resource (collectors.pod-resources.resources).',
  ),
  allocated: gauge(
    'gpulse_pod_resources_allocated_devices',
    'Devices of a GPU resource the kubelet gave to containers.',
    ['resource'],
  ),
  allocatable: gauge(
    'gpulse_pod_resources_allocatable_devices',
    'Devices of a GPU resource the kubelet can allocate (absent when it cannot say).',
    ['resource'],
  ),
} as const;

/** Whether a resource name is one of `patterns`: an exact name, or a prefix ending in `*`. */
export function resourceMatcher(patterns: readonly string[]): (resource: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')));
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  return (resource) => exact.has(resource) || prefixes.some((p) => resource.startsWith(p));
}

/** One allocation per device id of a matching resource, in the order the kubelet lists them. */
export function deviceAllocations(
  list: ListResponse,
  matches: (resource: string) => boolean,
): DeviceAllocation[] {
  const out: DeviceAllocation[] = [];
  for (const pod of list.pod_resources ?? []) {
    for (const container of pod.containers ?? []) {
      for (const devices of container.devices ?? []) {
        if (!matches(devices.resource_name)) continue;
        for (const deviceId of devices.device_ids ?? []) {
          out.push({
            resourceName: devices.resource_name,
            deviceId,
            pod: pod.name,
            namespace: pod.namespace,
            container: container.name,
          });
        }
      }
    }
  }
  return out;
}

/** The allocatable devices of matching resources. */
export function allocatableDevices(
  response: AllocatableResponse,
  matches: (resource: string) => boolean,
): AllocatableDevice[] {
  return (response.devices ?? [])
    .filter((d: ContainerDevicesMessage) => matches(d.resource_name))
    .flatMap((d) =>
      (d.device_ids ?? []).map((deviceId) => ({ resourceName: d.resource_name, deviceId })),
    );
}

/**
 * Whether a GetAllocatableResources failure means the kubelet cannot answer it at all: 1.20 has no
 * such method (UNIMPLEMENTED); 1.21-1.22 without the feature gate answer a plain error ("...
 * GetAllocatableResources disabled", which gRPC-Go sends as UNKNOWN).
 */
export function allocatableUnsupported(err: unknown): boolean {
  if (!(err instanceof GrpcCallError)) return false;
  return (
    err.codeName === 'UNIMPLEMENTED' ||
    (err.codeName === 'UNKNOWN' && /disabled/i.test(err.message))
  );
}

/** Codes after which the channel is dropped, so the next run dials a fresh connection. */
const RECONNECT_CODES = new Set(['UNAVAILABLE', 'DEADLINE_EXCEEDED', 'CANCELLED']);

/** Turns a failed List call into the collector's error, with what to do about it. */
export function listFailure(err: unknown, socket: string): CollectorError {
  const detail = errorMessage(err);
  const code = err instanceof GrpcCallError ? err.codeName : 'ERROR';
  if (/EACCES|EPERM/.test(detail)) return permissionDenied(socket);
  switch (code) {
    case 'UNAVAILABLE':
      return new CollectorError(
        'unreachable',
        `the kubelet does not answer on ${socket} (${detail}): is the kubelet running? gpulse reconnects by itself when it is back`,
      );
    case 'DEADLINE_EXCEEDED':
      return new CollectorError(
        'timeout',
        `the kubelet did not answer in time on ${socket} (${detail})`,
      );
    case 'UNIMPLEMENTED':
      return new CollectorError(
        'unsupported',
        `the kubelet at ${socket} does not serve the pod-resources API v1 (Kubernetes 1.20 or later needed): ${detail}`,
      );
    default:
      return new CollectorError('api_error', `pod-resources List failed on ${socket}: ${detail}`);
  }
}

function permissionDenied(socket: string): CollectorError {
  return new CollectorError(
    'permission_denied',
    `permission denied on the kubelet pod-resources socket ${socket}: the kubelet makes it root's only. ` +
      `Run gpulse as root (DaemonSet: securityContext.runAsUser: 0) with ${dirname(socket)} mounted read-only (hostPath)`,
  );
}

/** What the collector needs from outside: tests hand in their own client. */
export interface PodResourcesCollectorDeps {
  readonly client?: PodResourcesClient;
}

/** Builds the pod-resources collector (nothing is opened until the first run). */
export function createPodResourcesCollector(
  config: PodResourcesConfig,
  deps: PodResourcesCollectorDeps = {},
): PolledCollector {
  const { socket, timeout } = config;
  const client = deps.client ?? new PodResourcesClient(socket);
  const matches = resourceMatcher(config.resources);
  const requests = new Map<string, { method: string; code: string; count: number }>();
  // The socket file the channel was dialled to (device:inode): a kubelet restart makes a new one.
  let socketFile: string | undefined;
  // Whether List was answered since start: a socket missing after that has gone, not never been.
  let reached = false;
  // Whether the kubelet answers GetAllocatableResources; undefined until asked (again after a reconnect).
  let allocatable: boolean | undefined;
  // The last GetAllocatableResources failure other than "unsupported", to log it once.
  let allocatableError: string | undefined;

  const count = (method: string, err?: unknown): void => {
    const code = err === undefined ? 'OK' : err instanceof GrpcCallError ? err.codeName : 'ERROR';
    const key = `${method} ${code}`;
    const entry = requests.get(key) ?? { method, code, count: 0 };
    requests.set(key, { ...entry, count: entry.count + 1 });
  };

  /** Drops the channel and what was learnt over it: the next kubelet may be another version. */
  const reconnect = (): void => {
    client.reset();
    allocatable = undefined;
    allocatableError = undefined;
  };

  /** The error of a missing socket: never seen (no_data unless required), or gone since. */
  function missing(): Error {
    if (socketFile !== undefined) {
      socketFile = undefined;
      reconnect();
    }
    if (reached)
      return new CollectorError(
        'socket_missing',
        `the kubelet pod-resources socket ${socket} has gone (kubelet restarting or stopped): allocations are unknown until it is back`,
      );
    const message =
      `no kubelet pod-resources socket at ${socket}: not a Kubernetes node, or the socket is not mounted. ` +
      `In a DaemonSet mount the host's ${dirname(socket)} read-only (hostPath) at the same path, ` +
      `or point GPULSE_POD_RESOURCES_SOCKET (collectors.pod-resources.socket) at it; ` +
      `elsewhere set GPULSE_POD_RESOURCES_MODE=off`;
    return config.mode === 'required'
      ? new CollectorError('socket_missing', message)
      : new NoDataError('socket_missing', message);
  }

  /** True when the socket file no longer exists. */
  async function socketGone(): Promise<boolean> {
    return stat(socket).then(
      () => false,
      (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT',
    );
  }

  /** Checks the socket file before dialling, for a clear state instead of gRPC's UNAVAILABLE. */
  async function checkSocket(ctx: CollectContext): Promise<void> {
    let file: Awaited<ReturnType<typeof stat>>;
    try {
      file = await stat(socket);
      await access(socket, constants.R_OK | constants.W_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOENT from access() too: the kubelet may remove its socket between the two calls.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw permissionDenied(socket);
      throw missing();
    }
    if (!file.isSocket())
      // A hostPath naming the socket file itself, mounted before the kubelet made it, is created
      // as an empty directory and stays one.
      throw new CollectorError(
        'not_a_socket',
        `${socket} is not a socket: mount the directory ${dirname(socket)} (hostPath), not the socket file`,
      );
    const id = `${file.dev}:${file.ino}`;
    if (socketFile !== undefined && socketFile !== id) {
      ctx.log.info(
        { socket },
        'kubelet pod-resources socket replaced (kubelet restarted); reconnecting',
      );
      reconnect();
    }
    socketFile = id;
  }

  /** Asks GetAllocatableResources unless the kubelet said it cannot answer; undefined: no fact. */
  async function readAllocatable(ctx: CollectContext): Promise<AllocatableDevice[] | undefined> {
    if (allocatable === false) return undefined;
    try {
      const response = await client.allocatable(timeout, ctx.signal);
      count('GetAllocatableResources');
      allocatable = true;
      if (allocatableError !== undefined)
        ctx.log.info({ socket }, 'GetAllocatableResources answers again');
      allocatableError = undefined;
      return allocatableDevices(response, matches);
    } catch (err) {
      count('GetAllocatableResources', err);
      if (allocatableUnsupported(err)) {
        allocatable = false;
        ctx.log.info(
          { socket, err: errorMessage(err) },
          'the kubelet does not answer GetAllocatableResources (Kubernetes before 1.23, or the KubeletPodResourcesGetAllocatable gate is off): allocatable GPUs are not reported; asked again after a reconnect',
        );
        return undefined;
      }
      if (err instanceof GrpcCallError && RECONNECT_CODES.has(err.codeName)) reconnect();
      // List was answered: its allocations still count; only this fact is missing this time.
      const message = errorMessage(err);
      if (allocatableError !== message)
        ctx.log.warn(
          { socket, err: message },
          'GetAllocatableResources failed; allocatable GPUs left out',
        );
      allocatableError = message;
      return undefined;
    }
  }

  return {
    kind: 'polled',
    name: POD_RESOURCES,
    intervalMs: config.interval,
    timeoutMs: timeout,
    async collect(ctx: CollectContext): Promise<CollectorOutput> {
      await checkSocket(ctx);
      let list: ListResponse;
      try {
        list = await client.list(timeout, ctx.signal);
        count('List');
      } catch (err) {
        count('List', err);
        if (!(err instanceof GrpcCallError) || RECONNECT_CODES.has(err.codeName)) reconnect();
        // A kubelet that exits removes its socket as it cuts the call: say it has gone, which is
        // what the next poll would find, rather than that it refuses.
        if (await socketGone()) throw missing();
        throw listFailure(err, socket);
      }
      reached = true;
      const allocations = deviceAllocations(list, matches);
      const devices = await readAllocatable(ctx);

      const m = podResourcesMetrics;
      const b = new SampleBuilder();
      for (const r of requests.values())
        b.add(m.requests, { method: r.method, code: r.code }, r.count);
      if (allocatable !== undefined) b.add(m.allocatableSupported, {}, allocatable);
      b.add(m.gpuPods, {}, new Set(allocations.map((a) => `${a.namespace}/${a.pod}`)).size);
      // Every resource seen either way gets both counts, so allocatable minus allocated is free.
      const used = tally(allocations);
      const total = devices && tally(devices);
      for (const resource of [...new Set([...used.keys(), ...(total?.keys() ?? [])])].sort()) {
        b.add(m.allocated, { resource }, used.get(resource) ?? 0);
        b.add(m.allocatable, { resource }, total && (total.get(resource) ?? 0));
      }
      const facts: Partial<Facts> = devices
        ? { deviceAllocations: allocations, allocatableDevices: devices }
        : { deviceAllocations: allocations };
      return { samples: b.build(), facts };
    },
    close(): Promise<void> {
      client.reset();
      return Promise.resolve();
    },
  };
}

function tally(devices: readonly { readonly resourceName: string }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const d of devices) counts.set(d.resourceName, (counts.get(d.resourceName) ?? 0) + 1);
  return counts;
}
