/**
 * Payloads of the gpulse MQTT topics: builders (agent side) and schemas (gateway side).
 * JSON with snake_case keys and units in the key names; deflate above a size threshold.
 */
import { createHash } from 'node:crypto';
import { deflateSync, inflateSync } from 'node:zlib';
import type { AgentEvent } from '../../agent/core/events.js';
import type { Sample } from '../../agent/core/types.js';
import { DICTIONARIES, DICTIONARY } from './deflate-dictionary.js';

/** Version of the payload shapes (the `v` key); bumped only with an incompatible change. */
export const PAYLOAD_VERSION = 1;

/** Content type (MQTT 5 property) of an uncompressed payload. */
export const CONTENT_TYPE_JSON = 'application/json';
/** Content type of a zlib-wrapped deflate (RFC 1950) payload of the same JSON. */
export const CONTENT_TYPE_DEFLATE = 'application/json+deflate';
/** Content types gpulse sends. */
export type ContentType = typeof CONTENT_TYPE_JSON | typeof CONTENT_TYPE_DEFLATE;

/** Telemetry and event messages stay below this many bytes on the wire (issue: batches < 64 KB). */
export const MAX_MESSAGE_BYTES = 60_000;

/** Every gpulse metric name starts with this; payload keys drop it to save bytes. */
export const METRIC_PREFIX = 'gpulse_';

/** Series sharing one label set: `metrics` maps a metric name without `gpulse_` to its value. */
export interface SeriesGroup {
  readonly labels: Readonly<Record<string, string>>;
  readonly metrics: Readonly<Record<string, number>>;
}

/** Version of the telemetry shape (batches with a schema); events and status stay at 1. */
export const TELEMETRY_VERSION = 2;

/** Series of one label set in a schema: metric names without `gpulse_`, in value order. */
export interface SchemaGroup {
  readonly labels: Readonly<Record<string, string>>;
  readonly metrics: readonly string[];
}

/**
 * The series identities of a telemetry message. Values follow the flattened order of `series`
 * (every metric of the first group, then the second, ...). `id` is a hash of `series`.
 */
export interface TelemetrySchema {
  readonly id: string;
  readonly series: readonly SchemaGroup[];
}

/**
 * The values of one series over a batch: a number when it did not change, null when the series
 * (kept in a reused schema) was absent from the whole batch, else one entry per sample time (null
 * where the series was absent from that sample).
 */
export type ValueColumn = number | null | readonly (number | null)[];

/**
 * One telemetry message: a batch of samples of every series (or one part of them). Carries the
 * schema inline (`schema`) or only its id (`schema_id`) when the receiver already has it.
 */
export interface TelemetryPayload {
  readonly v: 2;
  /** The node's monotonic sequence number (shared by telemetry and events). */
  readonly seq: number;
  /** Sample times of the batch, Unix milliseconds, oldest first. */
  readonly ts: readonly number[];
  /** Present (true) when the message is sent from the spool after an outage. */
  readonly replay?: true;
  /** 1-based part number when one batch did not fit one message (each part has its own schema). */
  readonly part?: number;
  readonly parts?: number;
  readonly schema?: TelemetrySchema;
  readonly schema_id?: string;
  readonly values: readonly ValueColumn[];
}

/** Retained on `<node>/schema`: the schemas (one per part) the node's telemetry uses now. */
export interface SchemaPayload {
  readonly v: 2;
  /** When it was published, Unix ms (a retained schema past the gateway's TTL is ignored). */
  readonly ts: number;
  readonly schemas: readonly TelemetrySchema[];
}

/** One event as it travels (the agent's `AgentEvent`, unchanged). */
// Severity as a plain string: a gateway reads what agents of other versions send.
export interface EventRecord extends Omit<AgentEvent, 'severity'> {
  readonly severity: string;
}

/** One events message: events seen within a short window. */
export interface EventsPayload {
  readonly v: 1;
  readonly seq: number;
  /** Time of the newest event, Unix milliseconds. */
  readonly ts: number;
  readonly replay?: true;
  readonly events: readonly EventRecord[];
}

