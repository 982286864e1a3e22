import { describe, expect, it } from 'vitest';
import { captureLogger } from '../../test/helpers/log-sink.js';
import { FakeClock } from './clock.js';
import { gauge } from './metric.js';
import { collectFacts, isUp, StateStore } from './state-store.js';
import type { Snapshot } from './types.js';

const g = gauge('test_value', 'a value', ['k']);

describe('StateStore', () => {
  it('publishes frozen snapshots whole and coalesces bursts into one notification', async () => {
    const clock = new FakeClock();
    const { log } = captureLogger();
    const store = new StateStore({ clock, log, coalesceMs: 25 });
    const seen: Snapshot[] = [];
    store.onChange((s) => seen.push(s));
    store.register('a');
    store.ok('a', { samples: [{ desc: g, labels: { k: '1' }, value: 1 }] }, 12);
    store.ok('a', { samples: [{ desc: g, labels: { k: '1' }, value: 2 }] }, 13);
    expect(seen).toHaveLength(0);
    await clock.advance(25);
    expect(seen).toHaveLength(1);
    const snap = seen[0]!;
    expect(Object.isFrozen(snap)).toBe(true);
    expect(snap.collectors.get('a')?.output.samples[0]?.value).toBe(2);
    expect(snap.collectors.get('a')?.durationMs).toBe(13);
    expect(snap.collectors.get('a')?.lastSuccessAt).toBe(clock.now() - 25);
    // The old snapshot is untouched by later changes.
    store.fail('a', 'boom', 'it broke');
    await clock.advance(25);
    expect(snap.collectors.get('a')?.status).toBe('ok');
    const failed = store.current().collectors.get('a')!;
    expect(failed.status).toBe('error');
    expect(failed.output.samples).toEqual([]);
    expect(failed.errors.get('boom')).toBe(1);
    expect(failed.lastSuccessAt).toBe(snap.collectors.get('a')?.lastSuccessAt);
  });

  it('an unchanged output (the same object again) reaches a snapshot with the next change, or within quietMs', async () => {
    const clock = new FakeClock();
    const store = new StateStore({
      clock,
      log: captureLogger().log,
      coalesceMs: 25,
      quietMs: 5000,
    });
    const seen: Snapshot[] = [];
    store.onChange((s) => seen.push(s));
    const output = { samples: [{ desc: g, labels: { k: 'q' }, value: 7 }] };
    store.ok('quiet', output, 3);
    await clock.advance(25);
    expect(seen).toHaveLength(1);
    const t0 = clock.now();
    // Timestamps only: no snapshot of its own, and a reader keeps the last one (no rebuild).
    await clock.advance(975);
    store.ok('quiet', output, 4);
    await clock.advance(25);
    expect(seen).toHaveLength(1);
    expect(store.current()).toBe(seen[0]);
    // Another collector's change carries the new timestamp along.
    store.ok('other', { samples: [] });
    await clock.advance(25);
    expect(seen).toHaveLength(2);
    expect(seen[1]!.collectors.get('quiet')).toMatchObject({
      lastSuccessAt: t0 + 975,
      durationMs: 4,
    });
    expect(seen[1]!.collectors.get('quiet')!.output).toBe(seen[0]!.collectors.get('quiet')!.output);
    // With nothing else changing, it is announced within quietMs.
    store.ok('quiet', output, 5);
    await clock.advance(4999);
    expect(seen).toHaveLength(2);
    await clock.advance(26);
    expect(seen).toHaveLength(3);
    expect(seen[2]!.collectors.get('quiet')?.durationMs).toBe(5);
    // A new object is a change even with equal contents; after a failure, so is the same object.
    store.ok('quiet', { samples: [...output.samples] });
    await clock.advance(25);
    expect(seen).toHaveLength(4);
    const again = { samples: [] };
    store.ok('quiet', again);
    store.fail('quiet', 'boom', 'broke');
    await clock.advance(25);
    expect(seen).toHaveLength(5);
    store.ok('quiet', again);
    await clock.advance(25);
    expect(seen).toHaveLength(6);
    expect(seen[5]!.collectors.get('quiet')!.status).toBe('ok');
  });

  it('current() is up to date even before the notification fires', () => {
    const clock = new FakeClock();
    const store = new StateStore({ clock, log: captureLogger().log });
    store.noData('gpu', 'binary_not_found', 'no GPU');
    const state = store.current().collectors.get('gpu');
    expect(state).toMatchObject({
      status: 'no_data',
      reason: 'binary_not_found',
      message: 'no GPU',
    });
  });

  it('logs a state change once, not once per failing tick', () => {
    const clock = new FakeClock();
    const { log, records } = captureLogger();
    const store = new StateStore({ clock, log });
    store.register('x');
    for (let i = 0; i < 5; i++) store.fail('x', 'exit_9', 'driver gone');
    store.ok('x', { samples: [] });
    store.ok('x', { samples: [] });
    const msgs = records.filter((r) => r.collector === 'x').map((r) => [r.level, r.msg]);
    expect(msgs).toEqual([
      [40, 'driver gone'],
      [30, 'collector recovered'],
    ]);
    expect(store.current().collectors.get('x')?.errors.get('exit_9')).toBe(5);
  });

  it('runs derivers on each new snapshot and survives a throwing one', async () => {
    const clock = new FakeClock();
    const { log, records } = captureLogger();
    let runs = 0;
    const store = new StateStore({
      clock,
      log,
      derivers: [
        {
          name: 'count',
          derive: (s) => {
            runs++;
            return {
              samples: [{ desc: g, labels: { k: String(s.collectors.size) }, value: runs }],
            };
          },
        },
        {
          name: 'broken',
          derive: () => {
            throw new Error('nope');
          },
        },
      ],
    });
    store.ok('a', { samples: [] });
    store.ok('b', { samples: [] });
    await clock.advance(30);
    const s = store.current();
    expect(s.derived).toEqual([{ desc: g, labels: { k: '2' }, value: runs }]);
    expect(records.some((r) => r.deriver === 'broken' && r.msg === 'deriver failed')).toBe(true);
    const before = runs;
    store.current();
    expect(runs).toBe(before);
  });

  it('keeps health samples through failures and merges facts across collectors', () => {
    const clock = new FakeClock();
    const store = new StateStore({ clock, log: captureLogger().log });
    store.health('gpu', [{ desc: g, labels: { k: 'restarts' }, value: 3 }]);
    store.fail('gpu', 'hang', 'stuck');
    expect(store.current().collectors.get('gpu')?.health[0]?.value).toBe(3);
    store.ok('one', {
      samples: [],
      facts: { gpuProcesses: [{ pid: 1, gpuUuid: 'GPU-a', processName: 'a' }] },
    });
    store.ok('two', {
      samples: [],
      facts: { gpuProcesses: [{ pid: 2, gpuUuid: 'GPU-b', processName: 'b' }] },
    });
    expect(collectFacts(store.current(), 'gpuProcesses').map((p) => p.pid)).toEqual([1, 2]);
    store.unregister('two');
    expect(collectFacts(store.current(), 'gpuProcesses').map((p) => p.pid)).toEqual([1]);
  });

  it('a throwing listener does not stop the others', async () => {
    const clock = new FakeClock();
    const store = new StateStore({ clock, log: captureLogger().log });
    let got = 0;
    store.onChange(() => {
      throw new Error('bad listener');
    });
    const off = store.onChange(() => got++);
    store.ok('a', { samples: [] });
    await clock.advance(30);
    expect(got).toBe(1);
    off();
    store.ok('a', { samples: [] });
    await clock.advance(30);
    expect(got).toBe(1);
    store.close();
  });

  it('isUp is true only for ok', () => {
    expect(['ok', 'no_data', 'error', 'timeout', 'starting'].map((s) => isUp(s as never))).toEqual([
      true,
      false,
      false,
      false,
      false,
    ]);
  });

  it('hands derived events over after the announcement, never while a reader builds', async () => {
    const clock = new FakeClock();
    const { log, records } = captureLogger();
    let seen = 0;
    const store = new StateStore({
      clock,
      log,
      derivers: [
        {
          name: 'counter',
          derive: (s) => {
            const total = s.collectors.size;
            const events =
              total > seen
                ? [
                    {
                      type: 't.grew',
                      severity: 'info' as const,
                      source: 'test',
                      message: `now ${total}`,
                      labels: {},
                    },
                  ]
                : [];
            seen = total;
            return { samples: [], events };
          },
        },
      ],
    });
    const got: string[] = [];
    store.onEvent(() => {
      throw new Error('broken sink');
    });
    store.onEvent((e) => got.push(e.message));
    store.ok('a', { samples: [] });
    // A scrape builds the snapshot (the deriver runs) but nothing leaves the store.
    store.current();
    store.ok('b', { samples: [] });
    store.current();
    expect(got).toEqual([]);
    await clock.advance(30);
    // Both builds' events, in order, once; a throwing sink is logged and the next one still told.
    expect(got).toEqual(['now 1', 'now 2']);
    expect(records.filter((r) => r.msg === 'derived event could not be recorded')).toHaveLength(2);
    store.ok('c', { samples: [] });
    store.current();
    store.close();
    expect(got).toEqual(['now 1', 'now 2', 'now 3']);
  });
});
