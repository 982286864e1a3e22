import type { Logger } from 'pino';
import { backoffDelay, type Clock, type TimerHandle } from '../../agent/core/clock.js';
import { errorMessage } from '../../agent/core/errors.js';
import { at, num, str, stringMap } from './json.js';

/**
 * Splits a stream of JSON objects: NDJSON as the Engine sends it, objects printed back to back
 * (the API reference's examples), with non-JSON noise between them skipped. Written by hand: the
 * NDJSON splitters on npm assume one object per line and stop or throw on the rest.
 */
export class JsonObjectSplitter {
  private buf = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private start = -1;

  constructor(private readonly maxObjectChars = 1024 * 1024) {}

  /** Feeds a chunk; returns the complete objects in it and how many candidates were not JSON. */
  push(chunk: string): { values: unknown[]; errors: number } {
    const values: unknown[] = [];
    let errors = 0;
    const base = this.buf.length;
    this.buf += chunk;
    for (let i = base; i < this.buf.length; i++) {
      const c = this.buf[i];
      if (this.depth === 0) {
        if (c === '{') {
          this.depth = 1;
          this.start = i;
          this.inString = false;
          this.escaped = false;
        }
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
        continue;
      }
      if (c === '"') this.inString = true;
      else if (c === '{') this.depth++;
      else if (c === '}' && --this.depth === 0) {
        try {
          values.push(JSON.parse(this.buf.slice(this.start, i + 1)) as unknown);
        } catch {
          errors++;
        }
        this.start = -1;
      }
    }
    if (this.depth === 0) {
      this.buf = '';
    } else if (this.buf.length - this.start > this.maxObjectChars) {
      // An opening brace that never closes: drop it rather than buffer forever.
      errors++;
      this.buf = '';
      this.depth = 0;
      this.start = -1;
    } else {
      this.buf = this.buf.slice(this.start);
      this.start = 0;
    }
    return { values, errors };
  }
}

/** One Engine event, normalised across API versions. */
export interface EngineEvent {
  /** container, image, network, volume, daemon ... (legacy events without Type are containers). */
  readonly type: string;
  /** create, start, die, oom, destroy, restart, health_status ... (the part before any ":"). */
  readonly action: string;
  readonly id: string;
  /** Actor attributes: name, image, exitCode and the container's labels. */
  readonly attributes: Readonly<Record<string, string>>;
  /** Engine time, Unix ms. */
  readonly timeMs: number;
  /** Engine time as `seconds.nanoseconds`, the form `since` takes. */
  readonly since: string;
}

/** Normalises one event object; undefined when it has no action or id. */
export function normalizeEvent(json: unknown): EngineEvent | undefined {
  const rawAction = str(at(json, 'Action')) ?? str(at(json, 'status'));
  const id = str(at(json, 'Actor', 'ID')) ?? str(at(json, 'id'));
  if (!rawAction || id === undefined) return undefined;
  // API < 1.22 sent only status/id/from: those were container events.
  const type = str(at(json, 'Type')) ?? 'container';
  const seconds = num(at(json, 'time')) ?? 0;
  const nano = num(at(json, 'timeNano'));
  // timeNano exceeds 2^53: keep whole seconds from `time` and the (approximate) fraction from it.
  const fracNs = nano === undefined ? 0 : Math.max(0, Math.min(999_999_999, nano - seconds * 1e9));
  const attributes = { ...stringMap(at(json, 'Actor', 'Attributes')) };
  const from = str(at(json, 'from'));
  if (from && attributes.image === undefined) attributes.image = from;
  return {
    type,
    action: rawAction.split(':')[0]?.trim() ?? rawAction,
    id,
    attributes,
    timeMs: seconds * 1000 + Math.floor(fracNs / 1e6),
    since: `${seconds}.${String(Math.floor(fracNs)).padStart(9, '0')}`,
  };
}

/** An HTTP response stream (it has destroy, which the Node typings of ReadableStream omit). */
type Destroyable = NodeJS.ReadableStream & { destroy?: () => void };

/** Opens the Engine's event stream (dockerode's getEvents). */
export type OpenEvents = (options: {
  since?: string;
  filters: Record<string, string[]>;
}) => Promise<NodeJS.ReadableStream>;

/** Options of the reconnecting event stream. */
export interface EventStreamOptions {
  readonly open: OpenEvents;
  readonly clock: Clock;
  readonly log: Logger;
  readonly random?: () => number;
  readonly onEvent: (event: EngineEvent) => void;
  /** Called on each (re)connection: the caller re-reads state that may have changed meanwhile. */
  readonly onConnect: () => void;
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
}

/**
 * The Engine's container events, kept open: on end or error it reconnects with full-jitter
 * backoff and asks for the events it missed (`since` the last one seen).
 */
export class EventStream {
  private stream: Destroyable | undefined;
  private timer: TimerHandle | undefined;
  private stopped = true;
  private attempts = 0;
  private lastSince: string | undefined;
  private connections = 0;
  // Events replayed by `since` after a reconnect are the same events: remember recent ones.
  private readonly recent = new Set<string>();
  /** Event objects that were not JSON. */
  parseErrors = 0;
  connected = false;

  constructor(private readonly options: EventStreamOptions) {}

  /** Successful connections after the first one. */
  get reconnects(): number {
    return Math.max(0, this.connections - 1);
  }

  /** Starts (idempotent). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.connect();
  }

  /** Stops for good. */
  stop(): void {
    this.stopped = true;
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.close();
  }

  private close(): void {
    const s = this.stream;
    this.stream = undefined;
    this.connected = false;
    s?.removeAllListeners();
    // A destroyed stream may still emit 'error'; keep a listener so it is not an uncaught one.
    s?.on('error', () => undefined);
    s?.destroy?.();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.options.open({
        since: this.lastSince,
        filters: { type: ['container'] },
      });
    } catch (err) {
      this.options.log.debug({ err: errorMessage(err) }, 'docker event stream: connect failed');
      this.retry();
      return;
    }
    if (this.stopped) {
      (stream as Destroyable).destroy?.();
      return;
    }
    this.connections++;
    this.stream = stream;
    this.connected = true;
    this.attempts = 0;
    const splitter = new JsonObjectSplitter();
    stream.setEncoding?.('utf8');
    stream.on('data', (chunk: string | Buffer) => {
      const { values, errors } = splitter.push(
        typeof chunk === 'string' ? chunk : chunk.toString('utf8'),
      );
      this.parseErrors += errors;
      for (const v of values) {
        const e = normalizeEvent(v);
        if (!e) continue;
        const key = `${e.since} ${e.id} ${e.action}`;
        if (this.recent.has(key)) continue;
        this.recent.add(key);
        if (this.recent.size > 512) this.recent.delete(this.recent.values().next().value ?? '');
        this.lastSince = e.since;
        try {
          this.options.onEvent(e);
        } catch (err) {
          this.options.log.error({ err: errorMessage(err) }, 'docker event handler failed');
        }
      }
    });
    const ended = (why: string) => {
      if (this.stream !== stream) return;
      this.options.log.debug({ why }, 'docker event stream ended; reconnecting');
      this.close();
      this.retry();
    };
    stream.on('end', () => ended('end'));
    stream.on('close', () => ended('close'));
    stream.on('error', (err: Error) => ended(err.message));
    this.options.onConnect();
  }

  private retry(): void {
    if (this.stopped) return;
    const base = this.options.backoffBaseMs ?? 500;
    const delay = Math.max(
      base / 2,
      backoffDelay(this.attempts++, base, this.options.backoffMaxMs ?? 30_000, this.options.random),
    );
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, delay);
    this.timer.unref?.();
  }
}
