import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../agent/core/clock.js';
import { StartRetry } from './start-retry.js';

/** A start that fails `failing` times, recording when each attempt and cleanup ran. */
function setup(failing: number, random = () => 1) {
  const clock = new FakeClock(0);
  const attempts: number[] = [];
  const cleanups: number[] = [];
  const failures: string[] = [];
  const started: number[] = [];
  const retry = new StartRetry({
    clock,
    attempt: () => {
      attempts.push(clock.now());
      return attempts.length <= failing
        ? Promise.reject(new Error(`disk full ${attempts.length}`))
        : Promise.resolve();
    },
    cleanup: () => {
      cleanups.push(clock.now());
      return Promise.reject(new Error('cleanup failures are ignored'));
    },
    onFailure: (err) => failures.push((err as Error).message),
    onStarted: (n) => started.push(n),
    minMs: 1000,
    maxMs: 8000,
    floorMs: 250,
    random,
  });
  return { clock, retry, attempts, cleanups, failures, started };
}

describe('StartRetry', () => {
  it('retries a failing start with capped exponential backoff until it starts', async () => {
    const t = setup(5);
    await t.retry.start();
    expect(t.failures).toEqual(['disk full 1']);
    await t.clock.advance(60_000);
    // Waits of 1, 2, 4, 8, 8 s (random 1: the top of each full-jitter range).
    expect(t.attempts).toEqual([0, 1000, 3000, 7000, 15_000, 23_000]);
    expect(t.cleanups).toEqual([0, 1000, 3000, 7000, 15_000]);
    expect(t.failures).toHaveLength(5);
    expect(t.started).toEqual([5]);
    expect(t.clock.pending()).toBe(0);
  });

  it('waits at least the floor when the jitter draws 0', async () => {
    const t = setup(2, () => 0);
    await t.retry.start();
    await t.clock.advance(1000);
    expect(t.attempts).toEqual([0, 250, 500]);
    expect(t.started).toEqual([2]);
  });

  it('makes no attempt after stop, and stop waits for the attempt in progress', async () => {
    const t = setup(100);
    await t.retry.start();
    await t.clock.advance(1000);
    expect(t.attempts).toEqual([0, 1000]);
    await t.retry.stop();
    await t.clock.advance(60_000);
    expect(t.attempts).toEqual([0, 1000]);

    let release: () => void = () => undefined;
    const clock = new FakeClock(0);
    const order: string[] = [];
    const slow = new StartRetry({
      clock,
      attempt: () =>
        new Promise<void>((_, reject) => {
          release = () => reject(new Error('lock held'));
        }),
      cleanup: () => {
        order.push('cleanup');
        return Promise.resolve();
      },
      onFailure: () => order.push('failure reported'),
      onStarted: () => order.push('started'),
      minMs: 1000,
      maxMs: 8000,
      floorMs: 250,
    });
    void slow.start();
    const stopped = slow.stop().then(() => order.push('stopped'));
    await clock.advance(0);
    expect(order).toEqual([]);
    release();
    await stopped;
    // The half-open attempt is released before stop resolves; a stopped start reports nothing.
    expect(order).toEqual(['cleanup', 'stopped']);
    expect(clock.pending()).toBe(0);
  });
});
