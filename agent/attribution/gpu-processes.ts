import type { ContainerIdentity } from '../core/facts.js';
import { gauge, SampleBuilder } from '../core/metric.js';
import { collectFacts } from '../core/state-store.js';
import type { Derivation, Deriver, Labels, Snapshot, StateReader } from '../core/types.js';

const gpuContainerCache = new WeakMap<Snapshot, ReadonlySet<string>>();

/** Ids of the containers a GPU process runs in at this snapshot. */
export function gpuContainerIds(snapshot: Snapshot): ReadonlySet<string> {
  let ids = gpuContainerCache.get(snapshot);
  if (!ids) {
    ids = new Set(gpuAttributions(snapshot).map((a) => a.containerId));
    gpuContainerCache.set(snapshot, ids);
  }
  return ids;
}

/**
 * "Does this container run a GPU process?" for the docker collector, which follows the logs of
 * GPU containers: one that requested none (privileged, `--device`, a runtime) is one too once the
 * driver lists a process of it. Collectors are built before the state store they feed, so the
 * composition root binds the store once the agent exists; until then the answer is no.
 */
export class GpuContainerLookup {
  private reader: StateReader | undefined;

  /** Answers from this store's snapshots from now on. */
  bind(reader: StateReader): void {
    this.reader = reader;
  }

  /** Whether a GPU process runs in the container now. */
  readonly has = (containerId: string): boolean =>
    this.reader !== undefined && gpuContainerIds(this.reader.current()).has(containerId);

  /** Containers of GPU processes that no collector names yet and Docker or Podman do not run. */
  readonly unnamed = (): ReadonlySet<string> =>
    this.reader === undefined ? new Set() : unnamedGpuContainerIds(this.reader.current());
}

// Engines whose containers the docker collector names; a CRI runtime is never asked for them.
const ENGINE_RUNTIMES: ReadonlySet<string> = new Set(['docker', 'podman']);

/**
 * Ids of the containers GPU processes run in that no `containers` fact names, leaving out those
 * whose cgroup marks them Docker's or Podman's: what a CRI runtime may be asked about.
 */
export function unnamedGpuContainerIds(snapshot: Snapshot): ReadonlySet<string> {
  const named = new Set(collectFacts(snapshot, 'containers').map((c) => c.id));
  const out = new Set<string>();
  const add = (id: string | undefined, runtime: string | undefined) => {
    if (id && !named.has(id) && !ENGINE_RUNTIMES.has(runtime ?? '')) out.add(id);
  };
  for (const p of collectFacts(snapshot, 'gpuProcesses')) add(p.containerId, p.containerRuntime);
  for (const u of collectFacts(snapshot, 'gpuProcessUtilization'))
    add(u.containerId, u.containerRuntime);
  return out;
}

/** Labels naming a container on per-container and per-process series (empty outside containers). */
export const CONTAINER_LABEL_NAMES = [
  'container_id',
  'container_name',
  'image',
  'pod',
  'namespace',
] as const;

const PROCESS = ['gpu', 'uuid', 'pid', 'process_name', ...CONTAINER_LABEL_NAMES] as const;
const CONTAINER_GPU = [...CONTAINER_LABEL_NAMES, 'gpu', 'uuid'] as const;

/** Per-process and per-container GPU series. */
export const gpuProcessMetrics = {
  memory: gauge(
    'gpulse_gpu_process_memory_used_bytes',
    'GPU memory used by a process (host PID), with its container (empty labels outside containers).',
    PROCESS,
  ),
  utilization: gauge(
    'gpulse_gpu_process_utilization_ratio',
    'Share of the last sampling window the process ran kernels on the GPU (nvidia-smi pmon sm, 0-1).',
    PROCESS,
  ),
  memoryUtilization: gauge(
    'gpulse_gpu_process_memory_utilization_ratio',
    'Share of the last sampling window the process read or wrote device memory (pmon mem, 0-1).',
    PROCESS,
  ),
  containerMemory: gauge(
    'gpulse_container_gpu_memory_used_bytes',
    'GPU memory used by the processes of a container on one GPU.',
    CONTAINER_GPU,
  ),
  containerUtilization: gauge(
    'gpulse_container_gpu_utilization_ratio',
    "Share of the last sampling window the container's processes ran kernels on one GPU (sum of pmon sm, at most 1).",
    CONTAINER_GPU,
  ),
} as const;

const OUTSIDE: Labels = { container_id: '', container_name: '', image: '', pod: '', namespace: '' };

/** Which container (or pod) uses a GPU, through one of its processes. */
export interface GpuAttribution {
  readonly gpuUuid: string;
  /** The engine's name (Kubernetes container name where the engine knows it), else the short id. */
  readonly container: string;
  readonly containerId: string;
  readonly namespace?: string;
  readonly pod?: string;
  /** Host PID of the process that holds the GPU. */
  readonly pid: number;
}

const attributionCache = new WeakMap<Snapshot, readonly GpuAttribution[]>();

