import type { Logger } from 'pino';
import type { Clock } from '../../agent/core/clock.js';
import { counter, gauge } from '../../agent/core/metric.js';
import { QuietTimer } from '../../agent/core/quiet-timer.js';
import type { MetricDesc } from '../../agent/core/types.js';
import type { z } from 'zod';
import {
  decodeBody,
  parseTelemetry,
  PayloadError,
  telemetrySchemaId,
  type TelemetryPayload,
} from '../../exporters/mqtt/payloads.js';
import {
  eventsSchema,
  schemaMessageSchema,
  statusSchema,
} from '../../exporters/mqtt/payload-schemas.js';
import { parseStreamTopic, streamTopic, type StreamName } from '../../exporters/mqtt/topics.js';
import type { IncomingMessage } from '../mqtt/delivery.js';
import { compileSchema, devicePrefix, schemaKey, type CompiledSchema } from './compiled-schema.js';
import { familyText, formatValue, sampleLine } from './exposition.js';
import { Reject, REJECT_REASONS, type RejectReason } from './reject.js';
import { RELAYED_FAMILIES } from './relayed-families.js';

export type { RejectReason } from './reject.js';

/**
 * What became of a message: applied, stale (an older replay), rejected, pending (values of a
 * schema not seen yet, held until it arrives; counted once applied or dropped), queued
 * (telemetry of a known device kept undecoded until the device is settled; counted then, as one of
 * the others or as superseded: replaced by a newer message before anything could show it) or
 * kept (a schema of a device another gateway of the share group serves, stored undecoded).
 */
export type IngestResult = 'applied' | 'stale' | 'rejected' | 'pending' | 'queued' | 'kept';

/** Outcomes counted in gpulse_fleet_messages_total. */
type CountedResult = 'applied' | 'stale' | 'rejected' | 'superseded' | 'kept' | 'forwarded';

/** What applying a decoded message did (a rejection is thrown). */
type ApplyResult = 'applied' | 'stale' | 'pending' | 'kept';

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
  /** Bytes kept for one device at most: schemas, latest values, their exposition, held messages. */
  readonly maxDeviceBytes: number;
  /** Bytes kept for all devices together at most (the same things). */
  readonly maxFleetBytes: number;
  /**
   * In a share group: whether this gateway serves a device. The others' devices are tracked
   * (status, their retained schema kept undecoded) but not exported. Default: every device.
   */
  readonly owns?: (site: string, node: string) => boolean;
}

/** The latest values of one part of a device's telemetry (one part unless a batch was split). */
interface TelemetryPart {
  readonly schema: CompiledSchema;
  /** Last value of each column; NaN where the series was absent from the latest sample. */
  readonly values: Float64Array;
  /** Latest sample time. */
  ts: number;
}

/** A message kept as received (a copy of its bytes), with when it came. */
interface RawMessage {
  readonly payload: Buffer;
  readonly contentType: string | undefined;
  readonly at: number;
}

interface Device {
  readonly site: string;
  readonly node: string;
  /** `{site="..",node=".."`: the start of every series of the device. */
  readonly prefix: string;
  lastSeen: number;
  /** Telemetry received and not decoded yet, oldest first. */
  inbox: RawMessage[];
  /** From the status topic; undefined until a status was seen. */
  online: boolean | undefined;
  session: number;
  version: string | undefined;
  telemetry: (TelemetryPart | undefined)[];
  /** Schemas known for the device, oldest first (bounded: unused old ones are dropped). */
  readonly schemas: Map<string, CompiledSchema>;
  /**
   * The latest message whose schema had not arrived, kept as received (decoded again once its
   * schema comes): a parsed message of millions of values held per device took the heap down.
   */
  pending: (RawMessage & { readonly schemaId: string }) | undefined;
  /** In a share group: the device's latest retained schema message, for when this gateway takes it over. */
  keptSchema: RawMessage | undefined;
  /** Whether the kept schema's schemas were compiled since it came (decoded once, not per message). */
  keptLoaded: boolean;
  /** Exposition lines per family, rendered on a scrape after a change. */
  rendered: Map<string, string> | undefined;
  readonly events: Map<string, number>;
  /** Whether this gateway serves (exports) the device: always, unless in a share group. */
  owned: boolean;
  /** Bytes the device keeps that no other device shares (its share of gpulse_fleet_kept_bytes). */
  bytes: number;
  /** The limit its telemetry is refused for, while it is (logged once per change). */
  limited: RejectReason | undefined;
}

