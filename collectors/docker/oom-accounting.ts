import type { OomSource } from './facts.js';

/** Evidence of OOM kills in one run (start to exit) of one container. */
interface Run {
  readonly key: string;
  /** Bursts of `oom` events: the engine can repeat the event for one kill within milliseconds. */
  eventBursts: number;
  lastEventAt: number;
  /** Highest `oom_kill` counter read from this run's cgroup (it starts at 0 with each run). */
  counter: number;
  oomKilled: boolean;
  exit137AtLimit: boolean;
  counted: number;
  readonly sources: Set<OomSource>;
}

/** What one observation changed. */
export interface OomDelta {
  /** Kills counted by this observation that no earlier one had counted (0 when already known). */
  readonly added: number;
  /** Every way this run's kills were seen so far. */
  readonly sources: readonly OomSource[];
  /** Kills counted for this run in total. */
  readonly runKills: number;
}

/**
 * Counts OOM kills once although the engine reports them several ways. For each run of a
 * container the count is the largest any single source gives: bursts of `oom` events, the
 * cgroup's `oom_kill` counter, `State.OOMKilled` at exit (one kill at least) and exit code 137
 * with memory at the limit (Podman, which sets no OOMKilled). Sources are never added together.
 */
export class OomAccounting {
  private readonly runs = new Map<string, Map<string, Run>>();
  private readonly totals = new Map<string, number>();

  constructor(private readonly eventBurstMs = 2000) {}

  /** An `oom` event at engine time `at`. */
  event(containerId: string, runKey: string, at: number): OomDelta {
    const run = this.run(containerId, runKey);
    if (run.eventBursts === 0 || at - run.lastEventAt > this.eventBurstMs) run.eventBursts++;
    run.lastEventAt = Math.max(run.lastEventAt, at);
    run.sources.add('oom_event');
    return this.recount(containerId, run);
  }

  /** The cgroup `oom_kill` counter as read now. */
  counter(containerId: string, runKey: string, value: number): OomDelta {
    const run = this.run(containerId, runKey);
    if (value > 0) run.sources.add('cgroup_counter');
    run.counter = Math.max(run.counter, value);
    return this.recount(containerId, run);
  }

  /** The run ended with `State.OOMKilled: true`. */
  oomKilled(containerId: string, runKey: string): OomDelta {
    const run = this.run(containerId, runKey);
    run.oomKilled = true;
    run.sources.add('oom_killed');
    return this.recount(containerId, run);
  }

  /** The run ended with exit code 137 (SIGKILL) while its memory was at the limit. */
  exit137AtLimit(containerId: string, runKey: string): OomDelta {
    const run = this.run(containerId, runKey);
    run.exit137AtLimit = true;
    run.sources.add('exit_137_at_limit');
    return this.recount(containerId, run);
  }

  /** Kills counted for a container over every run seen. */
  total(containerId: string): number {
    return this.totals.get(containerId) ?? 0;
  }

  /** Drops a removed container. */
  forget(containerId: string): void {
    this.runs.delete(containerId);
    this.totals.delete(containerId);
  }

  private run(containerId: string, key: string): Run {
    let runs = this.runs.get(containerId);
    if (!runs) {
      runs = new Map();
      this.runs.set(containerId, runs);
    }
    let run = runs.get(key);
    if (!run) {
      run = {
        key,
        eventBursts: 0,
        lastEventAt: 0,
        counter: 0,
        oomKilled: false,
        exit137AtLimit: false,
        counted: 0,
        sources: new Set(),
      };
      runs.set(key, run);
      // A container restarted in a loop must not grow this map without end.
      if (runs.size > 64) runs.delete(runs.keys().next().value ?? '');
    }
    return run;
  }

  private recount(containerId: string, run: Run): OomDelta {
    const now = Math.max(
      run.eventBursts,
      run.counter,
      run.oomKilled ? 1 : 0,
      run.exit137AtLimit ? 1 : 0,
    );
    const added = Math.max(0, now - run.counted);
    run.counted = Math.max(run.counted, now);
    if (added > 0) this.totals.set(containerId, this.total(containerId) + added);
    return { added, sources: [...run.sources], runKills: run.counted };
  }
}

/**
 * Whether an exit with code 137 looks like the kernel's OOM killer rather than `docker kill` or a
 * stop timeout: a memory limit is set and the last reading was within 10% of it (or the peak
 * usage was at it).
 */
export function atMemoryLimit(
  limitBytes: number | undefined,
  usageBytes: number | undefined,
  peakBytes?: number,
): boolean {
  if (limitBytes === undefined || limitBytes <= 0) return false;
  if (peakBytes !== undefined && peakBytes >= limitBytes * 0.98) return true;
  return usageBytes !== undefined && usageBytes >= limitBytes * 0.9;
}
