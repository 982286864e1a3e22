import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../agent/core/clock.js';
import { errorMessage } from '../../agent/core/errors.js';
import {
  CONTENT_TYPE_DEFLATE,
  decodeBody,
  encodeBody,
  markReplay,
  type ContentType,
  type EncodedBody,
} from '../../exporters/mqtt/payloads.js';
import { PublishRefusedError, withTimeout, type PublishOptions } from './delivery.js';
import { FLAG_DEFLATE } from './spool/record-format.js';
import type { Spool, SpoolStream, StreamRecord } from './spool/spool.js';

/** A spooled payload never inflates beyond this (messages are < 64 KB deflated). */
const MAX_SPOOLED_JSON_BYTES = 64 * 1024 * 1024;

/** One message on its way out: already numbered and encoded for a live send. */
export interface OutgoingMessage {
  readonly stream: SpoolStream;
  readonly seq: number;
  /** Sample time (telemetry) or newest event time, Unix ms. */
  readonly ts: number;
  readonly body: Buffer;
  readonly contentType: ContentType;
  /** Telemetry: the id of the schema `body` carries inline. */
  readonly schemaId?: string;
  /** Telemetry: the same message with only the schema id, sent live once the connection carried the schema. */
  readonly compact?: EncodedBody;
}

/** What became of a submitted message. */
export type SubmitResult = 'sent' | 'spooled' | 'dropped';

/** Outcome counted in `gpulse_mqtt_published_total{stream,result}`. */
export type PublishResult = 'sent' | 'replayed' | 'spooled' | 'refused';

/** The part of the connection the outbox uses. */
export interface OutboxLink {
  readonly connected: boolean;
  publish(topic: string, payload: Buffer, options: PublishOptions): Promise<void>;
}

/** Settings and I/O of the outbox. */
export interface OutboxOptions {
  readonly link: OutboxLink;
  readonly spool: Spool;
  readonly topics: Readonly<Record<SpoolStream, string>>;
  /** QoS of telemetry; events are always QoS 1. */
  readonly telemetryQos: 0 | 1;
  readonly compressAbove: number;
  /** Replay speed, bytes per second. */
  readonly replayRate: number;
  /** Replayed messages in flight at once. */
  readonly replayInFlight: number;
  /** A live message not acknowledged within this goes to the spool. */
  readonly publishTimeoutMs: number;
  readonly clock: Clock;
  readonly log: Logger;
  readonly onResult?: (stream: SpoolStream, result: PublishResult) => void;
}

interface Queued {
  readonly msg: OutgoingMessage;
  settled: boolean;
  resolve(result: SubmitResult): void;
}

/**
 * Delivers numbered messages in seq order. While connected with an empty spool, a message goes out
 * at once; otherwise (offline, a backlog, no PUBACK in time) it is spooled, and the spool is
 * replayed oldest first, rate-limited, marked `"replay": true`, before anything newer — so the
 * broker sees a node's seq in order. A message is never lost between memory and disk: what is not
 * acknowledged by the broker is in the spool before `submit` resolves with `spooled`.
 */
export class Outbox {
  private readonly queue: Queued[] = [];
  private pumping = false;
  private again = false;
  private stopped = false;
  private inflight = 0;
  /** Highest spooled seq handed to the broker on this connection. */
  private sentThrough = 0;
  private tokens: number;
  private refilledAt: number;
  private wakeTimer: TimerHandle | undefined;
  private readonly refusedLogged = new Set<string>();
  /** Schema ids already sent inline on this connection (live messages may then omit them). */
  private readonly inlineSchemas = new Set<string>();

  /** Replay budget per second; Infinity when replayRate is not a positive number. */
  private readonly rate: number;

