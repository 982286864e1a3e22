/**
 * Values DCGM reports for a GPU that its primary source (nvidia-smi) may lack: taken into the
 * GPU's reading, so every surface (native series, dcgm-exporter names, `/api/v1/gpus`, MQTT)
 * serves the one value "whichever source has it". nvidia-smi prints the energy counter only
 * where the driver puts `total_energy_consumption` in `-q -x`; DCGM reads it from NVML on every
 * Volta or newer datacenter GPU (field 156). Both count the same NVML total since the driver
 * loaded, so a switch of source does not reset the counter.
 */
import type { GpuReading } from '../../agent/core/facts.js';
import { gpuLabels, gpuMetrics } from '../gpu-series.js';
import { SampleBuilder } from '../../agent/core/metric.js';
import type { Sample } from '../../agent/core/types.js';
import type { DcgmGpuFact } from './dcgm-reading.js';

/** Reading keys filled from DCGM where the primary source has no value. */
const FILLABLE = ['energyJoules'] as const satisfies readonly (keyof GpuReading)[];

type Fillable = (typeof FILLABLE)[number];

interface Filled {
  readonly fact: DcgmGpuFact;
  readonly reading: GpuReading;
  readonly keys: readonly Fillable[];
}

// Keyed by the primary reading: the same pair of inputs gives the same object back, so caches
// keyed on reading identity (the compat series) still hit while nothing changed.
const byPrimary = new WeakMap<GpuReading, Filled>();
const keysOf = new WeakMap<GpuReading, readonly Fillable[]>();

/** The primary reading with what only DCGM has filled in (the same object when nothing is). */
export function fillFromDcgm(primary: GpuReading, fact: DcgmGpuFact): GpuReading {
  const cached = byPrimary.get(primary);
  if (cached?.fact === fact) return cached.reading;
  const keys = FILLABLE.filter((k) => primary[k] === undefined && fact.reading[k] !== undefined);
  const reading =
    keys.length === 0
      ? primary
      : { ...primary, ...Object.fromEntries(keys.map((k) => [k, fact.reading[k]])) };
  byPrimary.set(primary, { fact, reading, keys });
  if (keys.length > 0) keysOf.set(reading, keys);
  return reading;
}

/**
 * Native series of the values `fillFromDcgm` took from DCGM: the primary source's collector does
 * not emit them, so the deriver does. Readings not filled give nothing.
 */
export function filledSamples(readings: readonly GpuReading[]): Sample[] {
  const b = new SampleBuilder();
  for (const r of readings) {
    const keys = keysOf.get(r);
    if (keys?.includes('energyJoules')) b.add(gpuMetrics.energy, gpuLabels(r), r.energyJoules);
  }
  return b.build();
}
