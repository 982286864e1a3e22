import { runOnFakeClock } from '../../simulation/fake-clock.js';
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
  const lines: string[] = [];
  const times: number[] = [];
  const maxLines = options.maxLines ?? 10;
  const untilMs = options.untilMs ?? options.nowMs + 86_400_000;
  const { code, stderr } = await runOnFakeClock(
    (io) => runTegrastats(argv, env, io),
    options.nowMs,
    untilMs,
    (text, now) => {
      for (const l of text.split('\n').filter((x) => x !== '')) {
        lines.push(l);
        times.push(now);
      }
      return lines.length >= maxLines;
    },
  );
  return { code, lines, stderr, times };
}
