import { cellNumber } from './profiles.js';
import type { Reading } from './source.js';

/**
 * `nvidia-smi pmon`'s two header lines, byte for byte as the 590-610 drivers print them
 * (fixtures/text/*__pmon.txt), trailing space included.
 */
export const PMON_HEADER =
  '# gpu         pid   type     sm    mem    enc    dec    jpg    ofa    command \n' +
  '# Idx           #    C/G      %      %      %      %      %      %    name \n';

const cell = (v: number | undefined): string => (v === undefined ? '-' : String(v)).padStart(7);

/**
 * The name pmon prints: the executable's base name as the kernel keeps it (15 characters on
 * Linux, as `comm`; Windows drivers print 16), padded to 15.
 */
export function pmonName(processName: string): string {
  const windows = processName.includes('\\');
  const base = processName.split(/[\\/]/).pop() ?? processName;
  return base.slice(0, windows ? 16 : 15).padEnd(15);
}

/** One data line: right-aligned gpu (5), pid (11), type (6), six 7-wide values, the name. */
export function pmonLine(
  gpu: number,
  pid: number | undefined,
  type: string,
  values: readonly (number | undefined)[],
  name: string,
): string {
  const pidText = (pid === undefined ? '-' : String(pid)).padStart(11);
  const cells = [0, 1, 2, 3, 4, 5].map((i) => cell(values[i])).join('');
  return `${String(gpu).padStart(5)}${pidText}${type.padStart(6)}${cells}    ${name}\n`;
}

/** Splits a GPU-wide percentage over `n` processes (whole percent each, as pmon prints). */
function share(total: number | undefined, n: number): number | undefined {
  if (total === undefined || n === 0) return undefined;
  const each = Math.floor(total / n);
  // pmon prints "-" for a process with no sample in the window; an idle GPU has none.
  return each > 0 ? each : undefined;
}

/**
 * One pmon sample of the selected GPUs. The simulated driver splits each GPU's utilization
 * evenly over its compute processes (the real one samples each process); a GPU whose
 * utilization is N/A (MIG) prints "-" everywhere, as the captures show; a GPU without
 * processes prints its "-" row.
 */
export function pmonBlock(reading: Reading, selected: readonly number[]): string {
  const lines: string[] = [];
  for (const gpu of reading.gpus) {
    if (!selected.includes(gpu.index)) continue;
    const apps = reading.apps.filter((a) => a.gpuIndex === gpu.index);
    if (apps.length === 0) {
      lines.push(pmonLine(gpu.index, undefined, '-', [], '-'.padEnd(15)));
      continue;
    }
    const n = apps.length;
    const sm = share(cellNumber(gpu.cells.get('utilization.gpu')), n);
    const mem = share(cellNumber(gpu.cells.get('utilization.memory')), n);
    const enc = share(cellNumber(gpu.cells.get('utilization.encoder')), n);
    const dec = share(cellNumber(gpu.cells.get('utilization.decoder')), n);
    for (const a of apps) {
      const pid = Number(a.cells.get('pid'));
      lines.push(
        pmonLine(
          gpu.index,
          Number.isInteger(pid) ? pid : undefined,
          'C',
          [sm, mem, enc, dec, undefined, undefined],
          pmonName(a.cells.get('process_name') ?? ''),
        ),
      );
    }
  }
  return lines.join('');
}
