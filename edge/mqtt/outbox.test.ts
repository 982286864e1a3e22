import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../../agent/core/clock.js';
import { decodeBody, encodeBody } from '../../exporters/mqtt/payloads.js';
import { silentLogger } from '../../test/helpers/log-sink.js';
import { Outbox, type OutboxLink, type OutgoingMessage, type PublishResult } from './outbox.js';
import {
  ConnectionLostError,
  NotConnectedError,
  PublishRefusedError,
  type PublishOptions,
} from './publisher.js';
import { Spool, type SpoolStream } from './spool/spool.js';

interface Published {
  readonly topic: string;
  readonly json: Record<string, unknown>;
  readonly options: PublishOptions;
}

/** A broker connection whose answers the test decides. */
class FakeLink implements OutboxLink {
  connected = true;
  mode: 'ack' | 'hold' | 'refuse' = 'ack';
  readonly published: Published[] = [];
  private readonly held: { resolve(): void; reject(e: Error): void }[] = [];

  publish(topic: string, payload: Buffer, options: PublishOptions): Promise<void> {
    if (!this.connected) return Promise.reject(new NotConnectedError());
    const json = JSON.parse(decodeBody(payload, options.contentType, 1e7)) as Record<
      string,
      unknown
    >;
    this.published.push({ topic, json, options });
    if (this.mode === 'refuse')
      return Promise.reject(new PublishRefusedError(0x87, 'Not authorized'));
    if (this.mode === 'ack') return Promise.resolve();
    return new Promise((resolve, reject) => this.held.push({ resolve, reject }));
  }

  ackHeld(): void {
    for (const h of this.held.splice(0)) h.resolve();
  }

  drop(): void {
    this.connected = false;
    for (const h of this.held.splice(0)) h.reject(new ConnectionLostError());
  }

  seqs(): number[] {
    return this.published.map((p) => p.json.seq as number);
  }
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** How the tests wait for the outbox's asynchronous replay. */
const POLL = { timeout: 5000, interval: 5 };

async function setup(options: { replayRate?: number; publishTimeoutMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'gpulse-outbox-'));
  dirs.push(dir);
  const clock = new FakeClock();
  const log = silentLogger();
  const spool = await Spool.open({ dir, clock, log, maxBytes: 1e8, maxAgeMs: 86_400_000 });
  const link = new FakeLink();
  const results: { stream: SpoolStream; result: PublishResult }[] = [];
  const outbox = new Outbox({
    link,
    spool,
    topics: { telemetry: 'gpulse/v1/s/n/telemetry', events: 'gpulse/v1/s/n/events' },
    telemetryQos: 1,
    compressAbove: 256,
    replayRate: options.replayRate ?? 1e9,
    replayInFlight: 4,
    publishTimeoutMs: options.publishTimeoutMs ?? 10_000,
    clock,
    log,
    onResult: (stream, result) => results.push({ stream, result }),
  });
  let seq = 0;
  const message = (stream: SpoolStream = 'telemetry', pad = 0): OutgoingMessage => {
    seq++;
    const json = `{"v":1,"seq":${seq},"ts":${clock.now()},"series":[],"pad":"${'p'.repeat(pad)}"}`;
    return { stream, seq, ts: clock.now(), ...encodeBody(json, 256) };
  };
  const count = (result: PublishResult) => results.filter((r) => r.result === result).length;
  return { clock, spool, link, outbox, message, count };
}

