import type { Logger } from 'pino';
import type { Clock } from '../../agent/clock.js';
import { counter, gauge } from '../../agent/metric.js';
import { QuietTimer } from '../../agent/quiet-timer.js';
import type { MetricDesc } from '../../agent/types.js';
import type { z } from 'zod';
import {
  decodeBody,
  METRIC_PREFIX,
  parseTelemetry,
  PayloadError,
  telemetrySchemaId,
  type TelemetryPayload,
} from '../../exporters/mqtt/payloads.js';
import {
  eventsSchema,
  schemaMessageSchema,
  schemaSchema,
  statusSchema,
} from '../../exporters/mqtt/payload-schemas.js';
import { parseStreamTopic, streamTopic, type StreamName } from '../../exporters/mqtt/topics.js';
import type { IncomingMessage } from '../delivery.js';
import { familyText, formatLabels, formatValue, sampleLine } from './exposition.js';

/** Why a message was dropped (the `reason` of gpulse_fleet_rejected_messages_total). */
export type RejectReason =
  | 'bad_topic'
  | 'too_large'
  | 'bad_encoding'
  | 'bad_json'
  | 'bad_shape'
  | 'bad_name'
  | 'device_limit'
  | 'series_limit'
  | 'unknown_schema';

const REJECT_REASONS: readonly RejectReason[] = [
  'bad_topic',
  'too_large',
  'bad_encoding',
  'bad_json',
  'bad_shape',
  'bad_name',
  'device_limit',
  'series_limit',
  'unknown_schema',
];

/**
 * What became of a message: applied, stale (an older replay), rejected, pending (values of a
 * schema not seen yet, held until it arrives; counted once applied or dropped) or queued
 * (telemetry of a known device kept undecoded until the device is settled; counted then, as one of
 * the others or as superseded: replaced by a newer message before anything could show it).
 */
export type IngestResult = 'applied' | 'stale' | 'rejected' | 'pending' | 'queued';

/** Outcomes counted in gpulse_fleet_messages_total. */
type CountedResult = 'applied' | 'stale' | 'rejected' | 'superseded';

/** What applying a decoded message did (a rejection is thrown). */
type ApplyResult = 'applied' | 'stale' | 'pending';

/** Limits and timing of the fleet view. */
export interface FleetOptions {
  readonly clock: Clock;
  readonly log: Logger;
  /** A device silent this long is down (up 0) and its relayed series are withdrawn. */
  readonly deviceTimeoutMs: number;
  /** A device silent this long is forgotten: every series of it disappears. */
  readonly deviceTtlMs: number;
  readonly maxDevices: number;
  readonly maxSeriesPerDevice: number;
  /** Largest payload accepted as received (compressed). */
  readonly maxPayloadBytes: number;
  /** Largest payload after inflating (a deflate bomb stops here). */
  readonly maxInflatedBytes: number;
}

/** A schema of one device, compiled once: its series grouped by family with their line prefixes. */
interface CompiledSchema {
  readonly id: string;
  /** Value columns of a message of this schema. */
  readonly columns: number;
  /** Distinct series it renders (duplicates in a schema render once). */
  readonly series: number;
  readonly families: readonly {
    readonly name: string;
    readonly columns: readonly number[];
    /**
     * `{site="..",node="..",...}` per column: one string per label group of the schema, shared
     * by that group's metrics (a per-series prefix string cost ~150 bytes a series, 30 KB a device).
     */
    readonly labels: readonly string[];
  }[];
}

/** The latest values of one part of a device's telemetry (one part unless a batch was split). */
interface TelemetryPart {
  readonly schema: CompiledSchema;
  /** Last value of each column; NaN where the series was absent from the latest sample. */
  readonly values: Float64Array;
  /** Latest sample time. */
  ts: number;
}

