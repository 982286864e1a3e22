import type { CollectorOutput, CollectorState, Snapshot } from '../../agent/core/types.js';

/** A collector's state as the store keeps it after one run at `at` (status ok unless told). */
export function collectorState(
  collector: string,
  at: number,
  output: CollectorOutput,
  status: CollectorState['status'] = 'ok',
): CollectorState {
  return {
    collector,
    status,
    updatedAt: at,
    lastSuccessAt: at,
    output,
    errors: new Map(),
    health: [],
  };
}

// Versions only have to grow, as the store's do; one counter per test file (vitest isolates files).
let version = 0;

/** A snapshot of these collector states, taken at the latest of their update times. */
export function snapshotOf(...states: CollectorState[]): Snapshot {
  return {
    version: ++version,
    takenAt: Math.max(...states.map((s) => s.updatedAt)),
    collectors: new Map(states.map((s) => [s.collector, s])),
    derived: [],
  };
}
