// Minimum Linux x86_64 driver of each CUDA toolkit (GA release), from the "CUDA Toolkit and
// Corresponding Driver Versions" table of NVIDIA's CUDA Toolkit release notes
// (https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/). CUDA minor version compatibility
// (same major, older driver, no PTX JIT of newer code) starts at the major's first driver:
// 11.x ≥ 450.80.02, 12.x ≥ 525.60.13, 13.x ≥ 580.
// Newer toolkits than this table are judged by the CUDA version the driver itself reports.

/** Toolkit version → minimum Linux driver for full support. */
export const CUDA_TOOLKIT_DRIVERS: Readonly<Record<string, string>> = {
  '11.0': '450.51.05',
  '11.1': '455.23',
  '11.2': '460.27.03',
  '11.3': '465.19.01',
  '11.4': '470.42.01',
  '11.5': '495.29.05',
  '11.6': '510.39.01',
  '11.7': '515.43.04',
  '11.8': '520.61.05',
  '12.0': '525.60.13',
  '12.1': '530.30.02',
  '12.2': '535.54.03',
  '12.3': '545.23.06',
  '12.4': '550.54.14',
  '12.5': '555.42.02',
  '12.6': '560.28.03',
  '12.8': '570.26',
  '12.9': '575.51.03',
  '13.0': '580.65.06',
};

/** CUDA major → minimum driver for minor version compatibility. */
export const MINOR_COMPAT_DRIVERS: Readonly<Record<string, string>> = {
  '11': '450.80.02',
  '12': '525.60.13',
  '13': '580.65.06',
};

/** Compares dotted versions numerically ("570.26" < "570.124.06"); missing parts count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** "12.4", "12.4.1", "cuda12.4" → "12.4"; undefined when it is not a CUDA version. */
export function normaliseCuda(text: string): string | undefined {
  const m = /^(?:cuda[-_ ]?)?(\d{1,2})\.(\d{1,2})(?:\.\d+)?$/i.exec(text.trim());
  return m ? `${Number(m[1])}.${Number(m[2])}` : undefined;
}

/** How well a driver supports a CUDA version. */
export interface CudaSupport {
  /** full: the driver supports it; minor-compat: runs through minor version compatibility; none. */
  readonly level: 'full' | 'minor-compat' | 'none' | 'unknown';
  /** Minimum driver for full support, when the table knows the toolkit. */
  readonly minimumDriver?: string;
  /** Minimum driver of the major's minor version compatibility. */
  readonly minorCompatDriver?: string;
}

/**
 * Judges `cuda` against a driver. The CUDA version the driver reports (nvidia-smi's "CUDA
 * Version") is the newest it supports in full, so it decides when present; the table decides
 * for old drivers that do not report one.
 */
export function cudaSupport(
  cuda: string,
  driverVersion?: string,
  driverCuda?: string,
): CudaSupport {
  const minimumDriver = CUDA_TOOLKIT_DRIVERS[cuda];
  const major = cuda.split('.')[0] ?? '';
  const minorCompatDriver = MINOR_COMPAT_DRIVERS[major];
  const base = { minimumDriver, minorCompatDriver };
  let full: boolean | undefined;
  if (driverCuda) full = compareVersions(driverCuda, cuda) >= 0;
  else if (driverVersion && minimumDriver)
    full = compareVersions(driverVersion, minimumDriver) >= 0;
  if (full === true) return { level: 'full', ...base };
  if (full === undefined) return { level: 'unknown', ...base };
  if (
    driverVersion &&
    minorCompatDriver &&
    compareVersions(driverVersion, minorCompatDriver) >= 0 &&
    (!driverCuda || driverCuda.split('.')[0] === major)
  )
    return { level: 'minor-compat', ...base };
  return { level: 'none', ...base };
}
