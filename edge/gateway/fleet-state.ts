import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Clock } from '../../agent/clock.js';
import { counter, gauge } from '../../agent/metric.js';
import type { MetricDesc } from '../../agent/types.js';
import {
  decodeBody,
  eventsSchema,
  METRIC_PREFIX,
  PayloadError,
  statusSchema,
  telemetrySchema,
} from '../../exporters/mqtt/payloads.js';
import { parseStreamTopic, type StreamName } from '../../exporters/mqtt/topics.js';
import type { IncomingMessage } from '../delivery.js';
import { familyText, sampleLine } from './exposition.js';

/** Why a message was dropped (the `reason` of gpulse_fleet_rejected_messages_total). */
export type RejectReason =
  | 'bad_topic'
  | 'too_large'
  | 'bad_encoding'
  | 'bad_json'
  | 'bad_shape'
  | 'bad_name'
  | 'device_limit'
  | 'series_limit';

const REJECT_REASONS: readonly RejectReason[] = [
  'bad_topic',
  'too_large',
  'bad_encoding',
  'bad_json',
  'bad_shape',
  'bad_name',
  'device_limit',
  'series_limit',
];

/** What became of an accepted message. */
export type IngestResult = 'applied' | 'stale' | 'rejected';

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

interface Device {
  readonly site: string;
  readonly node: string;
  lastSeen: number;
  /** From the status topic; undefined until a status was seen. */
  online: boolean | undefined;
  session: number;
  version: string | undefined;
  telemetryTs: number;
  /** Rendered lines per relayed family. */
  families: Map<string, string>;
  series: number;
  readonly events: Map<string, number>;
}

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
    'Fleet messages by stream and outcome: applied, stale (an older replay) or rejected.',
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
  /** Set by the gateway from its connection. */
  brokerConnected = false;

  constructor(private readonly options: FleetOptions) {
    for (const r of REJECT_REASONS) this.rejected.set(r, 0);
    for (const s of ['telemetry', 'events', 'status'])
      for (const r of ['applied', 'stale', 'rejected']) this.messages.set(`${s}\u0000${r}`, 0);
  }

  /** Takes one received message; returns what became of it. */
  ingest(message: IncomingMessage): IngestResult {
    const parsed = parseStreamTopic(message.topic);
    if (!parsed) return this.reject('bad_topic', 'status', message.topic);
    const { site, node, stream } = parsed;
    try {
      if (message.payload.length > this.options.maxPayloadBytes) throw new Reject('too_large');
      let value: unknown;
      try {
        const text = decodeBody(
          message.payload,
          message.contentType,
          this.options.maxInflatedBytes,
        );
        value = JSON.parse(text);
      } catch (err) {
        if (err instanceof PayloadError) throw new Reject(err.reason);
        throw new Reject('bad_json');
      }
      const result = this.apply(site, node, stream, value, message.retain);
      this.count(stream, result);
      return result;
    } catch (err) {
      if (err instanceof Reject) return this.reject(err.reason, stream, message.topic);
      throw err;
    }
  }

  private apply(
    site: string,
    node: string,
    stream: StreamName,
    value: unknown,
    retained: boolean,
  ): IngestResult {
    const now = this.options.clock.now();
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
        const t = parse(telemetrySchema, value);
        const existing = this.devices.get(`${site}/${node}`);
        const part = t.part ?? 1;
        const sameSnapshot = existing !== undefined && part > 1 && t.ts === existing.telemetryTs;
        // Replays apply only when newer than what is shown; live messages always do.
        const stale =
          existing !== undefined &&
          t.replay === true &&
          t.ts <= existing.telemetryTs &&
          !sameSnapshot;
        // Rendered before the device is created: a malformed message never adds a device.
        const rendered = stale
          ? undefined
          : this.render(site, node, t.series, sameSnapshot ? existing : undefined);
        const device = existing ?? this.device(site, node, now);
        device.lastSeen = now;
        if (!rendered) return 'stale';
        device.families = rendered.families;
        device.series = rendered.series;
        device.telemetryTs = t.ts;
        if (device.online === undefined) device.online = true;
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

  private device(site: string, node: string, seen: number): Device {
    const key = `${site}/${node}`;
    let device = this.devices.get(key);
    if (device) return device;
    if (this.devices.size >= this.options.maxDevices) throw new Reject('device_limit');
    device = {
      site,
      node,
      lastSeen: seen,
      online: undefined,
      session: 0,
      version: undefined,
      telemetryTs: -Infinity,
      families: new Map(),
      series: 0,
      events: new Map(),
    };
    this.devices.set(key, device);
    return device;
  }

  private render(
    site: string,
    node: string,
    series: z.infer<typeof telemetrySchema>['series'],
    mergeInto: Device | undefined,
  ): { families: Map<string, string>; series: number } {
    const families = new Map<string, string[]>();
    const seen = new Set<string>();
    let count = mergeInto ? mergeInto.series : 0;
    const identity: [string, string][] = [
      ['site', site],
      ['node', node],
    ];
    for (const group of series) {
      const names = Object.keys(group.labels);
      if (names.length > MAX_LABELS) throw new Reject('bad_shape');
      const pairs: [string, string][] = [...identity];
      for (const name of names.sort()) {
        const v = group.labels[name] as string;
        if (!LABEL_RE.test(name) || name.startsWith('__') || v.length > MAX_LABEL_VALUE)
          throw new Reject('bad_name');
        // A device label that clashes with the gateway's identity labels keeps its value renamed.
        pairs.push([name === 'site' || name === 'node' ? `exported_${name}` : name, v]);
      }
      const labelKey = pairs.map(([k, v]) => `${k}\u0000${v}`).join('\u0001');
      for (const [key, value] of Object.entries(group.metrics)) {
        if (!METRIC_RE.test(key) || key.length > 200 || key.startsWith('fleet_'))
          throw new Reject('bad_name');
        const family = METRIC_PREFIX + key;
        const seriesKey = `${family}\u0002${labelKey}`;
        if (seen.has(seriesKey)) continue;
        seen.add(seriesKey);
        if (++count > this.options.maxSeriesPerDevice) throw new Reject('series_limit');
        let lines = families.get(family);
        if (!lines) {
          lines = [];
          families.set(family, lines);
        }
        lines.push(sampleLine(family, pairs, value));
      }
    }
    const next = new Map<string, string>(mergeInto?.families ?? []);
    for (const [family, lines] of families)
      next.set(family, (next.get(family) ?? '') + lines.join(''));
    return { families: next, series: count };
  }

  private withdraw(device: Device): void {
    device.families = new Map();
    device.series = 0;
    device.telemetryTs = -Infinity;
  }

  private isUp(device: Device, now: number): boolean {
    return device.online !== false && now - device.lastSeen <= this.options.deviceTimeoutMs;
  }

  /** Forgets devices past their TTL and withdraws the series of silent ones. */
  sweep(): void {
    const now = this.options.clock.now();
    for (const [key, device] of this.devices) {
      if (now - device.lastSeen > this.options.deviceTtlMs) this.devices.delete(key);
      else if (!this.isUp(device, now) && device.families.size > 0) this.withdraw(device);
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
      for (const [family, text] of d.families) {
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

  private count(stream: StreamName, result: IngestResult): void {
    const key = `${stream}\u0000${result}`;
    this.messages.set(key, (this.messages.get(key) ?? 0) + 1);
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
