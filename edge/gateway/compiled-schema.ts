/**
 * A telemetry schema as the gateway keeps it: names checked once, labels renamed where they clash
 * with labels the gateway or Prometheus sets, each label set's text built, and what the schema
 * costs (memory kept, exposition bytes it can render) measured before anything is kept. A compiled
 * schema does not depend on the device: a fleet of alike devices shares one (see `schemaKey`).
 */
import { METRIC_PREFIX, schemaId, type SchemaGroup } from '../../exporters/mqtt/payloads.js';
import { schemaSchema } from '../../exporters/mqtt/payload-schemas.js';
import { escapeLabelValue } from './exposition.js';
import { Reject } from './reject.js';

/** Limits a schema is checked against when it is compiled. */
export interface SchemaLimits {
  /** Series (and value columns) of one schema at most. */
  readonly maxSeriesPerDevice: number;
  /** Exposition bytes one device may render (its series lines at their widest values). */
  readonly maxDeviceBytes: number;
}

/** One metric family of a schema: its value columns and their label strings. */
export interface CompiledFamily {
  readonly name: string;
  readonly columns: readonly number[];
  /**
   * The device's labels of each column, after the device's `{site="..",node=".."` prefix:
   * `,gpu="0"}` (or `}`). One string per label group, shared by its metrics and by every device
   * that has the schema (a per-series string cost ~150 bytes a series, 30 KB a device).
   */
  readonly labels: readonly string[];
}

/** A schema, compiled once: its series grouped by family with their label strings. */
export interface CompiledSchema {
  readonly id: string;
  /** Set when the id is the hash of the content: devices with the same key share this schema. */
  readonly key: string | undefined;
  /** Value columns of a message of this schema. */
  readonly columns: number;
  /** Distinct series it renders (duplicates in a schema render once). */
  readonly series: number;
  readonly families: readonly CompiledFamily[];
  /** Most bytes of exposition its series render (every value at its widest), without the device prefix. */
  readonly renderBytes: number;
  /** Memory the compiled schema keeps (label strings and column tables), estimated. */
  readonly keptBytes: number;
  /** Device label names renamed (`exported_<name>`) because the gateway or Prometheus sets them. */
  readonly renamedLabels: number;
}

const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const METRIC_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
/** Label values longer than this are refused (`bad_name`). */
export const MAX_LABEL_VALUE = 1024;
/** Labels per series at most (the device's own; site and node come on top). */
export const MAX_LABELS = 32;
const MAX_METRIC_NAME = 200;
/**
 * Label names a device's series never carry as they are: `site` and `node`, which the gateway
 * sets, and `job` and `instance`, which Prometheus sets on every scraped series (with
 * `honor_labels: true` a device could otherwise pose as another target). A clash is renamed the
 * way Prometheus renames one: `exported_` in front, again while the name is still taken.
 */
const RESERVED_LABELS = ['site', 'node', 'job', 'instance'] as const;
/** Longest text `String(number)` gives for a finite double, e.g. `-0.0000012345678901234567`. */
const MAX_VALUE_CHARS = 25;
/** Memory per value column in the compiled tables (column index, label string reference). */
const COLUMN_BYTES = 16;
/** Memory per family (its object and two arrays), measured: 61 families, 19 KB a Jetson schema. */
const FAMILY_BYTES = 160;
/** Memory per label group string apart from its characters (V8 string header). */
const STRING_BYTES = 24;
/** Memory of a schema apart from its families and label strings (objects, arrays, id). */
const SCHEMA_OVERHEAD_BYTES = 256;

/** Family names shared by every device that reports them (bounded against unique-name floods). */
const FAMILY_NAMES = new Map<string, string>();
const MAX_FAMILY_NAMES = 10_000;

/** `gpulse_<metric>`, one string per name across devices (a copy per device cost ~5 KB). */
function familyName(metric: string): string {
  const known = FAMILY_NAMES.get(metric);
  if (known !== undefined) return known;
  const name = METRIC_PREFIX + metric;
  if (FAMILY_NAMES.size < MAX_FAMILY_NAMES) FAMILY_NAMES.set(metric, name);
  return name;
}

/** `{site="..",node=".."`: what a device's series start with, before the schema's labels. */
export function devicePrefix(site: string, node: string): string {
  return `{site="${escapeLabelValue(site)}",node="${escapeLabelValue(node)}"`;
}