/** Undecoded messages a device may hold; the next one settles it first. */
const MAX_INBOX = 32;
/** Undecoded bytes all devices may hold; past it every device is settled. */
const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** Devices are settled once the stream has been quiet this long... */
const SETTLE_QUIET_MS = 20;
/** ...or when the oldest undecoded message is this old. */
const SETTLE_MAX_DELAY_MS = 1000;
/** Changed devices are rendered once nothing was settled for this long... */
const RENDER_QUIET_MS = 100;
/** ...or when the oldest change waits this long. */
const RENDER_MAX_DELAY_MS = 2000;

/** Schemas kept per device: the parts in use and a few recent ones. */
const MAX_SCHEMAS_PER_DEVICE = 8;
/** How long values of an unknown schema wait for it. */
const PENDING_MS = 5000;
/** Bytes of one kept value (a Float64Array element). */
const VALUE_BYTES = 8;
/** A full fleet budget counts as free again below this share of it (no log flapping at the edge). */
const FLEET_BYTES_RECOVERED = 0.9;

const EVENT_TYPE_RE = /^[a-zA-Z0-9_.-]{1,64}$/;
const MAX_EVENT_TYPES = 64;
/** HELP of a relayed family this gateway's gpulse does not declare (a newer agent's). */
const RELAYED_HELP =
  'Relayed from an edge device by the gpulse fleet gateway (labels site and node added).';
/** Rejections that mean a device is over a limit, not that a message was malformed. */
const LIMIT_REASONS: ReadonlySet<RejectReason> = new Set([
  'series_limit',
  'device_bytes',
  'fleet_bytes',
]);

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
  devices: gauge(
    'gpulse_fleet_devices',
    'Devices this gateway serves (in a share group: those assigned to it), until their TTL.',
  ),
  messages: counter(
    'gpulse_fleet_messages_total',
    'Fleet messages by stream and outcome: applied, stale (an older replay), superseded (telemetry replaced by a newer message of the device before it was decoded), kept (a schema of a device another gateway of the share group serves, stored undecoded), forwarded (to the gateway of the share group that serves the device) or rejected.',
    ['stream', 'result'],
  ),
  rejected: counter(
    'gpulse_fleet_rejected_messages_total',
    'Fleet messages dropped as malformed or over a limit, by reason.',
    ['reason'],
  ),
  renamedLabels: counter(
    'gpulse_fleet_renamed_labels_total',
    'Device label names relayed with an exported_ prefix because the gateway or Prometheus sets that label (site, node, job, instance); counted per schema compiled.',
  ),
  duplicateSeries: counter(
    'gpulse_fleet_duplicate_series_total',
    'Series a device sent in two parts of one batch (same name and labels), shown once; counted when its parts change.',
  ),
  keptBytes: gauge(
    'gpulse_fleet_kept_bytes',
    "Bytes the gateway keeps for the fleet's devices (schemas, latest values, their exposition, held messages), bounded by gateway.maxFleetBytes.",
  ),
  groupMembers: gauge(
    'gpulse_fleet_group_members',
    'Gateways of the share group this gateway sees alive, itself included (1 without a group).',
  ),
  connected: gauge(
    'gpulse_fleet_broker_connected',
    'Whether the gateway is connected to the broker (1) or not (0).',
  ),
} as const;

function family(desc: MetricDesc, lines: readonly string[]): string {
  return familyText(desc.name, desc.help, desc.type, lines);
}

/**
 * Bytes a device keeps that no other device shares: its series' exposition (values at their
 * widest) and values, held messages, and the schemas only it has.
 */
function ownBytes(d: Device): number {
  let n = 0;
  for (const s of d.schemas.values()) if (s.key === undefined) n += s.keptBytes;
  for (const p of d.telemetry)
    if (p)
      n +=
        p.schema.renderBytes + p.schema.series * d.prefix.length + p.schema.columns * VALUE_BYTES;
  if (d.pending) n += d.pending.payload.length;
  if (d.keptSchema) n += d.keptSchema.payload.length;
  return n;
}

