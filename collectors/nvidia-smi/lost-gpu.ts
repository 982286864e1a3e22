/**
 * The line nvidia-smi prints in place of a GPU it cannot open (fallen off the bus, hung in a
 * reset), among the good rows of the others. Its shape changed with the driver:
 *
 *   Unable to determine the device handle for GPU 0000:0B:00.0: Unknown Error          (≤ 520)
 *   Unable to determine the device handle for GPU0000:17:00.0: Unknown Error           (525–560)
 *   Unable to determine the device handle for GPU1: 0000:34:00.0: Unknown Error        (recent)
 *   Unable to determine the device handle for gpu 0000:18:00.0: Unknown Error          (-L)
 *   Unable to determine the device handle for GPU0: 0000:24:00.0: GPU is lost.  Reboot the system to recover this GPU
 *
 * (NVIDIA/open-gpu-kernel-modules#387, NordicHPC/sonar#72, meta-llama/llama-models#200,
 * pdbear/syno_nvidia_gpu_driver#22, JosephKJ/OWOD#81; the last two forms from user reports of
 * 610.57.04 and Windows 616.92 quoted in public repositories.) Windows builds say "detect"
 * instead of "determine" (jamesstringer90/Easy-GPU-PV#276).
 */
import type { GpuReading, LostGpu } from '../../agent/core/facts.js';
import { identityOf } from '../gpu-series.js';

/** What the line says about the GPU it could not open. */
export interface DeviceHandleError {
  /** NVML index, on drivers that print it. */
  readonly index?: number;
  /** Bus id as nvidia-smi's CSV prints it (`00000000:34:00.0`), when the line has one. */
  readonly pciBusId?: string;
  /** NVML's words: `Unknown Error`, `GPU is lost.  Reboot the system to recover this GPU`, ... */
  readonly error: string;
}

const LINE_RE =
  /^Unable to (?:determine|detect) the device handle for gpu ?(?:(\d{1,3}):\s*)?(?:([0-9a-f]{4}|[0-9a-f]{8}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7]):\s*)?(.+)$/i;

/** Parses the line; undefined for any other line. */
export function parseDeviceHandleError(line: string): DeviceHandleError | undefined {
  const m = LINE_RE.exec(line.trim());
  if (!m) return undefined;
  const [, index, domain, bus, device, fn, error = ''] = m;
  return {
    ...(index !== undefined ? { index: Number(index) } : {}),
    ...(domain !== undefined
      ? {
          pciBusId: `${domain.padStart(8, '0')}:${bus}:${device}.${fn}`.toUpperCase(),
        }
      : {}),
    error: error.trim(),
  };
}

/** A handle error as it appeared in a block: where it stood gives the index old drivers omit. */
export interface PlacedHandleError extends DeviceHandleError {
  /** Its row's position in the block (GPUs print in index order). */
  readonly position: number;
}

/** Why a GPU counts as lost when the driver printed nothing about it. */
export const MISSING_REASON = 'no longer listed by nvidia-smi';

/** Blocks a known GPU must be absent from, without a line about it, before it counts as lost. */
const MISSING_BLOCKS = 2;

const sameBus = (a: string | undefined, b: string | undefined): boolean =>
  a !== undefined && b !== undefined && a.toUpperCase() === b.toUpperCase();

/**
 * Which GPUs are lost, block after block. A GPU is lost while nvidia-smi prints its handle error
 * instead of its row, or (a driver that says it on stderr, or says nothing) once a GPU seen
 * before is absent from two complete blocks in a row. Identities are remembered from the rows
 * seen, so a lost GPU keeps its index, UUID and name; one lost before gpulse started has the
 * index and bus of its line and an empty UUID.
 */
export class LostGpuTracker {
  private readonly seen = new Map<string, GpuReading>();
  private lost = new Map<string, LostGpu>();
  private readonly missing = new Map<string, number>();

  /** Takes one complete block (every row, integrated GPUs included) and returns the lost GPUs. */
  update(
    readings: readonly GpuReading[],
    handles: readonly PlacedHandleError[],
    now: number,
  ): LostGpu[] {
    const present = new Set<string>();
    for (const r of readings) {
      present.add(r.uuid);
      this.seen.set(r.uuid, identityOf(r));
      this.missing.delete(r.uuid);
    }
    const next = new Map<string, LostGpu>();
    const explained = new Set<string>();
    for (const h of handles) {
      const index = h.index ?? h.position;
      const known =
        [...this.seen.values()].find((g) => sameBus(g.pciBusId, h.pciBusId)) ??
        (h.pciBusId === undefined
          ? [...this.seen.values()].find((g) => g.index === index)
          : undefined);
      const key = known?.uuid ?? `bus:${h.pciBusId ?? `#${index}`}`;
      if (known) explained.add(known.uuid);
      const reading = known ?? {
        ...identityOf({
          index,
          uuid: '',
          clocksHz: {},
          maxClocksHz: {},
          throttle: {},
          throttleSeconds: {},
        }),
        ...(h.pciBusId !== undefined ? { pciBusId: h.pciBusId } : {}),
      };
      next.set(key, { reading, reason: h.error, since: this.lost.get(key)?.since ?? now });
    }
    for (const [uuid, reading] of this.seen) {
      if (present.has(uuid) || explained.has(uuid)) continue;
      const blocks = (this.missing.get(uuid) ?? 0) + 1;
      this.missing.set(uuid, blocks);
      const prev = this.lost.get(uuid);
      if (prev === undefined && blocks < MISSING_BLOCKS) continue;
      next.set(uuid, {
        reading,
        reason: prev?.reason ?? MISSING_REASON,
        since: prev?.since ?? now,
      });
    }
    this.lost = next;
    return [...next.values()].sort((a, b) => a.reading.index - b.reading.index);
  }

  /** The GPUs lost as of the last block. */
  current(): LostGpu[] {
    return [...this.lost.values()].sort((a, b) => a.reading.index - b.reading.index);
  }
}