/** Retained status of a node; the offline form is registered as the MQTT last will. */
export interface StatusPayload {
  readonly v: 1;
  readonly state: 'online' | 'offline';
  /** When the message was made, Unix milliseconds (for the will: when the session began). */
  readonly ts: number;
  /** Connection counter of the node: a will of an older session never overrides a newer online. */
  readonly session: number;
  /** gpulse version (online only). */
  readonly version?: string;
  /** Why offline: `will` (connection lost) or `shutdown` (clean stop). */
  readonly reason?: 'will' | 'shutdown';
  /** Telemetry interval, so consumers can size their silence timeouts. */
  readonly telemetry_interval_seconds?: number;
}

/** Groups samples by label set; samples outside the `gpulse_` namespace or non-finite are skipped. */
export function seriesGroups(samples: readonly Sample[]): SeriesGroup[] {
  const groups = new Map<
    string,
    { labels: Record<string, string>; metrics: Record<string, number> }
  >();
  for (const s of samples) {
    if (!s.desc.name.startsWith(METRIC_PREFIX) || !Number.isFinite(s.value)) continue;
    const names = Object.keys(s.labels).sort();
    let key = '';
    for (const n of names) key += `${n}\u0000${s.labels[n]}\u0001`;
    let group = groups.get(key);
    if (!group) {
      const labels: Record<string, string> = {};
      for (const n of names) labels[n] = s.labels[n] ?? '';
      group = { labels, metrics: {} };
      groups.set(key, group);
    }
    const metric = s.desc.name.slice(METRIC_PREFIX.length);
    // Two sources of one series: the first wins, as in the Prometheus exposition.
    if (!(metric in group.metrics)) group.metrics[metric] = s.value;
  }
  return [...groups.values()];
}

/** A payload ready to publish. */
export interface EncodedBody {
  readonly body: Buffer;
  readonly contentType: ContentType;
}

/** Encodes JSON text, deflated when longer than `compressAbove` bytes and smaller that way. */
export function encodeBody(json: string, compressAbove: number): EncodedBody {
  const raw = Buffer.from(json, 'utf8');
  if (raw.length <= compressAbove) return { body: raw, contentType: CONTENT_TYPE_JSON };
  const deflated = deflateSync(raw, { level: 9, dictionary: DICTIONARY });
  if (deflated.length >= raw.length) return { body: raw, contentType: CONTENT_TYPE_JSON };
  return { body: deflated, contentType: CONTENT_TYPE_DEFLATE };
}

/** A payload could not be decoded; `reason` is the label value the gateway counts it under. */
export class PayloadError extends Error {
  readonly code = 'GPULSE_BAD_PAYLOAD';
  constructor(
    readonly reason: 'bad_encoding' | 'too_large' | 'bad_json' | 'bad_shape',
    message: string,
  ) {
    super(message);
    this.name = 'PayloadError';
  }
}

/**
 * Decodes a payload to JSON text. With MQTT 5 the content type says which encoding; MQTT 3.1.1 has
 * no properties, so the first byte decides: `{` is JSON, 0x78 is a zlib (deflate) header.
 */