interface Device {
  readonly site: string;
  readonly node: string;
  lastSeen: number;
  /** Telemetry received and not decoded yet, oldest first. */
  inbox: QueuedMessage[];
  /** From the status topic; undefined until a status was seen. */
  online: boolean | undefined;
  session: number;
  version: string | undefined;
  telemetry: (TelemetryPart | undefined)[];
  /** Schemas known for the device, oldest first (bounded: unused old ones are dropped). */
  readonly schemas: Map<string, CompiledSchema>;
  /** The latest message whose schema had not arrived, with when it came. */
  pending: { readonly t: TelemetryPayload; readonly at: number } | undefined;
  /** Exposition lines per family, rendered on a scrape after a change. */
  rendered: Map<string, string> | undefined;
  readonly events: Map<string, number>;
}

/** A telemetry message waiting to be decoded, with when it arrived. */
interface QueuedMessage {
  readonly payload: Buffer;
  readonly contentType: string | undefined;
  readonly at: number;
}

/** Undecoded messages a device may hold; the next one settles it first. */
const MAX_INBOX = 32;
/** Undecoded bytes all devices may hold; past it every device is settled. */
const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** Devices are settled once the stream has been quiet this long... */
const SETTLE_QUIET_MS = 20;
/** ...or when the oldest undecoded message is this old. */
const SETTLE_MAX_DELAY_MS = 1000;

/** Schemas kept per device: the parts in use and a few recent ones. */
const MAX_SCHEMAS_PER_DEVICE = 8;
/** How long values of an unknown schema wait for it. */
const PENDING_MS = 5000;

const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const METRIC_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const EVENT_TYPE_RE = /^[a-zA-Z0-9_.-]{1,64}$/;
const MAX_EVENT_TYPES = 64;
const MAX_LABEL_VALUE = 1024;
const MAX_LABELS = 32;
const RELAYED_HELP =
  'Relayed from an edge device by the gpulse fleet gateway (labels site and node added).';

/** The gateway's own families (declared like every gpulse metric: names checked at load). */
export const fleetMetrics = {
  up: gauge(
    'gpulse_fleet_device_up',
    'Whether the device is online (1): its status is online and it was heard within the device timeout.',
    ['site', 'node'],
  ),
  lastSeen: gauge(
    'gpulse_fleet_device_last_seen_timestamp_seconds',
    'Unix time the gateway last heard from the device.',
    ['site', 'node'],
  ),
  info: gauge(
    'gpulse_fleet_device_info',
    'gpulse version the device reported in its status; always 1.',
    ['site', 'node', 'version'],
  ),
  events: counter(
    'gpulse_fleet_events_total',
    'Events the device reported, by type (counted by this gateway).',
    ['site', 'node', 'type'],
  ),
  devices: gauge('gpulse_fleet_devices', 'Devices the gateway knows (until their TTL).'),
  messages: counter(
    'gpulse_fleet_messages_total',
    'Fleet messages by stream and outcome: applied, stale (an older replay), superseded (telemetry replaced by a newer message of the device before it was decoded) or rejected.',
    ['stream', 'result'],
  ),
  rejected: counter(
    'gpulse_fleet_rejected_messages_total',
    'Fleet messages dropped as malformed or over a limit, by reason.',
    ['reason'],
  ),
  connected: gauge(
    'gpulse_fleet_broker_connected',
    'Whether the gateway is connected to the broker (1) or not (0).',
  ),
} as const;

function family(desc: MetricDesc, lines: readonly string[]): string {
  return familyText(desc.name, desc.help, desc.type, lines);
}

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

/** Thrown inside ingest to reject a message with a counted reason. */
class Reject extends Error {
  constructor(readonly reason: RejectReason) {
    super(reason);
  }
}

/**
 * The fleet as the gateway sees it: each device's latest telemetry pre-rendered as exposition
 * lines, liveness from the retained status (last will) and from silence, drop after a TTL.
 * Every message is validated; a bad one is counted by reason and dropped, never thrown.
 */