/**
 * The text of one label group after the device prefix (`,a="1",b="2"}` or `}`), with the
 * device's label names renamed where reserved.
 */
function groupLabels(labels: Readonly<Record<string, string>>): {
  text: string;
  renamed: number;
} {
  const names = Object.keys(labels);
  if (names.length > MAX_LABELS) throw new Reject('bad_shape');
  const taken = new Set<string>(RESERVED_LABELS);
  const parts: string[] = [];
  let renamed = 0;
  // Sorted first, so the renaming is the same whatever order the device sent them in; every
  // output name is checked against all before it, so none repeats (promtool and Prometheus refuse
  // a series with a label twice). A device's own `exported_site` sorts before `site` and keeps its
  // name; `site` then becomes `exported_exported_site`.
  for (const name of names.sort()) {
    const v = labels[name] as string;
    if (!LABEL_RE.test(name) || name.startsWith('__') || v.length > MAX_LABEL_VALUE)
      throw new Reject('bad_name');
    let out = name;
    while (taken.has(out)) out = `exported_${out}`;
    if (out !== name) renamed++;
    taken.add(out);
    parts.push(`,${out}="${escapeLabelValue(v)}"`);
  }
  parts.push('}');
  // One flat string: kept for as long as the schema is.
  return { text: parts.join(''), renamed };
}

/**
 * The key devices share a compiled schema under: its id, when the id is the hash of its series as
 * the agent computes it (`schemaId`). A schema whose id does not match its content (another
 * agent's hashing, or a forgery naming another device's id) is compiled for its device alone.
 */
export function schemaKey(raw: unknown): string | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const { id, series } = raw as { id?: unknown; series?: unknown };
  if (typeof id !== 'string' || !Array.isArray(series)) return undefined;
  try {
    return schemaId(series as SchemaGroup[]) === id ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Checks a schema's names and limits once and precomputes each series' family and label string.
 * Throws Reject: bad_shape, bad_name, series_limit (too many series or columns) or device_bytes
 * (its exposition alone would pass the device's byte limit).
 */
export function compileSchema(
  raw: unknown,
  limits: SchemaLimits,
  key: string | undefined = schemaKey(raw),
): CompiledSchema {
  const parsed = schemaSchema.safeParse(raw);
  if (!parsed.success) throw new Reject('bad_shape');
  const schema = parsed.data;
  const families = new Map<string, { columns: number[]; labels: string[] }>();
  const seen = new Set<string>();
  let column = 0;
  let series = 0;
  let renderBytes = 0;
  let keptBytes = SCHEMA_OVERHEAD_BYTES + schema.id.length;
  let renamedLabels = 0;
  for (const group of schema.series) {
    const { text: labels, renamed } = groupLabels(group.labels);
    renamedLabels += renamed;
    const labelBytes = Buffer.byteLength(labels);
    keptBytes += labelBytes + STRING_BYTES;
    for (const metric of group.metrics) {
      if (!METRIC_RE.test(metric) || metric.length > MAX_METRIC_NAME || metric.startsWith('fleet_'))
        throw new Reject('bad_name');
      const name = familyName(metric);
      const col = column++;
      if (column > limits.maxSeriesPerDevice) throw new Reject('series_limit');
      keptBytes += COLUMN_BYTES;
      const key = `${name}${labels}`;
      if (seen.has(key)) continue;
      seen.add(key);
      if (++series > limits.maxSeriesPerDevice) throw new Reject('series_limit');
      renderBytes += name.length + labelBytes + MAX_VALUE_CHARS + 2;
      // Checked as it grows: a hostile schema stops here, before its text is ever built.
      if (renderBytes > limits.maxDeviceBytes) throw new Reject('device_bytes');
      let f = families.get(name);
      if (!f) {
        f = { columns: [], labels: [] };
        families.set(name, f);
      }
      f.columns.push(col);
      f.labels.push(labels);
    }
  }
  return {
    id: schema.id,
    key,
    columns: column,
    series,
    // Sliced to their length: arrays grown by push keep spare capacity (17 slots for one
    // column), which for ~100 families a device was most of the gateway's heap.
    families: [...families].map(([name, f]) => ({
      name,
      columns: f.columns.slice(),
      labels: f.labels.slice(),
    })),
    renderBytes,
    keptBytes: keptBytes + families.size * FAMILY_BYTES,
    renamedLabels,
  };
}
