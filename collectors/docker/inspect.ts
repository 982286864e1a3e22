import { arr, at, num, obj, str, stringMap, timeMs } from './json.js';
import type { ContainerLabels, DockerContainer, GpuRequest } from './facts.js';

/** Kubernetes and Compose labels the engines put on containers. */
export const LABELS = {
  pod: 'io.kubernetes.pod.name',
  namespace: 'io.kubernetes.pod.namespace',
  kubernetesContainer: 'io.kubernetes.container.name',
  composeProject: 'com.docker.compose.project',
  composeService: 'com.docker.compose.service',
} as const;

/**
 * The part of a `GET /containers/json` entry a cycle needs: the id and, on API 1.23+, the state
 * (older engines give only the free-text Status, so a state change there is seen through events).
 */
export function parseListEntry(json: unknown): { id: string; state?: string } | undefined {
  const id = str(at(json, 'Id'));
  if (!id) return undefined;
  const state = str(at(json, 'State'));
  return state === undefined ? { id } : { id, state };
}

/** GPU requests kept per container by default (collectors.docker.maxGpuRequests). */
export const DEFAULT_MAX_GPU_REQUESTS = 64;
/** A requested device name longer than this is no GPU name (a UUID is 40 characters): dropped. */
export const MAX_DEVICE_NAME_LENGTH = 128;

/**
 * Parses `GET /containers/{id}/json` (or one element of `docker inspect`); undefined without an
 * Id. At most `maxGpuRequests` GPU requests are kept; the rest are counted in `gpusDropped`.
 */
export function parseInspect(
  json: unknown,
  maxGpuRequests = DEFAULT_MAX_GPU_REQUESTS,
): DockerContainer | undefined {
  const id = str(at(json, 'Id'));
  if (!id) return undefined;
  const labels = stringMap(at(json, 'Config', 'Labels'));
  const state = obj(at(json, 'State'));
  const running = state?.Running === true;
  const pid = num(state?.Pid);
  const memory = num(at(json, 'HostConfig', 'Memory'));
  const exitCode = num(state?.ExitCode);
  const requests = gpuRequests(json);
  // Each request is a series: a container listing thousands (NVIDIA_VISIBLE_DEVICES is free
  // text) must not make thousands. Names no GPU has are dropped first.
  const named = requests.filter((g) => g.device.length <= MAX_DEVICE_NAME_LENGTH);
  const gpus = named.slice(0, maxGpuRequests);
  return {
    id,
    name: (str(at(json, 'Name')) ?? '').replace(/^\//, ''),
    image: str(at(json, 'Config', 'Image')) ?? str(at(json, 'Image')) ?? '',
    labels,
    pod: labels[LABELS.pod],
    namespace: labels[LABELS.namespace],
    kubernetesContainer: labels[LABELS.kubernetesContainer],
    composeProject: labels[LABELS.composeProject],
    composeService: labels[LABELS.composeService],
    state: str(state?.Status) ?? (running ? 'running' : 'unknown'),
    pid: running && pid !== undefined && pid > 0 ? pid : undefined,
    createdAt: timeMs(at(json, 'Created')),
    startedAt: timeMs(state?.StartedAt),
    finishedAt: timeMs(state?.FinishedAt),
    restartCount: num(at(json, 'RestartCount')) ?? 0,
    exitCode: running ? undefined : exitCode,
    oomKilled: state?.OOMKilled === true,
    memoryLimitBytes: memory !== undefined && memory > 0 ? memory : undefined,
    cpuLimitCores: cpuLimit(json),
    networkMode: str(at(json, 'HostConfig', 'NetworkMode')),
    tty: at(json, 'Config', 'Tty') === true,
    logDriver: str(at(json, 'HostConfig', 'LogConfig', 'Type')),
    gpus,
    gpusDropped: requests.length - gpus.length,
    runtime: str(at(json, 'HostConfig', 'Runtime')),
  };
}

function cpuLimit(json: unknown): number | undefined {
  const nano = num(at(json, 'HostConfig', 'NanoCpus'));
  if (nano !== undefined && nano > 0) return nano / 1e9;
  const quota = num(at(json, 'HostConfig', 'CpuQuota'));
  const period = num(at(json, 'HostConfig', 'CpuPeriod'));
  if (quota !== undefined && quota > 0) return quota / (period && period > 0 ? period : 100_000);
  return undefined;
}

const NVIDIA_DEVICE_RE = /^\/dev\/(nvidia\d+)$/;

/**
 * GPUs a container asked for. `HostConfig.DeviceRequests` (`--gpus`) first, then device nodes
 * (`--device /dev/nvidiaN`); NVIDIA_VISIBLE_DEVICES only when neither says anything, because images
 * bake in `all` and schedulers write `void` while passing devices another way.
 */
export function gpuRequests(json: unknown): GpuRequest[] {
  const out: GpuRequest[] = [];
  for (const r of arr(at(json, 'HostConfig', 'DeviceRequests'))) {
    const driver = str(at(r, 'Driver')) ?? '';
    const caps = arr(at(r, 'Capabilities')).flatMap((c) => arr(c));
    if (driver !== 'nvidia' && !caps.includes('gpu')) continue;
    const ids = arr(at(r, 'DeviceIDs')).filter((d): d is string => typeof d === 'string');
    const count = num(at(r, 'Count')) ?? 0;
    if (ids.length > 0) for (const device of ids) out.push({ device, source: 'device_requests' });
    else if (count < 0) out.push({ device: 'all', source: 'device_requests' });
    else if (count > 0) out.push({ device: `count:${count}`, source: 'device_requests' });
  }
  if (out.length > 0) return out;
  for (const d of arr(at(json, 'HostConfig', 'Devices'))) {
    const m = NVIDIA_DEVICE_RE.exec(str(at(d, 'PathOnHost')) ?? '');
    if (m?.[1]) out.push({ device: m[1], source: 'devices' });
  }
  if (out.length > 0) return out;
  const env = arr(at(json, 'Config', 'Env'))
    .filter((e): e is string => typeof e === 'string')
    .find((e) => e.startsWith('NVIDIA_VISIBLE_DEVICES='));
  const value = env?.slice('NVIDIA_VISIBLE_DEVICES='.length).trim() ?? '';
  if (value === '' || value === 'void' || value === 'none') return out;
  for (const device of value.split(',').map((s) => s.trim())) {
    if (device) out.push({ device, source: 'nvidia_visible_devices' });
  }
  return out;
}

/** Series labels of a container; the Kubernetes container name wins over Docker's `k8s_...` name. */
export function containerLabels(c: DockerContainer): ContainerLabels {
  return {
    container_id: c.id,
    container_name: c.kubernetesContainer ?? c.name,
    image: c.image,
    pod: c.pod ?? '',
    namespace: c.namespace ?? '',
  };
}
