import type { GpuProcess, GpuReading } from '../../agent/facts.js';

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
    const merged: Record<string, unknown> = { ...xml.gpu };
    for (const [key, value] of Object.entries(csv)) {
      if (value !== undefined) merged[key] = value;
    }
    merged.clocksHz = { ...xml.gpu.clocksHz, ...definedOnly(csv.clocksHz) };
    merged.maxClocksHz = { ...xml.gpu.maxClocksHz, ...definedOnly(csv.maxClocksHz) };
    merged.throttle = { ...xml.gpu.throttle, ...definedOnly(csv.throttle) };
    merged.throttleSeconds = { ...xml.gpu.throttleSeconds, ...definedOnly(csv.throttleSeconds) };
    if (csv.ecc || xml.gpu.ecc) merged.ecc = { ...xml.gpu.ecc, ...definedOnly(csv.ecc ?? {}) };
    merged.cudaVersion = csv.cudaVersion ?? xml.gpu.cudaVersion ?? xml.cudaVersion;
    // Index and identity come from the CSV stream, which the series are keyed on.
    merged.index = csv.index;
    return merged as unknown as GpuReading;
  });
}

function definedOnly<T extends object>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}