export function decodeBody(
  body: Buffer,
  contentType: string | undefined,
  maxInflatedBytes: number,
): string {
  const first = body[0];
  const deflated =
    contentType === CONTENT_TYPE_DEFLATE ||
    (contentType !== CONTENT_TYPE_JSON && first === 0x78 && body.length > 2);
  if (!deflated) {
    if (contentType !== undefined && contentType !== CONTENT_TYPE_JSON)
      throw new PayloadError('bad_encoding', `unknown content type ${JSON.stringify(contentType)}`);
    if (body.length > maxInflatedBytes)
      throw new PayloadError('too_large', `payload of ${body.length} bytes exceeds the limit`);
    return body.toString('utf8');
  }
  // FDICT (RFC 1950 §2.2): the header names the preset dictionary by its Adler-32.
  let dictionary: Buffer | undefined;
  if (body.length >= 6 && ((body[1] as number) & 0x20) !== 0) {
    dictionary = DICTIONARIES.get(body.readUInt32BE(2));
    if (!dictionary)
      throw new PayloadError(
        'bad_encoding',
        `deflated with an unknown preset dictionary ${body.readUInt32BE(2).toString(16)} (newer agent? upgrade the gateway)`,
      );
  }
  try {
    // maxOutputLength stops a deflate bomb before it is inflated in memory. The output chunk is
    // sized from the input: gpulse JSON inflates to about 3-7 times its deflated size, and a
    // chunk below 4 KiB comes from Node's buffer pool instead of a fresh 16 KiB allocation per
    // message (about 15% of the inflate time at the gateway); larger output takes more chunks.
    const chunkSize = Math.min(64 * 1024, Math.max(1024, body.length * 4));
    return inflateSync(body, { maxOutputLength: maxInflatedBytes, dictionary, chunkSize }).toString(
      'utf8',
    );
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError)
      throw new PayloadError('too_large', `inflated payload exceeds ${maxInflatedBytes} bytes`);
    throw new PayloadError('bad_encoding', `not a zlib deflate stream: ${e.message}`);
  }
}

/** Marks a payload built by this module as replayed (its JSON always starts with `{"v":`). */
export function markReplay(json: string): string {
  if (json.startsWith('{"replay":')) return json;
  return `{"replay":true,${json.slice(1)}`;
}

// Longest seq the size estimate must allow for (Number.MAX_SAFE_INTEGER).
const SEQ_PLACEHOLDER = 9_007_199_254_740_991;

/** One built message: its JSON (stored in the spool) and what goes on the wire. */
export interface BuiltMessage extends EncodedBody {
  readonly seq: number;
  readonly ts: number;
  readonly json: string;
}

/** A built telemetry message: the self-contained form (schema inline) and the compact one. */
export interface BuiltTelemetry extends BuiltMessage {
  readonly schema: TelemetrySchema;
  /** The same message with only `schema_id`, for a connection that already carried the schema. */
  readonly compact: EncodedBody;
}

/** Limits of message building. */
export interface BuildOptions {
  /** Deflate payloads longer than this many bytes. */
  readonly compressAbove: number;
  /** Split into several messages above this encoded size (default MAX_MESSAGE_BYTES). */
  readonly maxBytes?: number;
  /**
   * Series of the previous schema (telemetry): kept in order, so a batch whose series are the same
   * or fewer keeps the schema id (absent ones are null) instead of sending a new schema each time
   * a series comes and goes; rebuilt when more than a quarter of it is absent.
   */
  readonly base?: readonly SchemaGroup[];
}

/** One sample of every series, as the publisher takes it at each telemetry interval. */
export interface TelemetrySample {
  readonly ts: number;
  readonly series: readonly SeriesGroup[];
}

/** Short id of a schema: 12 base64url characters of the SHA-256 of its series JSON. */
export function schemaId(series: readonly SchemaGroup[]): string {
  return createHash('sha256').update(JSON.stringify(series)).digest('base64url').slice(0, 12);
}

/** Series of a batch: the union over its samples, label sets and names in first-seen order. */
interface BatchTable {
  readonly groups: SchemaGroup[];
  /** Per group, the value columns of its metrics (one entry per sample; null = absent). */
  readonly columns: (number | null)[][][];
}

/** Most columns of a reused schema that may be absent from a whole batch before it is rebuilt. */
const MAX_DEAD_RATIO = 0.25;

