/**
 * Pure parsers of `dcgmi` output: the `dmon` table and `discovery -l`. The formats follow
 * DCGM's dcgmi/DeviceMonitor.cpp and dcgmi/Query.cpp and the captured fixtures.
 */

/** One line of `dcgmi dmon` output, classified. */
export type DmonLine =
  /** `#Entity   GRACT        TENSO ...`: the column short names (reprinted every 15 rows). */
  | { readonly kind: 'header'; readonly columns: readonly string[] }
  /** `ID        ...`: the unit line under the header. */
  | { readonly kind: 'units' }
  /** `GPU 0     0.998   0.885 ...`: one entity's values; N/A cells are undefined. */
  | {
      readonly kind: 'row';
      readonly entity: string;
      readonly entityId: number;
      readonly values: readonly (number | undefined)[];
    }
  | { readonly kind: 'blank' }
  /** Anything else: an error message (`Error setting watches ...`) or garbage. */
  | { readonly kind: 'text'; readonly text: string };

const ROW_RE = /^(GPU|GPU-I|GPU-CI|vGPU|Switch)\s+(\d+)(?:\s+(.*))?$/;

/** Classifies one dmon line. */
export function parseDmonLine(line: string): DmonLine {
  const trimmed = line.trim();
  if (trimmed === '') return { kind: 'blank' };
  if (trimmed.startsWith('#Entity')) {
    return {
      kind: 'header',
      columns: trimmed.slice('#Entity'.length).trim().split(/\s+/).filter(Boolean),
    };
  }
  if (/^ID(\s|$)/.test(trimmed)) return { kind: 'units' };
  const m = ROW_RE.exec(trimmed);
  if (!m) return { kind: 'text', text: trimmed };
  const cells = (m[3] ?? '').trim().split(/\s+/).filter(Boolean);
  const values = cells.map((cell) => {
    if (cell === 'N/A') return undefined;
    const n = Number(cell);
    return Number.isFinite(n) ? n : Number.NaN;
  });
  if (values.some((v) => Number.isNaN(v))) return { kind: 'text', text: trimmed };
  return { kind: 'row', entity: m[1] ?? 'GPU', entityId: Number(m[2]), values };
}

/** One GPU as `dcgmi discovery -l` lists it. */
export interface DiscoveredGpu {
  readonly gpuId: number;
  readonly name?: string;
  readonly pciBusId?: string;
  readonly uuid?: string;
}

/** Parses `dcgmi discovery -l`: the GPU table (NvSwitches are ignored). */
export function parseDiscovery(text: string): DiscoveredGpu[] {
  const out: { gpuId: number; name?: string; pciBusId?: string; uuid?: string }[] = [];
  let inGpus = true;
  for (const line of text.split('\n')) {
    if (/NvSwitch(es)? found/.test(line)) inGpus = false;
    if (!inGpus || !line.startsWith('|')) continue;
    const cells = line.split('|').map((c) => c.trim());
    const id = cells[1] ?? '';
    const info = cells[2] ?? '';
    if (/^\d+$/.test(id)) out.push({ gpuId: Number(id) });
    const current = out[out.length - 1];
    if (!current) continue;
    const kv = /^([^:]+):\s*(.*)$/.exec(info);
    if (!kv) continue;
    const value = kv[2]?.trim() ?? '';
    if (value === '' || value === 'N/A') continue;
    if (kv[1] === 'Name') current.name = value;
    else if (kv[1] === 'PCI Bus ID') current.pciBusId = value;
    else if (kv[1] === 'Device UUID') current.uuid = value;
  }
  return out;
}

/** The count `dcgmi discovery -l` states (`1 GPU found.`); undefined when absent. */
export function discoveryCount(text: string): number | undefined {
  const m = /^(\d+) GPUs? found\./m.exec(text);
  return m ? Number(m[1]) : undefined;
}
