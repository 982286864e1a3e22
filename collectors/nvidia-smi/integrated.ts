/**
 * Integrated (Tegra/Jetson) GPUs as nvidia-smi sees them. JetPack 6 ships nvidia-smi, but it
 * reports the SoC's GPU as "Orin (nvgpu)" with nearly every value N/A or Not Supported; the
 * tegrastats collector is the source of that GPU's values. This module is the one rule both
 * collectors use to agree on it.
 */

// "Orin (nvgpu)" on JetPack 6 (captures in fixtures/jetson/); nvgpu is the Tegra GPU driver.
const INTEGRATED_NAME = /\(nvgpu\)\s*$/i;

/** True for a GPU name nvidia-smi gives an integrated Tegra GPU ("Orin (nvgpu)"). */
export function isIntegratedGpuName(name: string | undefined): boolean {
  return name !== undefined && INTEGRATED_NAME.test(name);
}

/** One line of `nvidia-smi -L`. */
export interface ListedGpu {
  readonly index: number;
  readonly name: string;
  /** Absent when the line carries none or a placeholder ("N/A", "[removed]"). */
  readonly uuid?: string;
}

const LIST_LINE = /^GPU (\d+): (.+?) \(UUID: ([^)]*)\)\s*$/;
const UUID = /^GPU-[0-9a-fA-F-]{8,}$/;

/** GPUs of `nvidia-smi -L` output (MIG lines and anything else are skipped). */
export function parseGpuList(text: string): ListedGpu[] {
  const out: ListedGpu[] = [];
  for (const line of text.split('\n')) {
    const m = LIST_LINE.exec(line.replace(/\r$/, ''));
    if (!m) continue;
    const uuid = m[3]?.trim() ?? '';
    out.push({
      index: Number(m[1]),
      name: m[2] ?? '',
      ...(UUID.test(uuid) ? { uuid } : {}),
    });
  }
  return out;
}
