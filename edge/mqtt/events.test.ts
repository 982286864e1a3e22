import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../agent/core/clock.js';
import { EventLog, type AgentEvent } from '../../agent/core/events.js';
import type { BuiltMessage, EventsPayload } from '../../exporters/mqtt/payloads.js';
import { silentLogger } from '../../test/helpers/log-sink.js';
import { EventBatcher, MAX_EVENTS_BEFORE_START, MAX_EVENTS_PER_MESSAGE } from './events.js';

function setup(open = true) {
  const clock = new FakeClock(1_700_000_000_000);
  const sent: { at: number; payload: EventsPayload }[] = [];
  const dropped: number[] = [];
  let seq = 100;
  let isOpen = open;
  let active = true;
  const batcher = new EventBatcher({
    clock,
    windowMs: 2000,
    compressAbove: Infinity,
    seq: () => (isOpen ? { next: () => ++seq } : undefined),
    submit: (messages: readonly BuiltMessage[]) => {
      for (const m of messages)
        sent.push({ at: clock.now(), payload: JSON.parse(m.json) as EventsPayload });
      return messages.map(() => Promise.resolve('sent' as const));
    },
    onDropped: (n) => dropped.push(n),
    active: () => active,
  });
  // The real event log assigns ids and timestamps, as in the agent.
  const log = new EventLog({ clock, log: silentLogger(), capacity: 5000 });
  log.onEvent(batcher.add);
  const emit = (n: number, type = 'gpu.xid') => {
    const out: AgentEvent[] = [];
    for (let i = 0; i < n; i++)
      out.push(
        log.emit({
          type,
          severity: 'warning',
          source: 'kmsg',
          message: `event ${i}`,
          labels: { gpu: String(i) },
        }),
      );
    return out;
  };
  return {
    clock,
    batcher,
    sent,
    dropped,
    emit,
    open: () => (isOpen = true),
    stop: () => (active = false),
  };
}

describe('EventBatcher', () => {
  it('sends the events of one window as one message, in emission order, with the next seq', async () => {
    const t = setup();
    t.emit(2);
    await t.clock.advance(1500);
    t.emit(1, 'container.oom_kill');
    await t.clock.advance(499);
    expect(t.sent).toHaveLength(0);
    await t.clock.advance(1);
    expect(t.sent).toHaveLength(1);
    const [m] = t.sent;
    expect(m?.at).toBe(1_700_000_002_000);
    expect(m?.payload.seq).toBe(101);
    expect(m?.payload.ts).toBe(1_700_000_001_500);
    expect(m?.payload.events.map((e) => [e.id, e.type, e.message])).toEqual([
      [1, 'gpu.xid', 'event 0'],
      [2, 'gpu.xid', 'event 1'],
      [3, 'container.oom_kill', 'event 0'],
    ]);
    expect(m?.payload.events[2]).toEqual({
      id: 3,
      ts: 1_700_000_001_500,
      type: 'container.oom_kill',
      severity: 'warning',
      source: 'kmsg',
      message: 'event 0',
      labels: { gpu: '0' },
    });
    // The next event opens a new window.
    t.emit(1);
    await t.clock.advance(2000);
    expect(t.sent.map((s) => s.payload.seq)).toEqual([101, 102]);
    expect(t.sent[1]?.payload.events.map((e) => e.id)).toEqual([4]);
  });

  it(`sends at once when ${MAX_EVENTS_PER_MESSAGE} wait, without waiting for the window`, async () => {
    const t = setup();
    t.emit(MAX_EVENTS_PER_MESSAGE + 1);
    expect(t.sent).toHaveLength(1);
    expect(t.sent[0]?.payload.events).toHaveLength(MAX_EVENTS_PER_MESSAGE);
    expect(t.batcher.waiting).toBe(1);
    await t.clock.advance(2000);
    expect(t.sent.map((s) => s.payload.events.length)).toEqual([MAX_EVENTS_PER_MESSAGE, 1]);
    expect(t.sent[1]?.payload.events[0]?.id).toBe(MAX_EVENTS_PER_MESSAGE + 1);
  });

  it(`keeps the newest ${MAX_EVENTS_BEFORE_START} while not open, counts the rest, and sends them in order once open`, async () => {
    const t = setup(false);
    t.emit(MAX_EVENTS_BEFORE_START + 5);
    await t.clock.advance(10_000);
    expect(t.sent).toHaveLength(0);
    expect(t.dropped).toEqual([1, 1, 1, 1, 1]);
    expect(t.batcher.waiting).toBe(MAX_EVENTS_BEFORE_START);
    t.open();
    t.batcher.flush();
    const ids = t.sent.flatMap((s) => s.payload.events.map((e) => e.id));
    expect(ids).toEqual(Array.from({ length: MAX_EVENTS_BEFORE_START }, (_, i) => i + 6));
    // Split by size only, numbered one after the other.
    expect(t.sent.map((s) => s.payload.seq)).toEqual(
      Array.from({ length: t.sent.length }, (_, i) => 101 + i),
    );
    expect(t.batcher.waiting).toBe(0);
  });

  it('ignores events once stopped', async () => {
    const t = setup();
    t.stop();
    t.emit(3);
    await t.clock.advance(5000);
    expect(t.batcher.waiting).toBe(0);
    expect(t.sent).toHaveLength(0);
  });
});