function batchTable(
  samples: readonly TelemetrySample[],
  base?: readonly SchemaGroup[],
): BatchTable {
  type Entry = { index: number; labels: Record<string, string>; metrics: Map<string, number> };
  const byKey = new Map<string, Entry>();
  const order: Entry[] = [];
  const entry = (labels: Readonly<Record<string, string>>): Entry => {
    const names = Object.keys(labels).sort();
    let key = '';
    for (const n of names) key += `${n}\u0000${labels[n]}\u0001`;
    let e = byKey.get(key);
    if (!e) {
      const sorted: Record<string, string> = {};
      for (const n of names) sorted[n] = labels[n] ?? '';
      e = { index: order.length, labels: sorted, metrics: new Map() };
      byKey.set(key, e);
      order.push(e);
    }
    return e;
  };
  // The previous schema first, in its order: a batch with the same series (or fewer) keeps its id.
  for (const g of base ?? []) {
    const e = entry(g.labels);
    for (const m of g.metrics) if (!e.metrics.has(m)) e.metrics.set(m, e.metrics.size);
  }
  const cells: [number, number, number, number][] = [];
  samples.forEach((sample, si) => {
    for (const g of sample.series) {
      const e = entry(g.labels);
      for (const [metric, value] of Object.entries(g.metrics)) {
        let mi = e.metrics.get(metric);
        if (mi === undefined) {
          mi = e.metrics.size;
          e.metrics.set(metric, mi);
        }
        cells.push([e.index, mi, si, value]);
      }
    }
  });
  const columns = order.map((e) =>
    Array.from({ length: e.metrics.size }, () =>
      new Array<number | null>(samples.length).fill(null),
    ),
  );
  for (const [gi, mi, si, value] of cells) {
    const column = columns[gi]?.[mi];
    if (column) column[si] = value;
  }
  if (base && base.length > 0) {
    const all = columns.flat();
    const dead = all.filter((c) => c.every((v) => v === null)).length;
    // Too many series of the old schema are gone: start a fresh one.
    if (dead > all.length * MAX_DEAD_RATIO) return batchTable(samples);
  }
  return {
    groups: order.map((e) => ({ labels: e.labels, metrics: [...e.metrics.keys()] })),
    columns,
  };
}

/** A column as sent: one number when every sample has the same value, null when absent from all, else the array. */
function packColumn(column: readonly (number | null)[]): ValueColumn {
  if (column.every((v) => v === null)) return null;
  const first = column[0];
  if (first !== null && first !== undefined && column.every((v) => v === first)) return first;
  return column;
}

interface TelemetryParts {
  readonly seq: number;
  readonly ts: readonly number[];
  readonly part?: { part: number; parts: number };
  readonly schema: TelemetrySchema;
  readonly values: readonly ValueColumn[];
}

function telemetryJson(m: TelemetryParts, inline: boolean): string {
  const head = m.part ? `,"part":${m.part.part},"parts":${m.part.parts}` : '';
  const schema = inline
    ? `"schema":${JSON.stringify(m.schema)}`
    : `"schema_id":${JSON.stringify(m.schema.id)}`;
  return `{"v":${TELEMETRY_VERSION},"seq":${m.seq},"ts":${JSON.stringify(m.ts)}${head},${schema},"values":${JSON.stringify(m.values)}}`;
}

function chunkOf(
  groups: readonly SchemaGroup[],
  columns: readonly (readonly (number | null)[])[][],
): { schema: TelemetrySchema; values: ValueColumn[] } {
  const series = [...groups];
  return {
    schema: { id: schemaId(series), series },
    values: columns.flatMap((cs) => cs.map(packColumn)),
  };
}

/** True when a batch of these samples fits one message with its schema inline. */
export function telemetryFits(samples: readonly TelemetrySample[], options: BuildOptions): boolean {
  const table = batchTable(samples, options.base);
  const { schema, values } = chunkOf(table.groups, table.columns);
  const json = telemetryJson(
    { seq: SEQ_PLACEHOLDER, ts: samples.map((s) => s.ts), schema, values },
    true,
  );
  return (
    encodeBody(json, options.compressAbove).body.length <= (options.maxBytes ?? MAX_MESSAGE_BYTES)
  );
}

/**
 * Builds the telemetry messages of one batch of samples. A batch too big for one message is split
 * by label set into parts, each with its own seq and schema and the same `ts`; a single label set
 * that alone exceeds the limit is dropped and reported through `onOversize`.
 */
