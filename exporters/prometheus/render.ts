import type { MetricDesc, Sample } from '../../agent/core/types.js';

/** Exposition formats gpulse serves. */
export type ExpositionFormat = 'prometheus' | 'openmetrics';

/** Content type of each format. */
export const CONTENT_TYPES: Readonly<Record<ExpositionFormat, string>> = {
  prometheus: 'text/plain; version=0.0.4; charset=utf-8',
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
};

/** A sample that could not be rendered, with why (conflicting family, bad labels). */
export interface RenderProblem {
  readonly metric: string;
  readonly problem: string;
}

/** Metric types the exposition carries (gpulse's own families are gauges and counters). */
export type FamilyType = 'gauge' | 'counter' | 'histogram';

/**
 * A family collected elsewhere (prom-client's process metrics), in the shape of prom-client's
 * `getMetricsAsJSON`: a histogram's samples name their own `_bucket`/`_sum`/`_count` series.
 */
export interface ForeignFamily {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly values: readonly {
    readonly value: number;
    readonly labels?: Readonly<Partial<Record<string, string | number>>>;
    readonly metricName?: string;
  }[];
}

/** One family with its sample lines, ready to print in either format. */
export interface LineFamily {
  readonly name: string;
  readonly help: string;
  readonly type: FamilyType;
  /**
   * Its sample lines, each ending in a newline: the same bytes in both formats, empty without
   * samples. Bytes rather than strings because they are kept until the next snapshot: outside
   * the JavaScript heap they are not copied by each young-generation GC and promoted.
   */
  readonly samples: Buffer;
}

/** A family being filled. */
interface OpenFamily {
  readonly name: string;
  readonly help: string;
  readonly type: FamilyType;
  /** The gpulse declaration (none for a foreign family), to refuse a conflicting second one. */
  readonly desc?: MetricDesc;
  readonly lines: string[];
  /** Label sets it has, to refuse a second sample of the same series. */
  readonly seen: Set<string>;
}

/**
 * Families and their sample lines, grouped from samples added one at a time, so that a caller can
 * spread the work over several turns of the event loop. Both formats are printed from the same
 * lines ({@link renderFamilies}): they differ only in the family name of a counter and `# EOF`,
 * so text and OpenMetrics scrapes of one rendering carry the very same samples.
 */
export class FamilyLines {
  private readonly families = new Map<string, OpenFamily>();

  constructor(private readonly onProblem?: (p: RenderProblem) => void) {}

  /** Adds one gpulse sample; a sample that would make the exposition invalid is reported and dropped. */
  add(s: Sample): void {
    const { desc } = s;
    let family = this.families.get(desc.name);
    if (!family) {
      family = {
        name: desc.name,
        help: desc.help,
        type: desc.type,
        desc,
        lines: [],
        seen: new Set(),
      };
      this.families.set(desc.name, family);
    } else if (family.desc !== desc && (!family.desc || !sameDesc(family.desc, desc))) {
      this.onProblem?.({
        metric: desc.name,
        problem: 'declared twice with different help, type or labels',
      });
      return;
    }
    const labelText = formatLabels(desc, s, this.onProblem);
    if (labelText === undefined) return;
    // Two sources reporting the same series would make the exposition invalid: first one wins.
    if (family.seen.has(labelText)) {
      this.onProblem?.({ metric: desc.name, problem: `duplicate series ${desc.name}${labelText}` });
      return;
    }
    if (desc.type === 'counter' && s.value < 0) {
      this.onProblem?.({ metric: desc.name, problem: 'negative counter value' });
      return;
    }
    family.seen.add(labelText);
    family.lines.push(`${desc.name}${labelText} ${formatValue(s.value)}`);
  }

  /**
   * Adds a whole foreign family, formatted at once: prom-client hands out its live value objects,
   * which its collectors change on a later turn of the event loop.
   */
  addForeign(f: ForeignFamily): void {
    const type = f.type;
    if (type !== 'gauge' && type !== 'counter' && type !== 'histogram') {
      this.onProblem?.({ metric: f.name, problem: `unsupported type ${type}` });
      return;
    }
    if (this.families.has(f.name)) {
      this.onProblem?.({ metric: f.name, problem: 'declared twice' });
      return;
    }
    // Without the suffix a counter's samples would be named differently in the two formats.
    if (type === 'counter' && !f.name.endsWith('_total')) {
      this.onProblem?.({ metric: f.name, problem: 'counter name does not end in _total' });
      return;
    }
    const lines: string[] = [];
    for (const v of f.values) {
      let labelText = '';
      let le: string | number | undefined;
      for (const [name, value] of Object.entries(v.labels ?? {})) {
        // `le` last, as Prometheus itself prints it.
        if (value === undefined) continue;
        if (name === 'le') le = value;
        else labelText += `${labelText ? ',' : ''}${name}="${escapeLabel(String(value))}"`;
      }
      if (le !== undefined) labelText += `${labelText ? ',' : ''}le="${formatLe(le)}"`;
      const sampleName = v.metricName ?? f.name;
      lines.push(`${sampleName}${labelText ? `{${labelText}}` : ''} ${formatValue(v.value)}`);
    }
    this.families.set(f.name, { name: f.name, help: f.help, type, lines, seen: new Set() });
  }

