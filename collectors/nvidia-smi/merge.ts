import type { GpuProcess, GpuReading } from '../../agent/core/facts.js';

/** What the latest `-q -x` document says about one GPU, keyed by UUID. */
export type XmlExtras = ReadonlyMap<
  string,
  {
    readonly gpu: GpuReading;
    readonly processes: readonly GpuProcess[];
    readonly cudaVersion?: string;
  }
>;

/**
 * Fills what the CSV stream lacks (MIG devices, retired pages, CUDA version, ...) from the slower
 * XML document. The CSV is fresher, so its values win wherever it has them.
 */
export function mergeXmlExtras(readings: readonly GpuReading[], extras: XmlExtras): GpuReading[] {
  if (extras.size === 0) return [...readings];
  return readings.map((csv) => {
    const xml = extras.get(csv.uuid);
    if (!xml) return csv;
    // Runs for every GPU every second: plain key loops, no entry arrays.
    const merged: Record<string, unknown> = { ...xml.gpu };
    overlay(merged, csv);
    merged.clocksHz = overlay({ ...xml.gpu.clocksHz }, csv.clocksHz);
    merged.maxClocksHz = overlay({ ...xml.gpu.maxClocksHz }, csv.maxClocksHz);
    merged.throttle = overlay({ ...xml.gpu.throttle }, csv.throttle);
    merged.throttleSeconds = overlay({ ...xml.gpu.throttleSeconds }, csv.throttleSeconds);
    if (csv.ecc || xml.gpu.ecc) merged.ecc = overlay({ ...xml.gpu.ecc }, csv.ecc ?? {});
    merged.cudaVersion = csv.cudaVersion ?? xml.gpu.cudaVersion ?? xml.cudaVersion;
    // Index and identity come from the CSV stream, which the series are keyed on.
    merged.index = csv.index;
    return merged as unknown as GpuReading;
  });
}

/** Copies `from`'s defined values onto `into` (undefined never hides a value). */
function overlay(into: Record<string, unknown>, from: object): Record<string, unknown> {
  for (const key of Object.keys(from)) {
    const value = (from as Record<string, unknown>)[key];
    if (value !== undefined) into[key] = value;
  }
  return into;
}