export class FleetState {
  private readonly devices = new Map<string, Device>();
  private readonly messages = new Map<string, number>();
  private readonly rejected = new Map<RejectReason, number>();
  private readonly loggedRejects = new Set<string>();
  /** Devices holding undecoded telemetry. */
  private readonly unsettled = new Set<Device>();
  private queuedMessages = 0;
  private queuedBytes = 0;
  /** When the oldest undecoded message arrived (meaningful while any is queued). */
  private queuedSince = 0;
  private readonly settleTimer: QuietTimer;
  /** Set by the gateway from its connection. */
  brokerConnected = false;

  constructor(private readonly options: FleetOptions) {
    for (const r of REJECT_REASONS) this.rejected.set(r, 0);
    for (const s of ['telemetry', 'events', 'status', 'schema'])
      for (const r of ['applied', 'stale', 'rejected']) this.messages.set(`${s}\u0000${r}`, 0);
    this.messages.set('telemetry\u0000superseded', 0);
    this.settleTimer = new QuietTimer(options.clock, SETTLE_QUIET_MS, () => this.settleAll());
  }

  /** Takes one received message and decodes it now; returns what became of it. */
  ingest(message: IncomingMessage): IngestResult {
    return this.take(message, false);
  }

  /**
   * Takes one received message like `ingest`, except that telemetry of a device whose schema is
   * known is only queued: a backlog (a gateway or broker back after an outage, a fleet replaying
   * its spools) then costs one decode per device, not one per message, since only each device's
   * newest values are ever shown. Queued messages are settled when the stream goes quiet, within
   * a second, before any other message of the device, and before every scrape.
   */
  receive(message: IncomingMessage): IngestResult {
    return this.take(message, true);
  }

  /** Telemetry messages queued and not decoded yet. */
  queued(): number {
    return this.queuedMessages;
  }

  /** Decodes every queued message now (the scrape and the timers call it). */
  settleAll(): void {
    this.settleTimer.cancel();
    for (const device of this.unsettled) this.settle(device);
  }

  private take(message: IncomingMessage, defer: boolean): IngestResult {
    const parsed = parseStreamTopic(message.topic);
    if (!parsed) return this.reject('bad_topic', 'status', message.topic);
    const { site, node, stream } = parsed;
    if (message.payload.length > this.options.maxPayloadBytes)
      return this.reject('too_large', stream, message.topic);
    const now = this.options.clock.now();
    const device = this.devices.get(`${site}/${node}`);
    if (defer && stream === 'telemetry' && device && device.schemas.size > 0) {
      this.enqueue(device, message, now);
      return 'queued';
    }
    // Messages of a device take effect in the order they came.
    if (device && device.inbox.length > 0) this.settle(device);
    try {
      const value = this.decode(message.payload, message.contentType);
      const result = this.apply(site, node, stream, value, message.retain, now);
      if (result !== 'pending') this.count(stream, result);
      return result;
    } catch (err) {
      if (err instanceof Reject) return this.reject(err.reason, stream, message.topic);
      throw err;
    }
  }

  /** Inflates and parses a payload; throws Reject. */
  private decode(payload: Buffer, contentType: string | undefined): unknown {
    try {
      return JSON.parse(decodeBody(payload, contentType, this.options.maxInflatedBytes));
    } catch (err) {
      if (err instanceof PayloadError) throw new Reject(err.reason);
      throw new Reject('bad_json');
    }
  }

  private enqueue(device: Device, message: IncomingMessage, now: number): void {
    if (device.inbox.length >= MAX_INBOX) this.settle(device);
    if (this.queuedMessages === 0) this.queuedSince = now;
    // A copy: mqtt.js hands out a view of its socket read buffer, which it would keep alive.
    const payload = Buffer.from(message.payload);
    // lastSeen moves when the message is applied (at its arrival time): a message that turns
    // out malformed does not count as hearing from the device, as on the immediate path.
    device.inbox.push({ payload, contentType: message.contentType, at: now });
    this.unsettled.add(device);
    this.queuedMessages++;
    this.queuedBytes += payload.length;
    if (this.queuedBytes > MAX_QUEUED_BYTES || now - this.queuedSince >= SETTLE_MAX_DELAY_MS)
      this.settleAll();
    else this.settleTimer.poke();
  }