export function buildTelemetry(
  samples: readonly TelemetrySample[],
  nextSeq: () => number,
  options: BuildOptions & { onOversize?: (group: SchemaGroup, bytes: number) => void },
): BuiltTelemetry[] {
  if (samples.length === 0) return [];
  const maxBytes = options.maxBytes ?? MAX_MESSAGE_BYTES;
  const ts = samples.map((s) => s.ts);
  const table = batchTable(samples, options.base);
  const indices = table.groups.map((_, i) => i);
  const chunk = (idx: readonly number[]) =>
    chunkOf(
      idx.map((i) => table.groups[i] as SchemaGroup),
      idx.map((i) => table.columns[i] ?? []),
    );
  const size = (idx: readonly number[], split: boolean) =>
    encodeBody(
      telemetryJson(
        {
          seq: SEQ_PLACEHOLDER,
          ts,
          ...(split ? { part: { part: 9999, parts: 9999 } } : {}),
          ...chunk(idx),
        },
        true,
      ),
      options.compressAbove,
    ).body.length;
  const chunks: (readonly number[])[] = [];
  const split = (idx: readonly number[]): void => {
    if (size(idx, true) <= maxBytes) chunks.push(idx);
    else if (idx.length === 1) {
      const g = table.groups[idx[0] as number] as SchemaGroup;
      options.onOversize?.(g, Buffer.byteLength(JSON.stringify(chunk(idx))));
    } else {
      const half = Math.ceil(idx.length / 2);
      split(idx.slice(0, half));
      split(idx.slice(half));
    }
  };
  if (size(indices, false) <= maxBytes) chunks.push(indices);
  else split(indices);
  return chunks.map((idx, i) => {
    const parts: TelemetryParts = {
      seq: nextSeq(),
      ts,
      ...(chunks.length > 1 ? { part: { part: i + 1, parts: chunks.length } } : {}),
      ...chunk(idx),
    };
    const json = telemetryJson(parts, true);
    return {
      seq: parts.seq,
      ts: ts[ts.length - 1] as number,
      json,
      schema: parts.schema,
      ...encodeBody(json, options.compressAbove),
      compact: encodeBody(telemetryJson(parts, false), options.compressAbove),
    };
  });
}

/** Most samples in one batch a receiver accepts (a day at 10 s is 8,640). */
export const MAX_BATCH_SAMPLES = 10_000;
/** Most parts one batch may be split into. */
export const MAX_PARTS = 256;

const isIndex = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Checks the shape of a telemetry message (the gateway's hot path, hand-written: a schema library
 * costs more per message than the rest of ingest). An inline schema is only checked to be an object
 * with an id; its series are checked where it is first compiled. Undefined when malformed.
 */
export function parseTelemetry(value: unknown): TelemetryPayload | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const t = value as Record<string, unknown>;
  if (t.v !== TELEMETRY_VERSION || !isIndex(t.seq)) return undefined;
  const ts = t.ts;
  if (!Array.isArray(ts) || ts.length === 0 || ts.length > MAX_BATCH_SAMPLES) return undefined;
  // Index loops: iterators here were an allocation per value column on every message.
  for (let i = 0; i < ts.length; i++) {
    const x: unknown = ts[i];
    if (typeof x !== 'number' || !(x >= 0) || x === Infinity) return undefined;
  }
  if (t.replay !== undefined && typeof t.replay !== 'boolean') return undefined;
  if (t.part !== undefined || t.parts !== undefined) {
    if (
      !isIndex(t.part) ||
      !isIndex(t.parts) ||
      t.part < 1 ||
      t.part > t.parts ||
      t.parts > MAX_PARTS
    )
      return undefined;
  }
  if (t.schema !== undefined) {
    const sc = t.schema as Record<string, unknown> | null;
    if (typeof sc !== 'object' || sc === null || typeof sc.id !== 'string') return undefined;
  } else if (typeof t.schema_id !== 'string') return undefined;
  const values = t.values;
  if (!Array.isArray(values)) return undefined;
  const n = ts.length;
  for (let i = 0; i < values.length; i++) {
    const c: unknown = values[i];
    if (typeof c === 'number' || c === null) continue;
    if (!Array.isArray(c) || c.length !== n) return undefined;
    for (let j = 0; j < n; j++) {
      const x: unknown = c[j];
      if (x !== null && typeof x !== 'number') return undefined;
    }
  }
  return value as TelemetryPayload;
}