  /** The families in the order they were first seen. */
  list(): LineFamily[] {
    return [...this.families.values()].map(({ name, help, type, lines }) => ({
      name,
      help,
      type,
      samples: Buffer.from(lines.length === 0 ? '' : `${lines.join('\n')}\n`, 'utf8'),
    }));
  }
}

/** The line that ends an OpenMetrics exposition. */
export const EOF = Buffer.from('# EOF\n', 'utf8');

/**
 * Prints families in the Prometheus text format (0.0.4) or OpenMetrics 1.0 (see
 * {@link printFamily}; OpenMetrics ends with `# EOF`).
 */
export function renderFamilies(families: readonly LineFamily[], format: ExpositionFormat): Buffer {
  const parts = families.flatMap((f) => printFamily(f, format));
  if (format === 'openmetrics') parts.push(EOF);
  return Buffer.concat(parts);
}

/**
 * One family's HELP and TYPE lines and its samples. A family without samples prints nothing: a
 * TYPE line alone (prom-client's GC histogram before the first GC) tells a reader nothing.
 */
export function printFamily(family: LineFamily, format: ExpositionFormat): Buffer[] {
  const { name, help, type, samples } = family;
  if (samples.length === 0) return [];
  // OpenMetrics names a counter family without its _total suffix; its samples keep it.
  const familyName =
    format === 'openmetrics' && type === 'counter' ? name.replace(/_total$/, '') : name;
  const header = `# HELP ${familyName} ${escapeHelp(help)}\n# TYPE ${familyName} ${type}\n`;
  return [Buffer.from(header, 'utf8'), samples];
}

/**
 * Renders samples in the Prometheus text format (0.0.4) or OpenMetrics 1.0.
 *
 * Written by hand rather than through a prom-client Registry: a snapshot is replaced whole, so a
 * registry would be rebuilt for every snapshot, and that costs ~10 ms and a heap of garbage per
 * render for 8 GPUs × 64 processes, against well under 1 ms here (bench/scrape.mjs). The format
 * itself is small and fixed; escaping follows the exposition format specification.
 */
export function renderSamples(
  samples: readonly Sample[],
  format: ExpositionFormat,
  onProblem?: (p: RenderProblem) => void,
): string {
  const families = new FamilyLines(onProblem);
  for (const s of samples) families.add(s);
  return renderFamilies(families.list(), format).toString('utf8');
}

function formatLabels(
  desc: MetricDesc,
  s: Sample,
  onProblem?: (p: RenderProblem) => void,
): string | undefined {
  if (desc.labelNames.length === 0) {
    if (Object.keys(s.labels).length > 0) {
      onProblem?.({
        metric: desc.name,
        problem: `unexpected labels ${Object.keys(s.labels).join(',')}`,
      });
      return undefined;
    }
    return '';
  }
  let text = '{';
  for (let i = 0; i < desc.labelNames.length; i++) {
    const name = desc.labelNames[i] as string;
    const value = s.labels[name];
    if (value === undefined) {
      onProblem?.({ metric: desc.name, problem: `missing label ${name}` });
      return undefined;
    }
    if (i > 0) text += ',';
    text += `${name}="${escapeLabel(value)}"`;
  }
  if (Object.keys(s.labels).length !== desc.labelNames.length) {
    onProblem?.({ metric: desc.name, problem: 'unexpected extra labels' });
    return undefined;
  }
  return `${text}}`;
}

function sameDesc(a: MetricDesc, b: MetricDesc): boolean {
  return (
    a.type === b.type &&
    a.help === b.help &&
    a.labelNames.length === b.labelNames.length &&
    a.labelNames.every((l, i) => l === b.labelNames[i])
  );
}

const NEEDS_ESCAPE = /[\\"\n]/;

function escapeLabel(value: string): string {
  if (!NEEDS_ESCAPE.test(value)) return value;
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function formatLe(le: string | number): string {
  return typeof le === 'number' ? formatValue(le) : escapeLabel(le);
}