  constructor(private readonly options: OutboxOptions) {
    const r = options.replayRate;
    // 0, a negative or NaN rate would divide by zero below and wake every millisecond.
    this.rate = Number.isFinite(r) && r > 0 ? r : Infinity;
    if (this.rate === Infinity && r !== Infinity)
      options.log.warn(
        { replayRate: r },
        'mqtt.spool.replayRate is not a positive number of bytes per second: replay is limited only by mqtt.replayInFlight',
      );
    this.tokens = this.rate;
    this.refilledAt = options.clock.now();
  }

  /** Queues a message; resolves once it was delivered live, or spooled, or (bound) dropped. */
  submit(msg: OutgoingMessage): Promise<SubmitResult> {
    if (this.stopped) return Promise.resolve('dropped');
    return new Promise((resolve) => {
      const entry: Queued = {
        msg,
        settled: false,
        resolve: (r) => {
          if (entry.settled) return;
          entry.settled = true;
          resolve(r);
        },
      };
      this.queue.push(entry);
      this.kick();
    });
  }

  /** The connection came up or went down: replay starts over from the oldest unacknowledged. */
  connectionChanged(): void {
    this.sentThrough = 0;
    this.inlineSchemas.clear();
    this.options.spool.releaseSending();
    this.kick();
  }

