import type { GpuProcessUtilization } from '../../agent/core/facts.js';

/** Columns `nvidia-smi pmon` prints by default on current drivers (older ones lack jpg/ofa). */
export const DEFAULT_PMON_COLUMNS = [
  'gpu',
  'pid',
  'type',
  'sm',
  'mem',
  'enc',
  'dec',
  'jpg',
  'ofa',
  'command',
] as const;

/** One parsed data line; percentages as printed (undefined for "-"). */
export interface PmonRow {
  readonly gpuIndex: number;
  readonly pid: number;
  readonly type: string;
  readonly sm?: number;
  readonly mem?: number;
  readonly enc?: number;
  readonly dec?: number;
  readonly command: string;
}

/** What one line of `nvidia-smi pmon` output is. */
export type PmonLine =
  | { readonly kind: 'header'; readonly columns?: readonly string[] }
  | { readonly kind: 'row'; readonly row: PmonRow }
  /** A GPU with no process in this sample (`0  -  -  - ...`). */
  | { readonly kind: 'idle'; readonly gpuIndex: number }
  | { readonly kind: 'garbage' };

function percent(text: string | undefined): number | undefined {
  if (text === undefined || text === '-') return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Parses one line given the column names of the last header. The command is the rest of the
 * line: Windows names have spaces ("NVIDIA Share.exe").
 */
export function parsePmonLine(
  line: string,
  columns: readonly string[] = DEFAULT_PMON_COLUMNS,
): PmonLine {
  const trimmed = line.trim();
  if (trimmed.startsWith('#')) {
    const names = trimmed.slice(1).trim().split(/\s+/);
    // The first header line names the columns; the second gives units ("Idx", "#", "C/G", "%").
    return names[0] === 'gpu' ? { kind: 'header', columns: names } : { kind: 'header' };
  }
  if (trimmed === '') return { kind: 'garbage' };
  const tokens = trimmed.split(/\s+/);
  const at = (name: string): string | undefined => {
    const i = columns.indexOf(name);
    return i < 0 ? undefined : tokens[i];
  };
  const gpuIndex = Number(at('gpu'));
  if (!Number.isInteger(gpuIndex) || tokens.length < columns.length) return { kind: 'garbage' };
  if (at('pid') === '-') return { kind: 'idle', gpuIndex };
  const pid = Number(at('pid'));
  if (!Number.isInteger(pid) || pid <= 0) return { kind: 'garbage' };
  const commandAt = columns.indexOf('command');
  return {
    kind: 'row',
    row: {
      gpuIndex,
      pid,
      type: at('type') ?? '',
      sm: percent(at('sm')),
      mem: percent(at('mem')),
      enc: percent(at('enc')),
      dec: percent(at('dec')),
      command: commandAt < 0 ? '' : tokens.slice(commandAt).join(' '),
    },
  };
}

/**
 * One sample's rows as utilization facts. pmon prints "-" for a process without samples in the
 * window (it ran no kernel: 0) but also for every process of a GPU that cannot measure per-process
 * use (MIG): when no process of a GPU has a number, "-" means unknown (absent), else idle (0).
 */
export function pmonSample(rows: readonly PmonRow[]): GpuProcessUtilization[] {
  const measured = new Set<number>();
  for (const r of rows) if (r.sm !== undefined || r.mem !== undefined) measured.add(r.gpuIndex);
  return rows.map((r) => {
    const zero = measured.has(r.gpuIndex) ? 0 : undefined;
    const ratio = (v: number | undefined, fallback: number | undefined) =>
      v === undefined ? fallback : v / 100;
    return {
      pid: r.pid,
      gpuIndex: r.gpuIndex,
      processName: r.command,
      type: r.type,
      smRatio: ratio(r.sm, zero),
      memoryRatio: ratio(r.mem, zero),
      encoderRatio: ratio(r.enc, undefined),
      decoderRatio: ratio(r.dec, undefined),
    };
  });
}

/**
 * Groups the streaming output into samples: pmon prints each sample's rows back to back, so a
 * (GPU, PID) seen again starts the next sample.
 */
export class PmonSampler {
  private columns: readonly string[] = DEFAULT_PMON_COLUMNS;
  private rows: PmonRow[] = [];
  private readonly seen = new Set<string>();

  constructor(private readonly onSample: (sample: GpuProcessUtilization[]) => void) {}

  /** Feeds one line; returns false for a line that did not parse. */
  push(line: string): boolean {
    const parsed = parsePmonLine(line, this.columns);
    switch (parsed.kind) {
      case 'header':
        // Windows drivers repeat the header every few dozen lines, also inside a sample.
        if (parsed.columns) this.columns = parsed.columns;
        return true;
      case 'garbage':
        return line.trim() === '';
      case 'idle':
        if (this.seen.has(`${parsed.gpuIndex}:-`)) this.flush();
        this.seen.add(`${parsed.gpuIndex}:-`);
        return true;
      case 'row': {
        const key = `${parsed.row.gpuIndex}:${parsed.row.pid}`;
        if (this.seen.has(key)) this.flush();
        this.seen.add(key);
        this.rows.push(parsed.row);
        return true;
      }
    }
  }

  /** Ends the current sample (also called after a quiet moment: the last sample has no successor). */
  flush(): void {
    if (this.seen.size === 0) return;
    const rows = this.rows;
    this.rows = [];
    this.seen.clear();
    this.onSample(pmonSample(rows));
  }
}
