import type { SimulatedToolIo } from './tool-process.js';

/** How an in-process run on a fake clock ended. */
export interface FakeClockRun {
  readonly code: number;
  readonly stderr: string;
  /** The fake clock when the run ended. */
  readonly endMs: number;
}

/**
 * Runs a simulated tool in-process on a fake clock: `sleep` advances time at once, so loops and
 * hangs run instantly. `write` gets each stdout block with the clock and answers whether the run
 * has printed enough; the run also stops once the clock reaches `untilMs`.
 */
export async function runOnFakeClock(
  run: (io: SimulatedToolIo) => Promise<number>,
  nowMs: number,
  untilMs: number,
  write: (text: string, now: number) => boolean,
): Promise<FakeClockRun> {
  let now = nowMs;
  const errors: string[] = [];
  const controller = new AbortController();
  const code = await run({
    write: (text) => {
      if (write(text, now)) controller.abort();
    },
    writeError: (text) => {
      errors.push(text);
    },
    now: () => now,
    sleep: (ms) => {
      now += ms;
      if (now >= untilMs) controller.abort();
      return Promise.resolve();
    },
    signal: controller.signal,
  });
  return { code, stderr: errors.join(''), endMs: now };
}
