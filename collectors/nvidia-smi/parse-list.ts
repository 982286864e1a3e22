/**
 * `nvidia-smi -L`: the only nvidia-smi output that names each MIG device's profile
 * (`3g.40gb`, or `1c.3g.71gb` for one compute instance of a `3g.71gb` GPU instance) and its
 * MIG UUID; `-q -x` lists the devices by index without either.
 */
import type { GpuReading } from '../../agent/core/facts.js';

/** A MIG device as `-L` lists it. */
export interface ListedMigDevice {
  /** `Device N`: the same index as `<mig_device><index>` in `-q -x`. */
  readonly index: number;
  readonly profile: string;
  readonly uuid?: string;
}

/** MIG devices by GPU UUID, then by device index. */
export type MigListing = ReadonlyMap<string, ReadonlyMap<number, ListedMigDevice>>;

const GPU_LINE = /^GPU \d+: .*\(UUID: (GPU-[^)\s]+)\)\s*$/;
// `MIG 3g.40gb     Device  0: (UUID: MIG-…)`; drivers before R470 printed `MIG-GPU-<uuid>/<gi>/<ci>`.
const MIG_LINE = /^\s+MIG\s+(\S+)\s+Device\s+(\d+):\s*(?:\(UUID:\s*([^)\s]+)\))?\s*$/;

/** Parses `nvidia-smi -L`; lines it does not know (other GPUs' text, blanks) are skipped. */
export function parseMigListing(text: string): MigListing {
  const out = new Map<string, Map<number, ListedMigDevice>>();
  let gpu: Map<number, ListedMigDevice> | undefined;
  for (const line of text.split('\n')) {
    const g = GPU_LINE.exec(line);
    if (g) {
      gpu = new Map();
      out.set(g[1]!, gpu);
      continue;
    }
    const m = MIG_LINE.exec(line);
    if (!m || !gpu) continue;
    const index = Number(m[2]);
    gpu.set(index, { index, profile: m[1]!, ...(m[3] ? { uuid: m[3] } : {}) });
  }
  return out;
}

/** The MIG layout of a `-q -x` document (GPU, device index, GI, CI): `-L` is asked again when it changes. */
export function migLayoutKey(gpus: readonly GpuReading[]): string {
  return gpus
    .flatMap((g) =>
      (g.migDevices ?? []).map(
        (m) => `${g.uuid}/${m.index ?? ''}/${m.gpuInstanceId}/${m.computeInstanceId}`,
      ),
    )
    .join(',');
}

/** A reading whose MIG devices carry the profile and MIG UUID `-L` gave (the same object if none). */
export function withMigNames(gpu: GpuReading, listing: MigListing): GpuReading {
  const listed = listing.get(gpu.uuid);
  if (!listed || !gpu.migDevices) return gpu;
  return {
    ...gpu,
    migDevices: gpu.migDevices.map((m) => {
      const l = m.index === undefined ? undefined : listed.get(m.index);
      if (!l) return m;
      return {
        ...m,
        profile: m.profile ?? l.profile,
        ...(l.uuid && !m.uuid ? { uuid: l.uuid } : {}),
      };
    }),
  };
}
