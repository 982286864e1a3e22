import { runTegrastats, type SimEnv } from './run.js';

/** Result of an in-process simulated tegrastats run. */
export interface SimulatedTegrastats {
  readonly code: number;
  /** Lines printed (without newlines). */
  readonly lines: readonly string[];
  readonly stderr: string;
  /** Fake clock time of each line. */
  readonly times: readonly number[];
}

/**
 * Runs the simulated tegrastats in-process on a fake clock (`sleep` advances time at once) until
 * `maxLines` lines or `untilMs`.
 */
export async function runSimulatedTegrastats(
  argv: readonly string[],
  env: SimEnv,
  options: { readonly nowMs: number; readonly maxLines?: number; readonly untilMs?: number },
): Promise<SimulatedTegrastats> {
  let now = options.nowMs;
  const lines: string[] = [];
  const times: number[] = [];
  const errors: string[] = [];
  const controller = new AbortController();
  const maxLines = options.maxLines ?? 10;
  const untilMs = options.untilMs ?? options.nowMs + 86_400_000;
  const code = await runTegrastats(argv, env, {
    write: (text) => {
      for (const l of text.split('\n').filter((x) => x !== '')) {
        lines.push(l);
        times.push(now);
      }
      if (lines.length >= maxLines) controller.abort();
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
  return { code, lines, stderr: errors.join(''), times };
}