describe('Outbox', () => {
  it('sends live while connected with nothing spooled, and never touches the disk', async () => {
    const { link, outbox, message, spool, count } = await setup();
    expect(await outbox.submit(message())).toBe('sent');
    expect(await outbox.submit(message('events'))).toBe('sent');
    expect(link.published.map((p) => [p.topic, p.json.seq, p.json.replay, p.options.qos])).toEqual([
      ['gpulse/v1/s/n/telemetry', 1, undefined, 1],
      ['gpulse/v1/s/n/events', 2, undefined, 1],
    ]);
    expect(spool.bytes()).toBe(0);
    expect(count('sent')).toBe(2);
    await outbox.stop();
    await spool.close();
  });

  it('spools while offline and replays oldest first, marked replay, once connected', async () => {
    const { link, outbox, message, spool, count } = await setup();
    link.connected = false;
    const results = await Promise.all(
      [1, 2, 3].map((i) => outbox.submit(message(i === 2 ? 'events' : 'telemetry', 600))),
    );
    expect(results).toEqual(['spooled', 'spooled', 'spooled']);
    expect(spool.stats().pending).toBe(3);
    link.connected = true;
    outbox.connectionChanged();
    await expect.poll(() => spool.isEmpty(), { ...POLL, message: 'replay' }).toBe(true);
    expect(link.seqs()).toEqual([1, 2, 3]);
    expect(link.published.every((p) => p.json.replay === true)).toBe(true);
    expect(link.published[1]?.topic).toBe('gpulse/v1/s/n/events');
    // Large payloads travel deflated, small ones plain: the content type says which.
    expect(link.published[0]?.options.contentType).toBe('application/json+deflate');
    expect(count('replayed')).toBe(3);
    expect(count('spooled')).toBe(3);
    // New messages go live again once the backlog is gone.
    expect(await outbox.submit(message())).toBe('sent');
    expect(link.published[3]?.json.replay).toBeUndefined();
    await outbox.stop();
    await spool.close();
  });

  it('keeps seq order on the wire when live data arrives during a replay', async () => {
    const { link, outbox, message, spool } = await setup();
    link.connected = false;
    for (let i = 0; i < 6; i++) await outbox.submit(message());
    link.connected = true;
    link.mode = 'hold';
    outbox.connectionChanged();
    await expect
      .poll(() => link.published.length, { ...POLL, message: 'first replay window' })
      .toBe(4);
    // Live messages now queue behind the backlog instead of jumping ahead of it.
    expect(await outbox.submit(message())).toBe('spooled');
    expect(await outbox.submit(message())).toBe('spooled');
    link.mode = 'ack';
    link.ackHeld();
    await expect.poll(() => spool.isEmpty(), { ...POLL, message: 'backlog drained' }).toBe(true);
    expect(link.seqs()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    await outbox.stop();
    await spool.close();
  });

  it('resends what was in flight when the connection drops during a replay, losing nothing', async () => {
    const { clock, link, outbox, message, spool } = await setup();
    link.connected = false;
    for (let i = 0; i < 6; i++) await outbox.submit(message());
    link.connected = true;
    link.mode = 'hold';
    outbox.connectionChanged();
    await expect.poll(() => link.published.length, { ...POLL, message: 'replay window' }).toBe(4);
    link.drop();
    outbox.connectionChanged();
    // The dropped publishes are rejected in promise callbacks: let them all run (time stands still).
    await clock.advance(0);
    expect(spool.stats().pending).toBe(6);
    link.connected = true;
    link.mode = 'ack';
    outbox.connectionChanged();
    await expect
      .poll(() => spool.isEmpty(), { ...POLL, message: 'replay after reconnect' })
      .toBe(true);
    expect(link.seqs()).toEqual([1, 2, 3, 4, 1, 2, 3, 4, 5, 6]);
    await outbox.stop();
    await spool.close();
  });

  it('spools a live message whose PUBACK does not come within the publish timeout', async () => {
    const { clock, link, outbox, message, spool } = await setup({ publishTimeoutMs: 5000 });
    link.mode = 'hold';
    const result = outbox.submit(message());
    await expect.poll(() => link.published.length, { ...POLL, message: 'live attempt' }).toBe(1);
    await clock.advance(5000);
    expect(await result).toBe('spooled');
    expect(spool.stats().pending).toBe(1);
    await outbox.stop();
    await spool.close();
  });

  it('drops and counts a message the broker refuses (ACL), without retrying it', async () => {
    const { link, outbox, message, spool, count } = await setup();
    link.mode = 'refuse';
    expect(await outbox.submit(message())).toBe('dropped');
    expect(link.published).toHaveLength(1);
    expect(count('refused')).toBe(1);
    expect(spool.isEmpty()).toBe(true);
    await outbox.stop();
    await spool.close();
  });

  it('rate-limits the replay to the configured bytes per second', async () => {
    const { clock, link, outbox, message, spool } = await setup({ replayRate: 1000 });
    link.connected = false;
    // Incompressible 400-byte payloads: the bucket holds 1000 bytes.
    for (let i = 0; i < 6; i++) {
      const m = message();
      await outbox.submit({
        ...m,
        body: Buffer.from(m.body.toString() + ' '.repeat(400)),
        contentType: 'application/json',
      });
    }
    link.connected = true;
    outbox.connectionChanged();
    // The replay stops when the budget runs out and waits for it (its private `wake`): once it
    // has, nothing more goes out until the clock moves (the acks still settling are let run).
    const wake = vi.spyOn(outbox as unknown as { wake(ms: number): void }, 'wake');
    const waitingForBudget = async (message: string) => {
      await expect.poll(() => wake.mock.calls.length, { ...POLL, message }).toBeGreaterThan(0);
      await clock.advance(0);
      wake.mockClear();
    };
    await waitingForBudget('first second of replay');
    expect(link.published).toHaveLength(2);
    await clock.advance(1000);
    await waitingForBudget('second second');
    expect(link.published).toHaveLength(4);
    await clock.advance(1000);
    await expect.poll(() => spool.isEmpty(), { ...POLL, message: 'rest' }).toBe(true);
    expect(link.seqs()).toEqual([1, 2, 3, 4, 5, 6]);
    await outbox.stop();
    await spool.close();
  });

  it('replays without a byte limit (and without a busy timer) when replayRate is 0', async () => {
    const { link, outbox, message, spool } = await setup({ replayRate: 0 });
    link.connected = false;
    for (let i = 0; i < 6; i++) await outbox.submit(message('telemetry', 400));
    link.connected = true;
    outbox.connectionChanged();
    // The fake clock never moves: a replay that waited for budget (the old 0-rate division gave
    // NaN waits, a 1 ms wake loop on a real clock) would stall here.
    await expect.poll(() => spool.isEmpty(), { ...POLL, message: 'replay of all six' }).toBe(true);
    expect(link.seqs()).toEqual([1, 2, 3, 4, 5, 6]);
    await outbox.stop();
    await spool.close();
  });

  it('spools what is still in memory when stopped', async () => {
    const { link, outbox, message, spool } = await setup();
    link.mode = 'hold';
    const first = outbox.submit(message());
    const second = outbox.submit(message());
    await expect.poll(() => link.published.length, { ...POLL, message: 'live attempt' }).toBe(1);
    await outbox.stop();
    expect(await first).toBe('spooled');
    expect(await second).toBe('spooled');
    expect(spool.stats().pending).toBe(2);
    expect(await outbox.submit(message())).toBe('dropped');
    await spool.close();
  });
});