/** The id of the schema a telemetry message refers to (inline or by id). */
export function telemetrySchemaId(t: TelemetryPayload): string {
  return t.schema?.id ?? t.schema_id ?? '';
}

/** The samples of a telemetry message, given its schema (the inverse of `buildTelemetry`). */
export function expandTelemetry(t: TelemetryPayload, schema: TelemetrySchema): TelemetrySample[] {
  const samples = t.ts.map((ts) => ({ ts, series: [] as SeriesGroup[] }));
  let col = 0;
  for (const g of schema.series) {
    const perSample: Record<string, number>[] = samples.map(() => ({}));
    for (const metric of g.metrics) {
      const c = t.values[col++];
      perSample.forEach((m, i) => {
        const v = typeof c === 'number' ? c : c?.[i];
        if (typeof v === 'number') m[metric] = v;
      });
    }
    perSample.forEach((metrics, i) => {
      if (Object.keys(metrics).length > 0) samples[i]?.series.push({ labels: g.labels, metrics });
    });
  }
  return samples;
}

/** The retained schema message of a node (deflated when large). */
export function buildSchema(
  schemas: readonly TelemetrySchema[],
  ts: number,
  compressAbove: number,
): EncodedBody {
  const json = JSON.stringify({ v: TELEMETRY_VERSION, ts, schemas } satisfies SchemaPayload);
  return encodeBody(json, compressAbove);
}

/** The wire form of one agent event (snake_case keys; `data` as the emitter gave it). */
export function eventRecord(e: AgentEvent): EventRecord {
  const out: EventRecord = {
    id: e.id,
    ts: e.ts,
    type: e.type,
    severity: e.severity,
    source: e.source,
    message: e.message,
    labels: e.labels,
    ...(e.data !== undefined ? { data: e.data } : {}),
  };
  return out;
}

/** Builds one events message (events larger than a message lose their `data`, marked truncated). */
export function buildEvents(
  events: readonly AgentEvent[],
  nextSeq: () => number,
  options: BuildOptions,
): BuiltMessage[] {
  const maxBytes = options.maxBytes ?? MAX_MESSAGE_BYTES;
  const records = events.map((e) => {
    const r = eventRecord(e);
    if (Buffer.byteLength(JSON.stringify(r)) <= maxBytes / 2) return r;
    return {
      ...r,
      message: r.message.slice(0, 1000),
      data: { truncated: true },
    } satisfies EventRecord;
  });
  const out: BuiltMessage[] = [];
  let batch: EventRecord[] = [];
  let batchBytes = 0;
  const flush = () => {
    if (batch.length === 0) return;
    const seq = nextSeq();
    const ts = Math.max(...batch.map((r) => r.ts));
    const json = `{"v":${PAYLOAD_VERSION},"seq":${seq},"ts":${ts},"events":${JSON.stringify(batch)}}`;
    out.push({ seq, ts, json, ...encodeBody(json, options.compressAbove) });
    batch = [];
    batchBytes = 0;
  };
  for (const r of records) {
    const bytes = Buffer.byteLength(JSON.stringify(r)) + 1;
    // Uncompressed size bounds the compressed one, so this never exceeds the limit.
    if (batchBytes + bytes > maxBytes - 100) flush();
    batch.push(r);
    batchBytes += bytes;
  }
  flush();
  return out;
}

/** Status JSON (small: never compressed). */
export function statusJson(status: Omit<StatusPayload, 'v'>): string {
  return JSON.stringify({ v: PAYLOAD_VERSION, ...status });
}
