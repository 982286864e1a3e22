/**
 * Energy the simulated GPUs have used since the simulation started: their power draw integrated
 * over a fixed grid, so the counter grows exactly as fast as the power nvidia-smi shows and two
 * simulator processes started apart print the same total.
 */
import { worldAt, type WorldConfig } from './world.js';

/** Grid of the integral: fine enough to follow a training step's dip, cheap over a day. */
const STEP_MS = 1000;

interface Progress {
  /** Grid point the totals reach. */
  readonly atMs: number;
  readonly joules: readonly number[];
}

// A long-running dmon stream integrates only the seconds since its last row.
const progressByWorld = new WeakMap<WorldConfig, Progress>();

/** Joules each GPU of `config` has drawn from its start to `nowMs` (0 before the start). */
export function energySinceStartJoules(config: WorldConfig, nowMs: number): number[] {
  let progress = progressByWorld.get(config);
  if (progress === undefined || progress.atMs > nowMs) {
    progress = { atMs: config.startMs, joules: config.gpus.map(() => 0) };
  }
  const joules = [...progress.joules];
  let atMs = progress.atMs;
  for (; atMs + STEP_MS <= nowMs; atMs += STEP_MS) addPower(config, atMs, STEP_MS, joules);
  progressByWorld.set(config, { atMs, joules: [...joules] });
  if (nowMs > atMs) addPower(config, atMs, nowMs - atMs, joules);
  return joules;
}

/** Adds what each GPU draws at `atMs` over `spanMs`; a GPU the driver cannot see adds nothing. */
function addPower(config: WorldConfig, atMs: number, spanMs: number, joules: number[]): void {
  for (const gpu of worldAt(config, atMs).gpus) {
    const i = config.gpus.indexOf(gpu.spec);
    if (i >= 0) joules[i] = (joules[i] ?? 0) + (gpu.powerDrawW * spanMs) / 1000;
  }
}