  /**
   * Applies a device's queued telemetry as if each message had been applied when it came. Only
   * the newest messages that decide what is shown are decoded: walking back from the newest, the
   * walk stops at a live single-part message of a known schema (it replaces every value before
   * it) once every schema the newer ones name is known; the older ones are counted superseded.
   */
  private settle(device: Device): void {
    const inbox = device.inbox;
    this.unsettled.delete(device);
    if (inbox.length === 0) return;
    device.inbox = [];
    this.queuedMessages -= inbox.length;
    for (const q of inbox) this.queuedBytes -= q.payload.length;
    const decoded = new Array<TelemetryPayload | Reject>(inbox.length);
    const unknownSchemas = new Set<string>();
    let from = inbox.length;
    while (from > 0) {
      const q = inbox[--from] as QueuedMessage;
      let t: TelemetryPayload | undefined;
      try {
        t = parseTelemetry(this.decode(q.payload, q.contentType));
      } catch (err) {
        if (!(err instanceof Reject)) throw err;
        decoded[from] = err;
        continue;
      }
      decoded[from] = t ?? new Reject('bad_shape');
      if (!t) continue;
      const id = telemetrySchemaId(t);
      if (t.schema) unknownSchemas.delete(id);
      const known = device.schemas.get(id);
      if (!known) {
        if (!t.schema) unknownSchemas.add(id);
        continue;
      }
      const replacesAll =
        t.replay !== true && (t.parts ?? 1) === 1 && t.values.length === known.columns;
      if (replacesAll && unknownSchemas.size === 0) break;
    }
    if (from > 0) this.count('telemetry', 'superseded', from);
    const topic = streamTopic(device, 'telemetry');
    for (let i = from; i < inbox.length; i++) {
      const t = decoded[i] as TelemetryPayload | Reject;
      try {
        if (t instanceof Reject) throw t;
        const at = (inbox[i] as QueuedMessage).at;
        const result = this.applyTelemetryMessage(device.site, device.node, t, at);
        if (result !== 'pending') this.count('telemetry', result);
      } catch (err) {
        if (!(err instanceof Reject)) throw err;
        this.reject(err.reason, 'telemetry', topic);
      }
    }
  }

  private apply(
    site: string,
    node: string,
    stream: StreamName,
    value: unknown,
    retained: boolean,
    now: number,
  ): ApplyResult {
    switch (stream) {
      case 'status': {
        const status = parse(statusSchema, value);
        // A retained status may be old: the device was last heard then, not now.
        const seen = retained ? Math.min(now, status.ts) : now;
        if (now - seen > this.options.deviceTtlMs) return 'stale';
        const device = this.device(site, node, seen);
        if (status.state === 'offline' && status.session < device.session) return 'stale';
        device.session = Math.max(device.session, status.session);
        device.online = status.state === 'online';
        if (status.version) device.version = status.version;
        device.lastSeen = Math.max(device.lastSeen, seen);
        if (!device.online) this.withdraw(device);
        return 'applied';
      }
      case 'telemetry': {
        const t = parseTelemetry(value);
        if (!t) throw new Reject('bad_shape');
        return this.applyTelemetryMessage(site, node, t, now);
      }
      case 'schema': {
        const message = parse(schemaMessageSchema, value);
        const seen = retained ? Math.min(now, message.ts) : now;
        if (now - seen > this.options.deviceTtlMs) return 'stale';
        const existing = this.devices.get(`${site}/${node}`);
        const compiled = message.schemas
          .filter((x) => !existing?.schemas.has(x.id))
          .map((x) => this.compile(site, node, x));
        const device = existing ?? this.device(site, node, seen);
        device.lastSeen = Math.max(device.lastSeen, seen);
        for (const c of compiled) this.remember(device, c);
        this.resolvePending(device, now);
        return 'applied';
      }
      case 'events': {
        const e = parse(eventsSchema, value);
        const device = this.device(site, node, now);
        device.lastSeen = now;
        for (const event of e.events) {
          let type = EVENT_TYPE_RE.test(event.type) ? event.type : 'other';
          if (!device.events.has(type) && device.events.size >= MAX_EVENT_TYPES) type = 'other';
          device.events.set(type, (device.events.get(type) ?? 0) + 1);
        }
        return 'applied';
      }
    }
  }

