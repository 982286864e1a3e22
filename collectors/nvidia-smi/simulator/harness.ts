import { runOnFakeClock } from '../../simulation/fake-clock.js';
import { runNvidiaSmi, type SimEnv } from './run.js';

/** Result of an in-process simulated nvidia-smi run. */
export interface SimulatedRun {
  readonly code: number;
  /** stdout, one entry per block written (a loop writes one per interval). */
  readonly blocks: readonly string[];
  readonly stdout: string;
  readonly stderr: string;
  /** The fake clock when the run ended. */
  readonly endMs: number;
}

/** Options of `runSimulated`. */
export interface SimulatedRunOptions {
  /** Fake wall clock at the start, epoch ms. */
  readonly nowMs: number;
  /** Stop a loop (or a hang) after this many stdout blocks; default 1000. */
  readonly maxBlocks?: number;
  /** Stop once the fake clock passes this (ends hangs that print nothing). */
  readonly untilMs?: number;
}

/**
 * Runs the simulated nvidia-smi in-process on a fake clock: `sleep` advances time at once, so
 * loops and hangs run instantly; loops stop after `maxBlocks` blocks or at `untilMs`.
 */
export async function runSimulated(
  argv: readonly string[],
  env: SimEnv,
  options: SimulatedRunOptions,
): Promise<SimulatedRun> {
  const blocks: string[] = [];
  const maxBlocks = options.maxBlocks ?? 1000;
  // A hang without an end would spin the fake clock forever: stop a week in by default.
  const untilMs = options.untilMs ?? options.nowMs + 7 * 86_400_000;
  const { code, stderr, endMs } = await runOnFakeClock(
    (io) => runNvidiaSmi(argv, env, io),
    options.nowMs,
    untilMs,
    (text) => {
      blocks.push(text);
      return blocks.length >= maxBlocks;
    },
  );
  return { code, blocks, stdout: blocks.join(''), stderr, endMs };
}