/**
 * Who uses each GPU: the GPU processes the driver lists (host PIDs, with the container their
 * cgroup names: `gpuProcesses`, and pmon's `gpuProcessUtilization`) joined with the engines'
 * container identities (`containers`: name, pod, namespace). Computed once per snapshot for every
 * consumer (GET /api/v1/gpus, the dcgm-exporter labels); one entry per GPU, container and PID.
 */
export function gpuAttributions(snapshot: Snapshot): readonly GpuAttribution[] {
  const cached = attributionCache.get(snapshot);
  if (cached) return cached;
  const known = new Map(collectFacts(snapshot, 'containers').map((c) => [c.id, c]));
  const uuidOf = new Map(collectFacts(snapshot, 'gpus').map((g) => [g.index, g.uuid]));
  const out = new Map<string, GpuAttribution>();
  const add = (gpuUuid: string | undefined, pid: number, containerId: string | undefined) => {
    if (!gpuUuid || !containerId) return;
    const key = `${gpuUuid} ${containerId} ${pid}`;
    if (out.has(key)) return;
    const c = known.get(containerId);
    out.set(key, {
      gpuUuid,
      container: c?.name || containerId.slice(0, 12),
      containerId,
      ...(c?.namespace ? { namespace: c.namespace } : {}),
      ...(c?.pod ? { pod: c.pod } : {}),
      pid,
    });
  };
  for (const p of collectFacts(snapshot, 'gpuProcesses')) add(p.gpuUuid, p.pid, p.containerId);
  for (const u of collectFacts(snapshot, 'gpuProcessUtilization'))
    add(uuidOf.get(u.gpuIndex), u.pid, u.containerId);
  const list = [...out.values()];
  attributionCache.set(snapshot, list);
  return list;
}

/** Container labels of a process: the engine's names when known, the bare id when only the cgroup told. */
function containerLabelsOf(
  id: string | undefined,
  known: ReadonlyMap<string, ContainerIdentity>,
): Labels {
  if (!id) return OUTSIDE;
  const c = known.get(id);
  return {
    container_id: id,
    container_name: c?.name ?? '',
    image: c?.image ?? '',
    pod: c?.pod ?? '',
    namespace: c?.namespace ?? '',
  };
}

/** Sums per (container, GPU) keyed by their label values. */
class PerContainer {
  private readonly sums = new Map<string, { labels: Labels; value: number }>();

  add(labels: Labels, value: number | undefined): void {
    if (value === undefined || !Number.isFinite(value)) return;
    const key = JSON.stringify(labels);
    const prev = this.sums.get(key);
    if (prev) prev.value += value;
    else this.sums.set(key, { labels, value });
  }

  entries(): Iterable<{ labels: Labels; value: number }> {
    return this.sums.values();
  }
}

/** The last item per key: one series per process and GPU, even if a source repeats a row. */
function uniqueBy<T>(items: readonly T[], key: (item: T) => string): T[] {
  return [...new Map(items.map((i) => [key(i), i])).values()];
}

/**
 * Per-process GPU memory and utilization with the container each process runs in (joined by the
 * id the GPU collector read from the process's cgroup with the engines' container facts), and
 * the same summed per container and GPU.
 */
export const gpuProcessesDeriver: Deriver = {
  name: 'gpu-processes',
  derive(snapshot: Snapshot): Derivation {
    const b = new SampleBuilder();
    const known = new Map(collectFacts(snapshot, 'containers').map((c) => [c.id, c]));
    const uuidOf = new Map(collectFacts(snapshot, 'gpus').map((g) => [g.index, g.uuid]));
    const memory = new PerContainer();
    for (const p of uniqueBy(
      collectFacts(snapshot, 'gpuProcesses'),
      (x) => `${x.pid} ${x.gpuUuid}`,
    )) {
      const gpu = p.gpuIndex === undefined ? '' : String(p.gpuIndex);
      const container = containerLabelsOf(p.containerId, known);
      b.add(
        gpuProcessMetrics.memory,
        { gpu, uuid: p.gpuUuid, pid: String(p.pid), process_name: p.processName, ...container },
        p.usedMemoryBytes,
      );
      if (p.containerId) memory.add({ ...container, gpu, uuid: p.gpuUuid }, p.usedMemoryBytes);
    }
    for (const e of memory.entries()) b.add(gpuProcessMetrics.containerMemory, e.labels, e.value);

    const utilization = new PerContainer();
    for (const u of uniqueBy(
      collectFacts(snapshot, 'gpuProcessUtilization'),
      (x) => `${x.pid} ${x.gpuIndex}`,
    )) {
      const gpu = String(u.gpuIndex);
      const uuid = uuidOf.get(u.gpuIndex) ?? '';
      const container = containerLabelsOf(u.containerId, known);
      const labels = {
        gpu,
        uuid,
        pid: String(u.pid),
        process_name: u.processName ?? '',
        ...container,
      };
      b.add(gpuProcessMetrics.utilization, labels, u.smRatio);
      b.add(gpuProcessMetrics.memoryUtilization, labels, u.memoryRatio);
      if (u.containerId) utilization.add({ ...container, gpu, uuid }, u.smRatio);
    }
    for (const e of utilization.entries()) {
      b.add(gpuProcessMetrics.containerUtilization, e.labels, Math.min(1, e.value));
    }
    return { samples: b.build() };
  },
};
