/**
 * Readers for the real nvidia-smi captures the simulator replays or builds profiles from:
 * multi-command capture files (nvidia_gpu_exporter corpus), `--query-*` CSV output and
 * `--help-query-*` text. Kept inside the simulator: the collector has its own parsers.
 */

/** One column of a `--query-*` CSV header, e.g. `memory.used [MiB]`. */
export interface CsvColumn {
  readonly name: string;
  /** Unit in brackets, e.g. `MiB`; undefined where the header has none. */
  readonly unit: string | undefined;
}

/** A parsed `--query-*` CSV table. */
export interface CsvTable {
  readonly columns: readonly CsvColumn[];
  /** Cells as printed, with units (see `withUnits`). */
  readonly rows: readonly (readonly string[])[];
}

/** A field entry of `--help-query-*` output. */
export interface HelpEntry {
  /** Canonical name first, then aliases (`"name" or "gpu_name"`). */
  readonly names: readonly string[];
  readonly description: string;
}

const RULE = /^#{20,}$/;

/**
 * Splits a capture into its sections, keyed by title (`capabilities :: version`,
 * `load :: query-gpu (csv, what the exporter parses)`). A body is the command's output minus
 * its final newline: the capture tool separates sections with two blank lines, which go.
 */
export function parseCaptureSections(text: string): Map<string, string> {
  const lines = text.split('\n');
  const sections = new Map<string, string>();
  let i = 0;
  while (i < lines.length) {
    const titleLine = lines[i + 1] ?? '';
    if (RULE.test(lines[i] ?? '') && titleLine.startsWith('# ') && titleLine.includes(' :: ')) {
      const title = titleLine.slice(2);
      let j = i + 2;
      while (j < lines.length && !RULE.test(lines[j] ?? '')) j++;
      const start = j + 1;
      let end = start;
      while (end < lines.length && !RULE.test(lines[end] ?? '')) end++;
      const body = lines.slice(start, end);
      for (let k = 0; k < 2 && body.length > 0 && body[body.length - 1] === ''; k++) body.pop();
      sections.set(title, body.join('\n'));
      i = end;
    } else {
      i++;
    }
  }
  return sections;
}

/** Splits a header cell `memory.used [MiB]` into name and unit. */
export function parseHeaderCell(cell: string): CsvColumn {
  const m = /^(.*?) \[([^\]]+)\]$/.exec(cell.trim());
  return m ? { name: m[1] ?? '', unit: m[2] } : { name: cell.trim(), unit: undefined };
}

/** Splits one CSV line the way nvidia-smi joins it (", "; no quoting exists). */
export function splitCsvLine(line: string): string[] {
  return line.split(', ');
}

/**
 * Parses `--query-*` CSV output with a header. Captures taken with `nounits` keep the units
 * in the header only; those cells get the unit back so every table holds printed-with-units
 * cells, and `nounits` output strips it again exactly as nvidia-smi does.
 */
export function parseQueryCsv(text: string): CsvTable {
  const lines = text.replace(/\r/g, '').split('\n');
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const [headerLine, ...rowLines] = lines;
  if (headerLine === undefined) return { columns: [], rows: [] };
  const columns = splitCsvLine(headerLine).map(parseHeaderCell);
  const rows = rowLines.map(splitCsvLine);
  return withUnits({ columns, rows });
}

/** True when the cell carries no value (`[N/A]`, `N/A`, `[Not Supported]`, empty). */
export function isNotAvailable(cell: string): boolean {
  return cell === '' || cell === 'N/A' || (cell.startsWith('[') && cell.endsWith(']'));
}

function endsWithUnit(cell: string, unit: string): boolean {
  return cell.endsWith(` ${unit}`);
}

/** Puts units back on cells of a `nounits` capture (a column whose cells never carry one). */
export function withUnits(table: CsvTable): CsvTable {
  const unitless = table.columns.map((col, c) => {
    if (col.unit === undefined) return false;
    const cells = table.rows.map((r) => r[c] ?? '').filter((v) => !isNotAvailable(v));
    return cells.length > 0 && cells.every((v) => !endsWithUnit(v, col.unit ?? ''));
  });
  if (!unitless.some(Boolean)) return table;
  const rows = table.rows.map((row) =>
    row.map((cell, c) => {
      const unit = table.columns[c]?.unit;
      return unitless[c] && unit !== undefined && !isNotAvailable(cell) ? `${cell} ${unit}` : cell;
    }),
  );
  return { columns: table.columns, rows };
}

