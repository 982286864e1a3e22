/**
 * Which GPU (or MIG device of which GPU) a device plugin's id names, among the GPUs a snapshot
 * reports. The NVIDIA device plugin names devices by UUID (`GPU-<uuid>`, `MIG-<uuid>`, or
 * `MIG-GPU-<uuid>/<gi>/<ci>` on drivers before R470) or, with `DEVICE_ID_STRATEGY=index`, by
 * index (`0`, and `0:1` for MIG device 1 of GPU 0); a shared (time-sliced or MPS) replica adds
 * `::<n>` to the device's id.
 */
import type { GpuView } from '../gpu-health/gpu-views.js';

/** What an allocated device is, as far as the agent can tell. */
export interface ResolvedDevice {
  /** `gpu`: a whole GPU; `mig`: a MIG device; `unknown`: an id of no form gpulse knows. */
  readonly kind: 'gpu' | 'mig' | 'unknown';
  /**
   * The GPU (the MIG device's parent) as the snapshot reports it; absent when the snapshot has
   * no such device (then the labels hold what the id itself says).
   */
  readonly view?: GpuView;
  /** `gpu` label: the GPU's index, empty when unknown. */
  readonly gpu: string;
  /** `uuid` label: the GPU's UUID (the MIG device's parent), empty when unknown. */
  readonly uuid: string;
  /** `mig_uuid` label: the MIG device's UUID; empty for a whole GPU or when unknown. */
  readonly migUuid: string;
}

/** The GPUs of one snapshot, indexed for the lookups device ids need. */
export interface GpuIndex {
  readonly byUuid: ReadonlyMap<string, GpuView>;
  readonly byIndex: ReadonlyMap<number, GpuView>;
  /** MIG device UUID → its parent GPU and the MIG device's own UUID as the driver spells it. */
  readonly byMigUuid: ReadonlyMap<string, { readonly view: GpuView; readonly migUuid: string }>;
}

/** Indexes the GPU views of a snapshot (UUIDs compared case-insensitively). */
export function indexGpus(views: readonly GpuView[]): GpuIndex {
  const byUuid = new Map<string, GpuView>();
  const byIndex = new Map<number, GpuView>();
  const byMigUuid = new Map<string, { view: GpuView; migUuid: string }>();
  for (const view of views) {
    const r = view.reading;
    if (r.uuid !== '' && !byUuid.has(r.uuid.toLowerCase())) byUuid.set(r.uuid.toLowerCase(), view);
    // A lost GPU nobody could name keeps its index; an answering GPU wins a shared index.
    const prev = byIndex.get(r.index);
    if (!prev || (prev.lost && !view.lost)) byIndex.set(r.index, view);
    for (const mig of r.migDevices ?? []) {
      if (mig.uuid) byMigUuid.set(mig.uuid.toLowerCase(), { view, migUuid: mig.uuid });
    }
  }
  return { byUuid, byIndex, byMigUuid };
}

const REPLICA = /::\d+$/;
const INDEX = /^(\d+)$/;
const MIG_INDEX = /^(\d+):(\d+)$/;
const LEGACY_MIG = /^MIG-(GPU-[^/]+)\/(\d+)\/(\d+)$/i;

/** A device id without the replica suffix of a shared GPU: the device itself. */
export function baseDeviceId(deviceId: string): string {
  return deviceId.replace(REPLICA, '');
}

/** The device an id names: GPU labels from the snapshot where it has the device. */
export function resolveDevice(deviceId: string, gpus: GpuIndex): ResolvedDevice {
  const id = baseDeviceId(deviceId);
  const gpuOf = (view: GpuView) => ({
    view,
    gpu: String(view.reading.index),
    uuid: view.reading.uuid,
  });
  if (/^GPU-/i.test(id)) {
    const view = gpus.byUuid.get(id.toLowerCase());
    return view
      ? { kind: 'gpu', ...gpuOf(view), migUuid: '' }
      : { kind: 'gpu', gpu: '', uuid: id, migUuid: '' };
  }
  const legacy = LEGACY_MIG.exec(id);
  if (legacy) {
    const view = gpus.byUuid.get(legacy[1]!.toLowerCase());
    const gi = Number(legacy[2]);
    const ci = Number(legacy[3]);
    const mig = view?.reading.migDevices?.find(
      (m) => m.gpuInstanceId === gi && m.computeInstanceId === ci,
    );
    // The id says which GPU it is even where the snapshot lacks it or its MIG device.
    return view && mig
      ? { kind: 'mig', ...gpuOf(view), migUuid: mig.uuid ?? id }
      : {
          kind: 'mig',
          gpu: view ? String(view.reading.index) : '',
          uuid: view?.reading.uuid ?? legacy[1]!,
          migUuid: id,
        };
  }
  if (/^MIG-/i.test(id)) {
    const found = gpus.byMigUuid.get(id.toLowerCase());
    return found
      ? { kind: 'mig', ...gpuOf(found.view), migUuid: found.migUuid }
      : { kind: 'mig', gpu: '', uuid: '', migUuid: id };
  }
  const index = INDEX.exec(id);
  if (index) {
    const view = gpus.byIndex.get(Number(index[1]));
    return view
      ? { kind: 'gpu', ...gpuOf(view), migUuid: '' }
      : { kind: 'gpu', gpu: index[1]!, uuid: '', migUuid: '' };
  }
  const migIndex = MIG_INDEX.exec(id);
  if (migIndex) {
    const view = gpus.byIndex.get(Number(migIndex[1]));
    const mig = view?.reading.migDevices?.find((m) => m.index === Number(migIndex[2]));
    // A GPU seen without that MIG device (MIG reconfigured under the kubelet) is no match.
    return view && mig
      ? { kind: 'mig', ...gpuOf(view), migUuid: mig.uuid ?? '' }
      : { kind: 'mig', gpu: migIndex[1]!, uuid: view?.reading.uuid ?? '', migUuid: '' };
  }
  return { kind: 'unknown', gpu: '', uuid: '', migUuid: '' };
}
