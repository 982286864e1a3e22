/**
 * Payloads of the gpulse MQTT topics: builders (agent side) and schemas (gateway side).
 * JSON with snake_case keys and units in the key names; deflate above a size threshold.
 */
import { deflateSync, inflateSync } from 'node:zlib';
import { z } from 'zod';
import type { AgentEvent } from '../../agent/events.js';
import type { Sample } from '../../agent/types.js';
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

/** One telemetry message: one snapshot of every series (or one part of it). */
export interface TelemetryPayload {
  readonly v: 1;
  /** The node's monotonic sequence number (shared by telemetry and events). */
  readonly seq: number;
  /** Sample time, Unix milliseconds. */
  readonly ts: number;
  /** Present (true) when the message is sent from the spool after an outage. */
  readonly replay?: true;
  /** 1-based part number when one snapshot did not fit one message. */
  readonly part?: number;
  readonly parts?: number;
  readonly series: readonly SeriesGroup[];
}

/** One event as it travels (the agent's `AgentEvent`, unchanged). */
export interface EventRecord {
  readonly id: number;
  readonly ts: number;
  readonly type: string;
  readonly severity: string;
  readonly source: string;
  readonly message: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly data?: Readonly<Record<string, unknown>>;
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
    // maxOutputLength stops a deflate bomb before it is inflated in memory.
    return inflateSync(body, { maxOutputLength: maxInflatedBytes, dictionary }).toString('utf8');
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

// Longest seq the split estimate must allow for (Number.MAX_SAFE_INTEGER).
const SEQ_PLACEHOLDER = 9_007_199_254_740_991;

/** One built message: its JSON (stored in the spool) and what goes on the wire. */
export interface BuiltMessage extends EncodedBody {
  readonly seq: number;
  readonly ts: number;
  readonly json: string;
}

/** Limits of message building. */
export interface BuildOptions {
  /** Deflate payloads longer than this many bytes. */
  readonly compressAbove: number;
  /** Split into several messages above this encoded size (default MAX_MESSAGE_BYTES). */
  readonly maxBytes?: number;
}

function telemetryJson(
  seq: number,
  ts: number,
  series: readonly SeriesGroup[],
  part?: { part: number; parts: number },
): string {
  const head = part ? `,"part":${part.part},"parts":${part.parts}` : '';
  return `{"v":${PAYLOAD_VERSION},"seq":${seq},"ts":${ts}${head},"series":${JSON.stringify(series)}}`;
}

/**
 * Builds telemetry messages of one snapshot. A snapshot too big for one message is split by label
 * set into parts with their own seq and the same `ts`; a single label set that alone exceeds the
 * limit is dropped and reported through `onOversize`.
 */
export function buildTelemetry(
  series: readonly SeriesGroup[],
  ts: number,
  nextSeq: () => number,
  options: BuildOptions & { onOversize?: (group: SeriesGroup, bytes: number) => void },
): BuiltMessage[] {
  const maxBytes = options.maxBytes ?? MAX_MESSAGE_BYTES;
  const size = (groups: readonly SeriesGroup[], split: boolean) =>
    encodeBody(
      telemetryJson(SEQ_PLACEHOLDER, ts, groups, split ? { part: 9999, parts: 9999 } : undefined),
      options.compressAbove,
    ).body.length;
  const chunks: (readonly SeriesGroup[])[] = [];
  const split = (groups: readonly SeriesGroup[]): void => {
    if (size(groups, true) <= maxBytes) chunks.push(groups);
    else if (groups.length === 1) {
      const g = groups[0] as SeriesGroup;
      options.onOversize?.(g, Buffer.byteLength(JSON.stringify(g)));
    } else {
      const half = Math.ceil(groups.length / 2);
      split(groups.slice(0, half));
      split(groups.slice(half));
    }
  };
  if (size(series, false) <= maxBytes) chunks.push(series);
  else split(series);
  return chunks.map((c, i) => {
    const seq = nextSeq();
    const json = telemetryJson(
      seq,
      ts,
      c,
      chunks.length > 1 ? { part: i + 1, parts: chunks.length } : undefined,
    );
    return { seq, ts, json, ...encodeBody(json, options.compressAbove) };
  });
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

// Gateway-side schemas: shapes only; names and sizes are checked where series are rendered.
// Unknown keys are allowed so a newer agent can add fields without older gateways rejecting it.

/** Shape of a telemetry message as the gateway accepts it. */
export const telemetrySchema = z.looseObject({
  v: z.literal(PAYLOAD_VERSION),
  seq: z.number().int().nonnegative(),
  ts: z.number().nonnegative(),
  replay: z.boolean().optional(),
  part: z.number().int().positive().optional(),
  parts: z.number().int().positive().optional(),
  series: z.array(
    z.looseObject({
      labels: z.record(z.string(), z.string()),
      metrics: z.record(z.string(), z.number()),
    }),
  ),
});

/** Shape of an events message as the gateway accepts it. */
export const eventsSchema = z.looseObject({
  v: z.literal(PAYLOAD_VERSION),
  seq: z.number().int().nonnegative(),
  ts: z.number().nonnegative(),
  replay: z.boolean().optional(),
  events: z.array(
    z.looseObject({
      ts: z.number(),
      type: z.string().min(1).max(128),
      severity: z.string().max(32),
    }),
  ),
});

/** Shape of a status message as the gateway accepts it. */
export const statusSchema = z.looseObject({
  v: z.literal(PAYLOAD_VERSION),
  state: z.enum(['online', 'offline']),
  ts: z.number().nonnegative(),
  session: z.number().int().nonnegative(),
  version: z.string().max(64).optional(),
  reason: z.string().max(32).optional(),
  telemetry_interval_seconds: z.number().positive().optional(),
});