/** Everything a device makes the gateway keep, shared schemas in full (what maxDeviceBytes bounds). */
function deviceBytes(d: Device): number {
  let n = ownBytes(d);
  for (const s of d.schemas.values()) if (s.key !== undefined) n += s.keptBytes;
  return n;
}

/** A copy of a received message: mqtt.js hands out a view of its socket buffer, which it would keep alive. */
function rawCopy(
  message: { readonly payload: Buffer; readonly contentType?: string | undefined },
  at: number,
): RawMessage {
  return { payload: Buffer.from(message.payload), contentType: message.contentType, at };
}

/**
 * The fleet as the gateway sees it: each device's latest telemetry pre-rendered as exposition
 * lines, liveness from the retained status (last will) and from silence, drop after a TTL.
 * Every message is validated; a bad one is counted by reason and dropped, never thrown. What is
 * kept per device and for the whole fleet is bounded in bytes (maxDeviceBytes, maxFleetBytes):
 * a device over its share is refused and counted, the others keep being served.
 */
export class FleetState {
  private readonly devices = new Map<string, Device>();
  private readonly messages = new Map<string, number>();
  private readonly rejected = new Map<RejectReason, number>();
  private readonly loggedRejects = new Set<string>();
  /** Devices holding undecoded telemetry. */
  private readonly unsettled = new Set<Device>();
  /** Devices whose series changed since they were last rendered. */
  private readonly changed = new Set<Device>();
  private readonly renderTimer: QuietTimer;
  /** When the oldest unrendered change happened (meaningful while any is waiting). */
  private changedSince = 0;
  private queuedMessages = 0;
  private queuedBytes = 0;
  /** When the oldest undecoded message arrived (meaningful while any is queued). */
  private queuedSince = 0;
  private readonly settleTimer: QuietTimer;
  /** Bytes kept for all devices together: their own, and each shared schema once. */
  private keptBytes = 0;
  /**
   * Compiled schemas shared by the devices that have them, by content key, with how many devices
   * hold each: a fleet of alike devices keeps one (a compiled schema of 174 series is ~19 KB).
   */
  private readonly shared = new Map<string, { schema: CompiledSchema; refs: number }>();

  /** True from a refusal for the fleet budget until the kept bytes fall well below it. */
  private fleetFull = false;
  private renamedLabels = 0;
  private duplicateSeries = 0;
  private readonly owns: (site: string, node: string) => boolean;
  /** In a share group: retained schemas of other gateways' devices are kept undecoded. */
  private readonly grouped: boolean;
  /** Set by the gateway from its connection. */
  brokerConnected = false;
  /** Set by the gateway from its share group (1 alone). */
  groupMembers = 1;