  /** Spools whatever is still in memory; later submits are dropped. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.wakeTimer) this.options.clock.clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    const rest = this.queue.splice(0);
    await this.spoolEntries(rest);
  }

  private kick(): void {
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        await this.step();
      } while (this.again && !this.stopped);
    } catch (err) {
      this.options.log.error({ err: errorMessage(err) }, 'MQTT outbox failed; retrying shortly');
      this.wake(1000);
    } finally {
      this.pumping = false;
    }
  }

  private async step(): Promise<void> {
    const { link, spool } = this.options;
    // Live: only with nothing older waiting, so seq order holds on the wire.
    while (!this.stopped && this.queue.length > 0 && link.connected && spool.isEmpty()) {
      const head = this.queue[0] as Queued;
      const { msg } = head;
      // The first message of a schema on a connection carries it inline; later ones only its id.
      const compact =
        msg.compact && msg.schemaId !== undefined && this.inlineSchemas.has(msg.schemaId)
          ? msg.compact
          : undefined;
      try {
        await withTimeout(
          link.publish(this.options.topics[msg.stream], (compact ?? msg).body, {
            qos: this.qosOf(msg.stream),
            contentType: (compact ?? msg).contentType,
          }),
          this.options.publishTimeoutMs,
          this.options.clock,
        );
        if (!compact && msg.schemaId !== undefined) {
          // Bounded: parts and schema changes add ids; a fresh start costs one inline copy each.
          if (this.inlineSchemas.size >= 64) this.inlineSchemas.clear();
          this.inlineSchemas.add(msg.schemaId);
        }
        if (this.queue[0] === head) this.queue.shift();
        if (!head.settled) this.options.onResult?.(msg.stream, 'sent');
        head.resolve('sent');
      } catch (err) {
        if (!(err instanceof PublishRefusedError)) break;
        if (this.queue[0] === head) this.queue.shift();
        this.refused(msg.stream, err);
        head.resolve('dropped');
      }
    }
    if (this.stopped) return;
    if (this.queue.length > 0) {
      await this.spoolEntries(this.queue.splice(0));
      this.again = true;
      return;
    }
    if (link.connected && !spool.isEmpty()) await this.replay();
  }

  private async spoolEntries(entries: readonly Queued[]): Promise<void> {
    if (entries.length === 0) return;
    const records: StreamRecord[] = entries.map(({ msg }) => ({
      stream: msg.stream,
      seq: msg.seq,
      ts: msg.ts,
      flags: msg.contentType === CONTENT_TYPE_DEFLATE ? FLAG_DEFLATE : 0,
      data: msg.body,
    }));
    let rejected: Set<number>;
    try {
      rejected = new Set((await this.options.spool.append(records)).map((r) => r.seq));
    } catch (err) {
      // The spool counted and logged what it could not write; nothing may stay unresolved.
      this.options.log.error({ err: errorMessage(err) }, 'spool append failed; messages dropped');
      rejected = new Set(records.map((r) => r.seq));
    }
    for (const e of entries) {
      if (rejected.has(e.msg.seq)) {
        e.resolve('dropped');
        continue;
      }
      this.options.onResult?.(e.msg.stream, 'spooled');
      e.resolve('spooled');
    }
  }

  private async replay(): Promise<void> {
    const { link, spool } = this.options;
    while (!this.stopped && link.connected && this.inflight < this.options.replayInFlight) {
      const records = await spool.read(
        this.sentThrough,
        this.options.replayInFlight - this.inflight,
      );
      if (records.length === 0) return;
      for (const r of records) {
        if (this.stopped || !link.connected) return;
        const waitMs = this.take(r.data.length);
        if (waitMs > 0) {
          this.wake(waitMs);
          return;
        }
        this.sentThrough = r.seq;
        this.inflight++;
        spool.markSending(r.stream, r.seq);
        this.sendReplay(r);
      }
    }
  }

  private sendReplay(r: StreamRecord): void {
    const { link, spool } = this.options;
    let body: Buffer;
    let contentType: ContentType;
    try {
      const json =
        r.flags & FLAG_DEFLATE
          ? decodeBody(r.data, CONTENT_TYPE_DEFLATE, MAX_SPOOLED_JSON_BYTES)
          : r.data.toString('utf8');
      ({ body, contentType } = encodeBody(markReplay(json), this.options.compressAbove));
    } catch (err) {
      // Passed its CRC yet does not decode: nothing to send; count it as refused, move on.
      this.inflight--;
      spool.ack(r.stream, r.seq);
      this.options.log.error({ seq: r.seq, err: errorMessage(err) }, 'spooled message unreadable');
      this.options.onResult?.(r.stream, 'refused');
      return;
    }
    link
      .publish(this.options.topics[r.stream], body, { qos: this.qosOf(r.stream), contentType })
      .then(
        () => {
          spool.ack(r.stream, r.seq);
          this.options.onResult?.(r.stream, 'replayed');
        },
        (err: unknown) => {
          if (err instanceof PublishRefusedError) {
            spool.ack(r.stream, r.seq);
            this.refused(r.stream, err);
          }
          // Otherwise the connection dropped: the record stays and is sent after reconnect.
        },
      )
      .finally(() => {
        this.inflight--;
        this.kick();
      });
  }

  /** Takes replay budget for `bytes`; returns how long to wait when there is not enough. */
  private take(bytes: number): number {
    if (this.rate === Infinity) return 0;
    const replayRate = this.rate;
    const now = this.options.clock.now();
    this.tokens = Math.min(replayRate, this.tokens + ((now - this.refilledAt) / 1000) * replayRate);
    this.refilledAt = now;
    // A record larger than one second's budget still passes once the bucket is full.
    if (this.tokens >= Math.min(bytes, replayRate)) {
      this.tokens -= bytes;
      return 0;
    }
    return Math.max(
      1,
      Math.ceil(((Math.min(bytes, replayRate) - this.tokens) / replayRate) * 1000),
    );
  }

  private wake(ms: number): void {
    if (this.wakeTimer || this.stopped) return;
    this.wakeTimer = this.options.clock.setTimeout(() => {
      this.wakeTimer = undefined;
      this.kick();
    }, ms);
    this.wakeTimer.unref?.();
  }

  private qosOf(stream: SpoolStream): 0 | 1 {
    return stream === 'events' ? 1 : this.options.telemetryQos;
  }

  private refused(stream: SpoolStream, err: PublishRefusedError): void {
    this.options.onResult?.(stream, 'refused');
    const key = `${stream}:${err.reasonCode}`;
    if (this.refusedLogged.has(key)) return;
    this.refusedLogged.add(key);
    this.options.log.error(
      { stream, topic: this.options.topics[stream], reasonCode: err.reasonCode, err: err.message },
      'the broker refused a message (not retried); check the broker ACL for this node',
    );
  }
}