const HELP_NAMES = /^"([^"]+)"(?: or "([^"]+)")*$/;

/** Field entries of `--help-query-gpu` / `--help-query-compute-apps` text, in order. */
export function parseHelpFields(help: string): HelpEntry[] {
  const lines = help.split('\n');
  const out: HelpEntry[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (!HELP_NAMES.test(line)) continue;
    const names = [...line.matchAll(/"([^"]+)"/g)].map((m) => m[1] ?? '');
    const description: string[] = [];
    for (let j = i + 1; j < lines.length && (lines[j] ?? '') !== ''; j++) {
      description.push(lines[j] ?? '');
    }
    out.push({ names, description: description.join('\n') });
  }
  return out;
}

/** A `MIG Device` block of `nvidia-smi -q` text. */
export interface QTextMigDevice {
  readonly index: number;
  readonly gpuInstanceId: number;
  readonly computeInstanceId: number;
  readonly attributes: Readonly<Record<string, number>>;
  readonly sramUncorrectable: string;
  readonly fbTotalMiB: number;
  readonly fbUsedMiB: number;
  readonly bar1TotalMiB: number;
}

function qValue(line: string): string {
  const colon = line.indexOf(' : ');
  return colon < 0 ? '' : line.slice(colon + 3).trim();
}

function qLabel(line: string): string {
  const colon = line.indexOf(' : ');
  return (colon < 0 ? line : line.slice(0, colon)).trim();
}

function mib(text: string): number {
  return Number(text.replace(/ MiB$/, ''));
}

/** The MIG devices of `nvidia-smi -q` text, in order. */
export function parseQTextMigDevices(qText: string): QTextMigDevice[] {
  const lines = qText.split('\n');
  const out: QTextMigDevice[] = [];
  for (let i = 0; i < lines.length; i++) {
    if ((lines[i] ?? '').trim() !== 'MIG Device') continue;
    const attributes: Record<string, number> = {};
    let index = 0;
    let gi = 0;
    let ci = 0;
    let sram = 'N/A';
    let block = '';
    let fbTotal = 0;
    let fbUsed = 0;
    let bar1Total = 0;
    for (let j = i + 1; j < lines.length; j++) {
      const line = lines[j] ?? '';
      if (!line.startsWith('        ')) break;
      const label = qLabel(line);
      const value = qValue(line);
      if (value === '') {
        block = label;
        continue;
      }
      if (label === 'Index') index = Number(value);
      else if (label === 'GPU Instance ID') gi = Number(value);
      else if (label === 'Compute Instance ID') ci = Number(value);
      else if (label.endsWith(' count')) attributes[label] = Number(value);
      else if (label === 'SRAM Uncorrectable') sram = value;
      else if (block === 'Shared FB Memory Usage' && label === 'Total') fbTotal = mib(value);
      else if (block === 'Shared FB Memory Usage' && label === 'Used') fbUsed = mib(value);
      else if (block === 'Shared BAR1 Memory' && label === 'Total') bar1Total = mib(value);
    }
    out.push({
      index,
      gpuInstanceId: gi,
      computeInstanceId: ci,
      attributes,
      sramUncorrectable: sram,
      fbTotalMiB: fbTotal,
      fbUsedMiB: fbUsed,
      bar1TotalMiB: bar1Total,
    });
  }
  return out;
}

/** MIG placement of processes in `nvidia-smi -q` text, by PID. */
export function parseQTextProcessPlacement(
  qText: string,
): Map<number, { gpuInstanceId: number; computeInstanceId: number }> {
  const out = new Map<number, { gpuInstanceId: number; computeInstanceId: number }>();
  let gi: number | undefined;
  let ci: number | undefined;
  for (const line of qText.split('\n')) {
    const label = qLabel(line);
    const value = qValue(line);
    if (label === 'GPU instance ID') gi = Number(value);
    else if (label === 'Compute instance ID') ci = Number(value);
    else if (label === 'Process ID' && gi !== undefined && ci !== undefined && !isNaN(gi)) {
      out.set(Number(value), { gpuInstanceId: gi, computeInstanceId: ci });
    }
  }
  return out;
}

/** The value of a top-level-ish `Label : value` line of `nvidia-smi -q` text. */
export function qTextValue(qText: string, label: string): string | undefined {
  for (const line of qText.split('\n')) {
    if (qLabel(line) === label && line.includes(' : ')) return qValue(line);
  }
  return undefined;
}

/** MIG lines of `nvidia-smi -L`: profile name per device index. */
export function parseListMigProfiles(list: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of list.split('\n')) {
    const m = /^\s+MIG (\S+)\s+Device\s+(\d+):/.exec(line);
    if (m) out.set(Number(m[2]), m[1] ?? '');
  }
  return out;
}

/**
 * `nvidia-smi -q` text as label paths (`BAR1 Memory Usage/Total` → `65536 MiB`), from the
 * first GPU block; nesting follows the four-space indentation.
 */
export function parseQTextTree(qText: string): Map<string, string> {
  const out = new Map<string, string>();
  const stack: string[] = [];
  for (const line of qText.split('\n')) {
    const m = /^( +)(\S.*?)\s*(?: : (.*))?$/.exec(line);
    if (!m) continue;
    const depth = Math.floor((m[1] ?? '').length / 4);
    if (depth < 1) continue;
    stack.length = Math.min(stack.length, depth - 1);
    const label = (m[2] ?? '').trim();
    const path = [...stack, label].join('/');
    if (m[3] === undefined) stack.push(label);
    else if (!out.has(path)) out.set(path, m[3].trim());
  }
  return out;
}