  /** Applies a telemetry message (shape already checked) that arrived at `now`. */
  private applyTelemetryMessage(
    site: string,
    node: string,
    t: TelemetryPayload,
    now: number,
  ): ApplyResult {
    const existing = this.devices.get(`${site}/${node}`);
    const id = telemetrySchemaId(t);
    let schema = existing?.schemas.get(id);
    // Compiled before the device is created: a malformed message never adds a device.
    const fresh = !schema && t.schema ? this.compile(site, node, t.schema) : undefined;
    schema ??= fresh;
    if (schema && t.values.length !== schema.columns) throw new Reject('bad_shape');
    const device = existing ?? this.device(site, node, now);
    device.lastSeen = Math.max(device.lastSeen, now);
    if (fresh) {
      this.remember(device, fresh);
      this.resolvePending(device, now);
    }
    if (!schema) {
      if (device.pending) this.dropPending(device);
      device.pending = { t, at: now };
      return 'pending';
    }
    return this.applyTelemetry(device, t, schema);
  }

  private device(site: string, node: string, seen: number): Device {
    const key = `${site}/${node}`;
    let device = this.devices.get(key);
    if (device) return device;
    if (this.devices.size >= this.options.maxDevices) throw new Reject('device_limit');
    device = {
      site,
      node,
      lastSeen: seen,
      inbox: [],
      online: undefined,
      session: 0,
      version: undefined,
      telemetry: [],
      schemas: new Map(),
      pending: undefined,
      rendered: undefined,
      events: new Map(),
    };
    this.devices.set(key, device);
    return device;
  }

