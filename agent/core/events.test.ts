import { describe, expect, it } from 'vitest';
import { captureLogger } from '../../test/helpers/log-sink.js';
import { FakeClock } from './clock.js';
import { EventLog, type AgentEvent } from './events.js';

describe('EventLog', () => {
  it('keeps the newest events up to its capacity, newest first, and logs each once', async () => {
    const clock = new FakeClock(1000);
    const { log, records } = captureLogger();
    const events = new EventLog({ clock, log, capacity: 3 });
    for (let i = 0; i < 5; i++) {
      events.emit({
        type: i % 2 ? 'container.oom_kill' : 'gpu.xid',
        severity: i === 4 ? 'critical' : 'info',
        source: 'test',
        message: `event ${i}`,
        labels: { n: String(i) },
      });
      await clock.advance(10);
    }
    const all = events.list();
    expect(all.map((e) => e.message)).toEqual(['event 4', 'event 3', 'event 2']);
    expect(all.map((e) => e.id)).toEqual([5, 4, 3]);
    expect(all[0]?.ts).toBe(1040);
    expect(events.list({ since: 1030 }).map((e) => e.id)).toEqual([5, 4]);
    expect(events.list({ type: 'container' }).map((e) => e.id)).toEqual([4]);
    expect(events.list({ limit: 1 }).map((e) => e.id)).toEqual([5]);
    expect(records.map((r) => [r.level, r.msg, r.event])).toEqual([
      [30, 'event 0', 'gpu.xid'],
      [30, 'event 1', 'container.oom_kill'],
      [30, 'event 2', 'gpu.xid'],
      [30, 'event 3', 'container.oom_kill'],
      [40, 'event 4', 'gpu.xid'],
    ]);
    expect(Object.isFrozen(all[0])).toBe(true);
  });

  it('notifies listeners and survives a throwing one', () => {
    const { log, records } = captureLogger();
    const events = new EventLog({ clock: new FakeClock(), log });
    const got: AgentEvent[] = [];
    events.onEvent(() => {
      throw new Error('listener broke');
    });
    const off = events.onEvent((e) => got.push(e));
    events.emit({ type: 'a', severity: 'warning', source: 's', message: 'm', labels: {}, ts: 42 });
    off();
    events.emit({ type: 'b', severity: 'info', source: 's', message: 'm', labels: {} });
    expect(got.map((e) => [e.type, e.ts])).toEqual([['a', 42]]);
    expect(records.some((r) => r.msg === 'event listener failed')).toBe(true);
  });
});
