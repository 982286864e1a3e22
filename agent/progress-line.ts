/** What ProgressLine writes to: process.stderr, or a test's fake terminal. */
export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(text: string): unknown;
}

/**
 * One line of progress that rewrites itself in place (`\r`, erase to the end of the line) on a
 * terminal, and writes nothing anywhere else: a log file or a pipe gets the summary, not a
 * hundred progress lines. Updates are throttled so a fast loop does not flood the terminal.
 */
export class ProgressLine {
  /** The latest text asked for, drawn or not yet (throttled). */
  private latest = '';
  /** What the terminal shows now. */
  private shown = '';
  private lastDraw = -Infinity;

  constructor(
    private readonly stream: ProgressStream,
    private readonly options: { readonly intervalMs?: number; readonly now?: () => number } = {},
  ) {}

  /** True when progress is drawn (the stream is a terminal). */
  get active(): boolean {
    return this.stream.isTTY === true;
  }

  /** Shows `text` in place of the current line, at most every intervalMs unless `force`. */
  update(text: string, force = false): void {
    this.latest = text;
    if (!this.active) return;
    const now = (this.options.now ?? Date.now)();
    if (!force && now - this.lastDraw < (this.options.intervalMs ?? 100)) return;
    this.lastDraw = now;
    this.draw();
  }

  /** Erases the line, e.g. before a log line, which redraw() then follows. */
  clear(): void {
    if (!this.active || this.shown === '') return;
    this.stream.write('\r\x1b[K');
    this.shown = '';
  }

  /** Draws the latest text again after other output. */
  redraw(): void {
    if (this.active) this.draw();
  }

  /** Erases the line for good: the summary comes next. */
  finish(): void {
    this.clear();
    this.latest = '';
  }

  private draw(): void {
    const width = Math.max(20, (this.stream.columns || 80) - 1);
    const line = this.latest.length > width ? `${this.latest.slice(0, width - 1)}…` : this.latest;
    if (line === this.shown || line === '') return;
    this.shown = line;
    this.stream.write(`\r${line}\x1b[K`);
  }
}

/** `n` bytes in the largest binary unit, up to TiB, that keeps the value at 1 or more. */
export function scaleBytes(n: number): { value: number; unit: string } {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return { value: v, unit: units[i] ?? 'B' };
}

/** Human-readable bytes in binary units: "512 B", "33.4 MiB". */
export function humanBytes(n: number): string {
  const { value, unit } = scaleBytes(n);
  return `${value.toFixed(unit === 'B' ? 0 : 1)} ${unit}`;
}