  /** Checks a schema's names and limits once and precomputes each series' family and labels. */
  private compile(site: string, node: string, raw: unknown): CompiledSchema {
    const schema = parse(schemaSchema, raw);
    const families = new Map<string, { columns: number[]; labels: string[] }>();
    const seen = new Set<string>();
    let column = 0;
    let series = 0;
    for (const group of schema.series) {
      const names = Object.keys(group.labels);
      if (names.length > MAX_LABELS) throw new Reject('bad_shape');
      const pairs: [string, string][] = [
        ['site', site],
        ['node', node],
      ];
      for (const name of names.sort()) {
        const v = group.labels[name] as string;
        if (!LABEL_RE.test(name) || name.startsWith('__') || v.length > MAX_LABEL_VALUE)
          throw new Reject('bad_name');
        // A device label that clashes with the gateway's identity labels keeps its value renamed.
        pairs.push([name === 'site' || name === 'node' ? `exported_${name}` : name, v]);
      }
      const labels = formatLabels(pairs);
      for (const metric of group.metrics) {
        if (!METRIC_RE.test(metric) || metric.length > 200 || metric.startsWith('fleet_'))
          throw new Reject('bad_name');
        const name = familyName(metric);
        const col = column++;
        const key = `${name}${labels}`;
        if (seen.has(key)) continue;
        seen.add(key);
        if (++series > this.options.maxSeriesPerDevice) throw new Reject('series_limit');
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
      columns: column,
      series,
      // Sliced to their length: arrays grown by push keep spare capacity (17 slots for one
      // column), which for ~100 families a device was most of the gateway's heap.
      families: [...families].map(([name, f]) => ({
        name,
        columns: f.columns.slice(),
        labels: f.labels.slice(),
      })),
    };
  }

  /** Adds a schema to a device's cache, dropping the oldest ones no part uses. */
  private remember(device: Device, schema: CompiledSchema): void {
    device.schemas.delete(schema.id);
    device.schemas.set(schema.id, schema);
    if (device.schemas.size <= MAX_SCHEMAS_PER_DEVICE) return;
    const inUse = new Set(device.telemetry.map((p) => p?.schema.id));
    for (const id of device.schemas.keys()) {
      if (device.schemas.size <= MAX_SCHEMAS_PER_DEVICE) break;
      if (!inUse.has(id) && id !== schema.id) device.schemas.delete(id);
    }
  }

  /** Keeps the latest value of each series of a message (the last sample of its batch). */
  private applyTelemetry(
    device: Device,
    t: TelemetryPayload,
    schema: CompiledSchema,
  ): 'applied' | 'stale' {
    if (t.values.length !== schema.columns) throw new Reject('bad_shape');
    const index = (t.part ?? 1) - 1;
    const parts = t.parts ?? 1;
    const last = t.ts.length - 1;
    const ts = t.ts[last] as number;
    const existing = device.telemetry[index];
    // Replays apply only when newer than what is shown; live messages always do.
    if (t.replay === true && existing && ts <= existing.ts) return 'stale';
    let others = 0;
    for (let i = 0; i < parts; i++)
      if (i !== index) others += device.telemetry[i]?.schema.series ?? 0;
    if (others + schema.series > this.options.maxSeriesPerDevice) throw new Reject('series_limit');
    if (device.telemetry.length !== parts) device.telemetry.length = parts;
    const part =
      existing?.schema === schema
        ? existing
        : { schema, values: new Float64Array(schema.columns), ts };
    const values = part.values;
    for (let i = 0; i < values.length; i++) {
      const c = t.values[i];
      const v = typeof c === 'number' ? c : c?.[last];
      values[i] = typeof v === 'number' ? v : NaN;
    }
    part.ts = ts;
    device.telemetry[index] = part;
    device.rendered = undefined;
    if (device.online === undefined) device.online = true;
    return 'applied';
  }

  /** Applies a held message once its schema is known (if it is still fresh). */
  private resolvePending(device: Device, now: number): void {
    const pending = device.pending;
    if (!pending) return;
    const schema = device.schemas.get(telemetrySchemaId(pending.t));
    if (!schema) return;
    if (now - pending.at > PENDING_MS) {
      this.dropPending(device);
      return;
    }
    device.pending = undefined;
    try {
      this.count('telemetry', this.applyTelemetry(device, pending.t, schema));
    } catch (err) {
      if (!(err instanceof Reject)) throw err;
      this.reject(err.reason, 'telemetry', streamTopic(device, 'telemetry'));
    }
  }

  private dropPending(device: Device): void {
    device.pending = undefined;
    this.reject('unknown_schema', 'telemetry', streamTopic(device, 'telemetry'));
  }

  /** Exposition lines of a device per family, from the latest values of its parts. */
  private render(device: Device): Map<string, string> {
    const lines = new Map<string, string[]>();
    for (const part of device.telemetry) {
      if (!part) continue;
      for (const f of part.schema.families) {
        let family = lines.get(f.name);
        for (let i = 0; i < f.columns.length; i++) {
          const v = part.values[f.columns[i] as number] as number;
          if (Number.isNaN(v)) continue;
          if (!family) {
            family = [];
            lines.set(f.name, family);
          }
          family.push(`${f.name}${f.labels[i] as string} ${formatValue(v)}\n`);
        }
      }
    }
    // Joined, not appended: a flat string per family is kept until the next change, where `+=`
    // would keep a tree of concatenation nodes several times the text's size.
    const out = new Map<string, string>();
    for (const [name, family] of lines) out.set(name, family.join(''));
    return out;
  }

  private withdraw(device: Device): void {
    device.telemetry = [];
    device.rendered = undefined;
  }

  private isUp(device: Device, now: number): boolean {
    return device.online !== false && now - device.lastSeen <= this.options.deviceTimeoutMs;
  }

  /** Forgets devices past their TTL and withdraws the series of silent ones. */
  sweep(): void {
    this.settleAll();
    const now = this.options.clock.now();
    for (const [key, device] of this.devices) {
      if (now - device.lastSeen > this.options.deviceTtlMs) {
        if (device.pending) this.dropPending(device);
        this.devices.delete(key);
        continue;
      }
      if (device.pending && now - device.pending.at > PENDING_MS) this.dropPending(device);
      if (!this.isUp(device, now) && device.telemetry.length > 0) this.withdraw(device);
    }
  }

  /** Number of devices known. */
  size(): number {
    return this.devices.size;
  }

  /** The whole exposition: fleet series, relayed device series, gateway self-metrics. */
  exposition(): string {
    this.sweep();
    const now = this.options.clock.now();
    const up: string[] = [];
    const lastSeen: string[] = [];
    const info: string[] = [];
    const events: string[] = [];
    const relayed = new Map<string, string[]>();
    for (const d of this.devices.values()) {
      const id: [string, string][] = [
        ['site', d.site],
        ['node', d.node],
      ];
      const isUp = this.isUp(d, now);
      up.push(sampleLine(fleetMetrics.up.name, id, isUp ? 1 : 0));
      lastSeen.push(sampleLine(fleetMetrics.lastSeen.name, id, d.lastSeen / 1000));
      if (d.version)
        info.push(sampleLine(fleetMetrics.info.name, [...id, ['version', d.version]], 1));
      for (const [type, n] of d.events)
        events.push(sampleLine(fleetMetrics.events.name, [...id, ['type', type]], n));
      if (!isUp) continue;
      d.rendered ??= this.render(d);
      for (const [family, text] of d.rendered) {
        let chunks = relayed.get(family);
        if (!chunks) {
          chunks = [];
          relayed.set(family, chunks);
        }
        chunks.push(text);
      }
    }
    const messages = [...this.messages].map(([key, n]) => {
      const [stream = '', result = ''] = key.split('\u0000');
      return sampleLine(
        fleetMetrics.messages.name,
        [
          ['stream', stream],
          ['result', result],
        ],
        n,
      );
    });
    const rejected = [...this.rejected].map(([reason, n]) =>
      sampleLine(fleetMetrics.rejected.name, [['reason', reason]], n),
    );
    const m = fleetMetrics;
    const out = [
      family(m.up, up),
      family(m.lastSeen, lastSeen),
      family(m.info, info),
      family(m.events, events),
      family(m.devices, [sampleLine(m.devices.name, [], this.devices.size)]),
      family(m.messages, messages),
      family(m.rejected, rejected),
      family(m.connected, [sampleLine(m.connected.name, [], this.brokerConnected ? 1 : 0)]),
    ];
    for (const family of [...relayed.keys()].sort()) {
      const type = family.endsWith('_total') ? 'counter' : 'gauge';
      out.push(familyText(family, RELAYED_HELP, type, relayed.get(family) ?? []));
    }
    return out.join('');
  }

  private count(stream: StreamName, result: CountedResult, n = 1): void {
    const key = `${stream}\u0000${result}`;
    this.messages.set(key, (this.messages.get(key) ?? 0) + n);
  }

  private reject(reason: RejectReason, stream: StreamName, topic: string): 'rejected' {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
    this.count(stream, 'rejected');
    // Logged once per reason and topic: a flood must not flood the log too.
    const key = `${reason}\u0000${topic}`;
    if (!this.loggedRejects.has(key) && this.loggedRejects.size < 1000) {
      this.loggedRejects.add(key);
      this.options.log.warn({ topic: topic.slice(0, 200), reason }, 'fleet message dropped');
    }
    return 'rejected';
  }
}

function parse<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new Reject('bad_shape');
  return result.data;
}
