import { describe, expect, it } from 'vitest';
import { FakeClock } from './clock.js';
import { QuietTimer } from './quiet-timer.js';

describe('QuietTimer', () => {
  it('fires once, quietMs after the last poke of a burst, with one timer at a time', async () => {
    const clock = new FakeClock();
    const fired: number[] = [];
    const start = clock.now();
    const quiet = new QuietTimer(clock, 40, () => fired.push(clock.now() - start));
    for (let i = 0; i < 10; i++) {
      quiet.poke();
      expect(clock.pending()).toBe(1);
      await clock.advance(15);
    }
    // Last poke at 135 ms: quiet from then until 175 ms.
    await clock.advance(100);
    expect(fired).toEqual([175]);
    expect(clock.pending()).toBe(0);
    quiet.poke();
    await clock.advance(39);
    expect(fired).toEqual([175]);
    await clock.advance(1);
    expect(fired).toEqual([175, 290]);
  });

  it('cancel drops the pending call; a later poke starts afresh', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const quiet = new QuietTimer(clock, 40, () => calls++);
    quiet.poke();
    await clock.advance(20);
    quiet.cancel();
    await clock.advance(100);
    expect(calls).toBe(0);
    expect(clock.pending()).toBe(0);
    quiet.poke();
    await clock.advance(40);
    expect(calls).toBe(1);
  });
});