  constructor(private readonly options: FleetOptions) {
    for (const r of REJECT_REASONS) this.rejected.set(r, 0);
    for (const s of ['telemetry', 'events', 'status', 'schema'])
      for (const r of ['applied', 'stale', 'rejected']) this.messages.set(`${s}\u0000${r}`, 0);
    this.messages.set('telemetry\u0000superseded', 0);
    this.grouped = options.owns !== undefined;
    this.owns = options.owns ?? (() => true);
    if (this.grouped) {
      this.messages.set('telemetry\u0000forwarded', 0);
      this.messages.set('events\u0000forwarded', 0);
      this.messages.set('schema\u0000kept', 0);
    }
    this.settleTimer = new QuietTimer(options.clock, SETTLE_QUIET_MS, () => this.settleAll());
    this.renderTimer = new QuietTimer(options.clock, RENDER_QUIET_MS, () => this.renderChanged());
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

  /** Bytes kept for all devices (what maxFleetBytes bounds). */
  bytes(): number {
    return this.keptBytes;
  }

  /** Counts a message handed to the gateway of the share group that serves its device. */
  countForwarded(stream: StreamName): void {
    this.count(stream, 'forwarded');
  }

  /** Counts a message for another gateway of the share group that could not be handed over. */
  countForwardFailed(stream: StreamName, topic: string): void {
    this.reject('forward_failed', stream, topic);
  }

  /** Decodes every queued message now (the scrape and the timers call it). */
  settleAll(): void {
    this.settleTimer.cancel();
    for (const device of this.unsettled) this.settle(device);
    if (this.changed.size === 0) return;
    // Under a stream that never pauses, rendered every few seconds all the same.
    if (this.options.clock.now() - this.changedSince >= RENDER_MAX_DELAY_MS) this.renderChanged();
    else this.renderTimer.poke();
  }

  /**
   * Renders the devices whose series changed, once the stream has paused after settling: a scrape
   * then only joins text already rendered (rendered on the scrape, 3,300 devices took most of a
   * second of it), and a backlog is drained before any of it is rendered.
   */
  renderChanged(): void {
    this.renderTimer.cancel();
    for (const device of this.changed) device.rendered ??= this.render(device);
    this.changed.clear();
  }

  /**
   * The share group changed: devices this gateway no longer serves drop their series and compiled
   * schemas (their retained schema stays, undecoded), devices it now serves get their schemas
   * compiled from that copy, so their next values show at once.
   */
  reassign(): void {
    this.settleAll();
    for (const device of this.devices.values()) {
      const owned = this.owns(device.site, device.node);
      if (owned === device.owned) continue;
      device.owned = owned;
      if (owned) this.loadKeptSchema(device);
      else this.release(device);
    }
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
      // Another gateway serves this device: its schema is kept as received, decoded only if
      // this gateway takes the device over (a retained schema of every device of the fleet,
      // decoded and compiled by every gateway, was most of what a gateway of a group kept).
      if (stream === 'schema' && device && !device.owned) {
        this.keep(device, rawCopy(message, now));
        this.count('schema', 'kept');
        return 'kept';
      }
      const value = this.decode(message.payload, message.contentType);
      const result = this.apply(site, node, stream, value, message, now);
      if (result !== 'pending') this.count(stream, result);
      return result;
    } catch (err) {
      if (err instanceof Reject) return this.reject(err.reason, stream, message.topic, site, node);
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
    // lastSeen moves when the message is applied (at its arrival time): a message that turns
    // out malformed does not count as hearing from the device, as on the immediate path.
    const raw = rawCopy(message, now);
    device.inbox.push(raw);
    this.unsettled.add(device);
    this.queuedMessages++;
    this.queuedBytes += raw.payload.length;
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
      const q = inbox[--from] as RawMessage;
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
        const q = inbox[i] as RawMessage;
        const result = this.applyTelemetryMessage(device.site, device.node, t, q, q.at);
        if (result !== 'pending') this.count('telemetry', result);
      } catch (err) {
        if (!(err instanceof Reject)) throw err;
        this.reject(err.reason, 'telemetry', topic, device.site, device.node);
      }
    }
  }

  private apply(
    site: string,
    node: string,
    stream: StreamName,
    value: unknown,
    message: IncomingMessage,
    now: number,
  ): ApplyResult {
    switch (stream) {
      case 'status': {
        const status = parse(statusSchema, value);
        // A retained status may be old: the device was last heard then, not now.
        const seen = message.retain ? Math.min(now, status.ts) : now;
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
        return this.applyTelemetryMessage(site, node, t, message, now);
      }
      case 'schema': {
        const schemaMessage = parse(schemaMessageSchema, value);
        const seen = message.retain ? Math.min(now, schemaMessage.ts) : now;
        if (now - seen > this.options.deviceTtlMs) return 'stale';
        const existing = this.devices.get(`${site}/${node}`);
        if (!existing && !this.owns(site, node)) {
          const device = this.device(site, node, seen);
          this.keep(device, rawCopy(message, now));
          return 'kept';
        }
        // The schemas as received (zod's copy could differ from what the content key hashes).
        const raws = (value as { schemas: unknown[] }).schemas;
        const compiled = schemaMessage.schemas
          .map((x, i) => [x.id, raws[i]] as const)
          .filter(([id]) => !existing?.schemas.has(id))
          .map(([, raw]) => this.compile(raw));
        const device = existing ?? this.device(site, node, seen);
        device.lastSeen = Math.max(device.lastSeen, seen);
        for (const c of compiled) this.remember(device, c);
        if (this.grouped) this.keep(device, rawCopy(message, now));
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

  /**
   * Applies a telemetry message (shape already checked) that arrived at `now`; `received` is held
   * (a copy of its bytes) if its schema is not known yet.
   */
  private applyTelemetryMessage(
    site: string,
    node: string,
    t: TelemetryPayload,
    received: { readonly payload: Buffer; readonly contentType?: string | undefined },
    now: number,
  ): ApplyResult {
    // No schema may have more columns: refused before it is held for one (a message of millions
    // of values naming an unknown schema, one per device, took the gateway's heap down).
    if (t.values.length > this.options.maxSeriesPerDevice) throw new Reject('series_limit');
    const existing = this.devices.get(`${site}/${node}`);
    const id = telemetrySchemaId(t);
    if (existing && !t.schema && !existing.schemas.has(id)) this.loadKeptSchema(existing);
    let schema = existing?.schemas.get(id);
    // Compiled before the device is created: a malformed message never adds a device.
    const fresh = !schema && t.schema ? this.compile(t.schema) : undefined;
    schema ??= fresh;
    if (schema && t.values.length !== schema.columns) throw new Reject('bad_shape');
    const device = existing ?? this.device(site, node, now);
    device.lastSeen = Math.max(device.lastSeen, now);
    if (fresh) {
      schema = this.remember(device, fresh);
      this.resolvePending(device, now);
    }
    if (!schema) {
      this.hold(device, rawCopy(received, now), id);
      return 'pending';
    }
    const result = this.applyTelemetry(device, t, schema);
    if (device.limited) {
      this.options.log.info(
        { site, node, was: device.limited },
        'fleet device within the gateway limits again: its telemetry is relayed',
      );
      device.limited = undefined;
    }
    return result;
  }

  private device(site: string, node: string, seen: number): Device {
    const key = `${site}/${node}`;
    let device = this.devices.get(key);
    if (device) return device;
    if (this.devices.size >= this.options.maxDevices) throw new Reject('device_limit');
    device = {
      site,
      node,
      prefix: devicePrefix(site, node),
      lastSeen: seen,

      inbox: [],
      online: undefined,
      session: 0,
      version: undefined,
      telemetry: [],
      schemas: new Map(),
      pending: undefined,
      keptSchema: undefined,
      keptLoaded: false,
      rendered: undefined,
      events: new Map(),
      owned: this.owns(site, node),
      bytes: 0,
      limited: undefined,
    };
    this.devices.set(key, device);
    return device;
  }

  /** Recounts the bytes a device keeps on its own after a change (and the fleet's total). */
  private recount(device: Device): void {
    const after = ownBytes(device);
    this.keptBytes += after - device.bytes;
    device.bytes = after;
  }

  /**
   * Recounts a device after a change and, when what it keeps (`deviceBefore` before the change)
   * or what the fleet keeps (`fleetBefore`) grew past its limit, undoes the change and refuses it.
   */
  private admit(device: Device, fleetBefore: number, deviceBefore: number, undo: () => void): void {
    this.recount(device);
    const now = deviceBytes(device);
    let over: RejectReason | undefined;
    if (now > deviceBefore && now > this.options.maxDeviceBytes) over = 'device_bytes';
    else if (this.keptBytes > fleetBefore && this.keptBytes > this.options.maxFleetBytes)
      over = 'fleet_bytes';
    if (!over) return;
    undo();
    this.recount(device);
    throw new Reject(over);
  }

  /** Compiles a schema, or finds the copy devices with the same content share. */
  private compile(raw: unknown): CompiledSchema {
    const key = schemaKey(raw);
    const known = key !== undefined ? this.shared.get(key) : undefined;
    if (known) return known.schema;
    const schema = compileSchema(raw, this.options, key);
    this.renamedLabels += schema.renamedLabels;
    return schema;
  }

  /** A device takes a schema: the shared copy, counted once in the fleet's bytes. */
  private acquire(schema: CompiledSchema): CompiledSchema {
    if (schema.key === undefined) return schema;
    let entry = this.shared.get(schema.key);
    if (!entry) {
      entry = { schema, refs: 0 };
      this.shared.set(schema.key, entry);
      this.keptBytes += schema.keptBytes;
    }
    entry.refs++;
    return entry.schema;
  }

  /** A device lets a schema go: the shared copy goes with its last holder. */
  private releaseSchema(schema: CompiledSchema): void {
    if (schema.key === undefined) return;
    const entry = this.shared.get(schema.key);
    if (!entry || --entry.refs > 0) return;
    this.shared.delete(schema.key);
    this.keptBytes -= entry.schema.keptBytes;
  }

  private dropSchema(device: Device, id: string): void {
    const schema = device.schemas.get(id);
    if (!schema) return;
    device.schemas.delete(id);
    this.releaseSchema(schema);
  }

  /**
   * Adds a schema to a device's cache, dropping the oldest ones no part uses; returns the copy
   * kept (shared with alike devices); throws Reject when it does not fit.
   */
  private remember(device: Device, schema: CompiledSchema): CompiledSchema {
    const known = device.schemas.get(schema.id);
    if (known) {
      // Most recently used last: the oldest unused ones are dropped first.
      device.schemas.delete(schema.id);
      device.schemas.set(schema.id, known);
      return known;
    }
    const fleetBefore = this.keptBytes;
    const deviceBefore = deviceBytes(device);
    const kept = this.acquire(schema);
    device.schemas.set(kept.id, kept);
    const inUse = new Set(device.telemetry.map((p) => p?.schema.id));
    for (const id of device.schemas.keys()) {
      const full =
        device.schemas.size > MAX_SCHEMAS_PER_DEVICE ||
        deviceBytes(device) > this.options.maxDeviceBytes;
      if (!full) break;
      if (!inUse.has(id) && id !== kept.id) this.dropSchema(device, id);
    }
    this.admit(device, fleetBefore, deviceBefore, () => this.dropSchema(device, kept.id));
    return kept;
  }

  /** Keeps a device's retained schema message undecoded (share groups); throws Reject when it does not fit. */
  private keep(device: Device, raw: RawMessage): void {
    const fleetBefore = this.keptBytes;
    const deviceBefore = deviceBytes(device);
    const previous = device.keptSchema;
    device.keptSchema = raw;
    this.admit(device, fleetBefore, deviceBefore, () => (device.keptSchema = previous));
    device.keptLoaded = false;
  }

  /** Compiles the schemas of the device's kept retained message (a failover, or values that need them). */
  private loadKeptSchema(device: Device): void {
    const kept = device.keptSchema;
    if (!kept || device.keptLoaded) return;
    device.keptLoaded = true;
    const topic = streamTopic(device, 'schema');
    try {
      const value = this.decode(kept.payload, kept.contentType);
      const message = parse(schemaMessageSchema, value);
      const raws = (value as { schemas: unknown[] }).schemas;
      message.schemas.forEach((x, i) => {
        if (!device.schemas.has(x.id)) this.remember(device, this.compile(raws[i]));
      });
      this.resolvePending(device, this.options.clock.now());
    } catch (err) {
      if (!(err instanceof Reject)) throw err;
      // It was counted `kept` when it came; that it turned out malformed is counted now.
      device.keptSchema = undefined;
      this.recount(device);
      this.reject(err.reason, 'schema', topic, device.site, device.node);
    }
  }

  /** Holds values whose schema has not arrived (as received); throws Reject when they do not fit. */
  private hold(device: Device, raw: RawMessage, schemaId: string): void {
    if (device.pending) this.dropPending(device);
    const fleetBefore = this.keptBytes;
    const deviceBefore = deviceBytes(device);
    device.pending = { ...raw, schemaId };
    this.admit(device, fleetBefore, deviceBefore, () => (device.pending = undefined));
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
    let part: TelemetryPart;
    if (existing?.schema === schema && device.telemetry.length === parts) {
      part = existing;
    } else {
      let others = 0;
      for (let i = 0; i < parts; i++)
        if (i !== index) others += device.telemetry[i]?.schema.series ?? 0;
      if (others + schema.series > this.options.maxSeriesPerDevice)
        throw new Reject('series_limit');
      const fleetBefore = this.keptBytes;
      const deviceBefore = deviceBytes(device);
      const saved = device.telemetry;
      part = { schema, values: new Float64Array(schema.columns), ts };
      device.telemetry = saved.slice(0, parts);
      device.telemetry.length = parts;
      device.telemetry[index] = part;
      this.admit(device, fleetBefore, deviceBefore, () => (device.telemetry = saved));
      this.countDuplicates(device);
    }
    const values = part.values;
    for (let i = 0; i < values.length; i++) {
      const c = t.values[i];
      const v = typeof c === 'number' ? c : c?.[last];
      values[i] = typeof v === 'number' ? v : NaN;
    }
    part.ts = ts;
    device.rendered = undefined;
    if (this.changed.size === 0) this.changedSince = this.options.clock.now();
    this.changed.add(device);

    if (device.online === undefined) device.online = true;
    return 'applied';
  }

  /** Counts series that two parts of the device's telemetry both carry (rendered once). */
  private countDuplicates(device: Device): void {
    if (device.telemetry.length < 2) return;
    const seen = new Set<string>();
    let duplicates = 0;
    for (const part of device.telemetry) {
      if (!part) continue;
      for (const f of part.schema.families)
        for (const labels of f.labels) {
          const key = f.name + labels;
          if (seen.has(key)) duplicates++;
          else seen.add(key);
        }
    }
    this.duplicateSeries += duplicates;
  }

  /** Applies a held message once its schema is known (if it is still fresh). */
  private resolvePending(device: Device, now: number): void {
    const pending = device.pending;
    if (!pending) return;
    const schema = device.schemas.get(pending.schemaId);
    if (!schema) return;
    if (now - pending.at > PENDING_MS) {
      this.dropPending(device);
      return;
    }
    device.pending = undefined;
    this.recount(device);
    try {
      const t = parseTelemetry(this.decode(pending.payload, pending.contentType));
      if (!t) throw new Reject('bad_shape');
      this.count('telemetry', this.applyTelemetry(device, t, schema));
    } catch (err) {
      if (!(err instanceof Reject)) throw err;
      const topic = streamTopic(device, 'telemetry');
      this.reject(err.reason, 'telemetry', topic, device.site, device.node);
    }
  }

  private dropPending(device: Device): void {
    device.pending = undefined;
    this.recount(device);
    this.reject('unknown_schema', 'telemetry', streamTopic(device, 'telemetry'));
  }

  /** Exposition lines of a device per family, from the latest values of its parts. */
  private render(device: Device): Map<string, string> {
    const lines = new Map<string, string[]>();
    // Parts of one batch could carry a series twice: shown once, the first part's value.
    const shown = device.telemetry.length > 1 ? new Set<string>() : undefined;
    for (const part of device.telemetry) {
      if (!part) continue;
      for (const f of part.schema.families) {
        let family = lines.get(f.name);
        for (let i = 0; i < f.columns.length; i++) {
          const v = part.values[f.columns[i] as number] as number;
          if (Number.isNaN(v)) continue;
          const labels = f.labels[i] as string;
          if (shown) {
            const key = f.name + labels;
            if (shown.has(key)) continue;
            shown.add(key);
          }
          if (!family) {
            family = [];
            lines.set(f.name, family);
          }
          family.push(`${f.name}${device.prefix}${labels} ${formatValue(v)}\n`);
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
    this.changed.delete(device);
    this.recount(device);
  }

  /** Another gateway of the group serves the device now: keep its status and kept schema only. */
  private release(device: Device): void {
    if (device.pending) this.dropPending(device);
    for (const id of [...device.schemas.keys()]) this.dropSchema(device, id);
    device.keptLoaded = false;
    this.withdraw(device);
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
        for (const schema of device.schemas.values()) this.releaseSchema(schema);
        this.keptBytes -= device.bytes;
        this.changed.delete(device);

        this.devices.delete(key);
        continue;
      }
      if (device.pending && now - device.pending.at > PENDING_MS) this.dropPending(device);
      if (!this.isUp(device, now) && device.telemetry.length > 0) this.withdraw(device);
    }
    if (this.fleetFull && this.keptBytes < this.options.maxFleetBytes * FLEET_BYTES_RECOVERED) {
      this.fleetFull = false;
      this.options.log.info(
        { keptBytes: this.keptBytes, maxFleetBytes: this.options.maxFleetBytes },
        'the fleet byte budget has room again',
      );
    }
  }

  /** Number of devices known (served or, in a share group, tracked for the others). */
  size(): number {
    return this.devices.size;
  }

  /** Number of devices this gateway serves. */
  served(): number {
    let n = 0;
    for (const d of this.devices.values()) if (d.owned) n++;
    return n;
  }

  /** The whole exposition: fleet series, relayed device series, gateway self-metrics. */
  exposition(): string {
    return this.expositionChunks().join('');
  }

  /**
   * The exposition as a list of the strings it is made of (the devices' pre-rendered text is
   * shared, not copied): served as a stream, a scrape of a large fleet never builds one string
   * of it (V8 refuses strings past 512 MiB; the copy alone doubled the memory of a scrape).
   */
  expositionChunks(): string[] {
    this.sweep();
    const now = this.options.clock.now();
    const up: string[] = [];
    const lastSeen: string[] = [];
    const info: string[] = [];
    const events: string[] = [];
    const relayed = new Map<string, string[]>();
    let served = 0;
    // A member of a share group cut off from the broker shows no device: the others have taken
    // its devices over (its will fired), and it would report them twice, then down.
    const showDevices = !this.grouped || this.brokerConnected;
    for (const d of this.devices.values()) {
      if (!d.owned || !showDevices) continue;

      served++;
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
    const single = (desc: MetricDesc, value: number) =>
      family(desc, [sampleLine(desc.name, [], value)]);
    const out = [
      family(m.up, up),
      family(m.lastSeen, lastSeen),
      family(m.info, info),
      family(m.events, events),
      single(m.devices, served),
      family(m.messages, messages),
      family(m.rejected, rejected),
      single(m.renamedLabels, this.renamedLabels),
      single(m.duplicateSeries, this.duplicateSeries),
      single(m.keptBytes, this.keptBytes),
      single(m.groupMembers, this.groupMembers),
      single(m.connected, this.brokerConnected ? 1 : 0),
    ];
    for (const name of [...relayed.keys()].sort()) {
      const declared = RELAYED_FAMILIES[name];
      const type = declared?.type ?? (name.endsWith('_total') ? 'counter' : 'gauge');
      out.push(familyText(name, declared?.help ?? RELAYED_HELP, type, []));
      for (const text of relayed.get(name) ?? []) out.push(text);
    }
    return out;
  }

  private count(stream: StreamName, result: CountedResult, n = 1): void {
    const key = `${stream}\u0000${result}`;
    this.messages.set(key, (this.messages.get(key) ?? 0) + n);
  }

  private reject(
    reason: RejectReason,
    stream: StreamName,
    topic: string,
    site?: string,
    node?: string,
  ): 'rejected' {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
    this.count(stream, 'rejected');
    const device = site !== undefined ? this.devices.get(`${site}/${node}`) : undefined;
    if (reason === 'fleet_bytes' && !this.fleetFull) {
      this.fleetFull = true;
      this.options.log.warn(
        { keptBytes: this.keptBytes, maxFleetBytes: this.options.maxFleetBytes },
        'the fleet byte budget (gateway.maxFleetBytes) is spent: devices that need more are refused until it has room; raise it or add a gateway to the share group',
      );
    }
    // A device over a limit: logged when it starts being refused (and when that ends, see
    // applyTelemetryMessage), not per message.
    if (device && LIMIT_REASONS.has(reason)) {
      if (device.limited !== reason) {
        device.limited = reason;
        this.options.log.warn(
          {
            site: device.site,
            node: device.node,
            reason,
            keptBytes: device.bytes,
            maxDeviceBytes: this.options.maxDeviceBytes,
            maxSeriesPerDevice: this.options.maxSeriesPerDevice,
          },
          'fleet device over a gateway limit: its telemetry is refused until it fits (the rest of the fleet is served)',
        );
      }
      return 'rejected';
    }
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
