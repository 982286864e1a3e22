/**
 * The channel a component that is not a collector (the MQTT publisher, drift, the model updater,
 * the HTTP server) reports its status and self-metrics through. It is bound to the component's
 * name and carries series only: no facts, and nothing of any other part, so what collectors
 * produce stays the only input of derivers. The series appear under `collector="<name>"`.
 */
import type { StateStore } from './state-store.js';
import type { Sample } from './types.js';

/** A component's own status and self-metrics, as `gpulse_collector_*{collector="<name>"}` shows them. */
export interface SelfMetricsChannel {
  /** Shows the component as starting until its first report. */
  register(): void;
  /** It works; these are its series now. */
  ok(samples: readonly Sample[], durationMs?: number): void;
  /** It failed (status error); its series are dropped until the next `ok`. */
  fail(reason: string, message: string): void;
  /** Counts an error without changing its status. */
  countError(reason: string): void;
  /** Series that stay visible while it fails (restarts, drops). */
  health(samples: readonly Sample[]): void;
}

/** The channel of the component `name`, written into the agent's state store. */
export function selfMetricsChannel(store: StateStore, name: string): SelfMetricsChannel {
  return {
    register: () => store.register(name),
    ok: (samples, durationMs) => store.ok(name, { samples }, durationMs),
    fail: (reason, message) => store.fail(name, reason, message),
    countError: (reason) => store.countError(name, reason),
    health: (samples) => store.health(name, samples),
  };
}
