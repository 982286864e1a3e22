import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../agent/core/clock.js';
import { every } from './periodic.js';

describe('every', () => {
  it('runs every interval from the start, keeps going after a throwing run, and stops on cancel', async () => {
    const clock = new FakeClock(0);
    const runs: number[] = [];
    const errors: unknown[] = [];
    const task = every(
      clock,
      1000,
      () => {
        runs.push(clock.now());
        if (runs.length === 2) throw new Error('boom');
      },
      { active: () => true, onError: (err) => errors.push(err) },
    );
    await clock.advance(999);
    expect(runs).toEqual([]);
    await clock.advance(3001);
    expect(runs).toEqual([1000, 2000, 3000, 4000]);
    expect(errors.map((e) => (e as Error).message)).toEqual(['boom']);
    task.cancel();
    expect(clock.pending()).toBe(0);
    await clock.advance(5000);
    expect(runs).toHaveLength(4);
  });

  it('neither runs nor schedules another run once inactive', async () => {
    const clock = new FakeClock(0);
    let active = true;
    let runs = 0;
    every(clock, 500, () => runs++, { active: () => active, onError: () => undefined });
    await clock.advance(1000);
    expect(runs).toBe(2);
    active = false;
    await clock.advance(500);
    expect(runs).toBe(2);
    expect(clock.pending()).toBe(0);
  });
});
