import type { Logger } from 'pino';
import type { Clock, TimerHandle } from './clock.js';
import type { Facts } from './facts.js';
import { errorMessage } from './errors.js';
import type {
  CollectorOutput,
  CollectorState,
  CollectorStatus,
  Deriver,
  Sample,
  Snapshot,
  StateReader,
} from './types.js';

const EMPTY_OUTPUT: CollectorOutput = Object.freeze({ samples: Object.freeze([]) });

/** Options of the state store. */
export interface StateStoreOptions {
  readonly clock: Clock;
  readonly log: Logger;
  readonly derivers?: readonly Deriver[];
  /** Changes within this window are announced as one snapshot (default 25 ms). */
  readonly coalesceMs?: number;
}

/**
 * Latest state of every collector; publishes immutable snapshots, replaced whole on change.
 * It also logs each collector's state transitions once (not once per failing tick).
 */
export class StateStore implements StateReader {
  private readonly states = new Map<string, CollectorState>();
  private readonly listeners = new Set<(s: Snapshot) => void>();
  private readonly derivers: Deriver[];
  private snapshot: Snapshot;
  private dirty = false;
  private version = 0;
  private timer: TimerHandle | undefined;

  constructor(private readonly options: StateStoreOptions) {
    this.derivers = [...(options.derivers ?? [])];
    this.snapshot = this.build();
  }

  /** Adds a deriver run on every new snapshot. */
  addDeriver(deriver: Deriver): void {
    this.derivers.push(deriver);
    this.changed();
  }

  /** Declares a collector before its first result so it shows as `starting`. */
  register(collector: string): void {
    if (this.states.has(collector)) return;
    this.set(collector, { status: 'starting', output: EMPTY_OUTPUT });
  }

  /** Drops a collector (turned off at run time). */
  unregister(collector: string): void {
    if (this.states.delete(collector)) this.changed();
  }

  /** Records a successful result. */
  ok(collector: string, output: CollectorOutput, durationMs?: number): void {
    const now = this.options.clock.now();
    this.set(collector, {
      status: 'ok',
      output: freezeOutput(output),
      lastSuccessAt: now,
      durationMs,
    });
  }

  /** Records that the source is absent on this host. */
  noData(collector: string, reason: string, message: string): void {
    this.set(collector, { status: 'no_data', reason, message, output: EMPTY_OUTPUT });
  }

  /** Records a failure (status error or timeout); the collector's series are dropped, not kept stale. */
  fail(
    collector: string,
    reason: string,
    message: string,
    status: 'error' | 'timeout' = 'error',
    durationMs?: number,
  ): void {
    this.countError(collector, reason, false);
    this.set(collector, { status, reason, message, output: EMPTY_OUTPUT, durationMs });
  }

  /** Replaces a collector's self-metrics (kept through failures). */
  health(collector: string, samples: readonly Sample[]): void {
    const prev = this.states.get(collector);
    const base: CollectorState = prev ?? this.initial(collector);
    this.states.set(collector, Object.freeze({ ...base, health: Object.freeze([...samples]) }));
    this.changed();
  }

  /** Counts an error by reason without changing the collector's status. */
  countError(collector: string, reason: string, announce = true): void {
    const prev = this.states.get(collector);
    const errors = new Map(prev?.errors ?? []);
    errors.set(reason, (errors.get(reason) ?? 0) + 1);
    const base: CollectorState = prev ?? this.initial(collector);
    this.states.set(collector, Object.freeze({ ...base, errors }));
    if (announce) this.changed();
  }

  private initial(collector: string): CollectorState {
    return {
      collector,
      status: 'starting',
      updatedAt: this.options.clock.now(),
      output: EMPTY_OUTPUT,
      errors: new Map(),
      health: [],
    };
  }

  current(): Snapshot {
    if (this.dirty) this.flush(false);
    return this.snapshot;
  }

  onChange(listener: (s: Snapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops pending notifications; listeners stay registered until they unsubscribe. */
  close(): void {
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private set(
    collector: string,
    next: Pick<CollectorState, 'status' | 'output'> &
      Partial<Pick<CollectorState, 'reason' | 'message' | 'lastSuccessAt' | 'durationMs'>>,
  ): void {
    const prev = this.states.get(collector);
    const state: CollectorState = Object.freeze({
      collector,
      status: next.status,
      reason: next.reason,
      message: next.message,
      updatedAt: this.options.clock.now(),
      lastSuccessAt: next.lastSuccessAt ?? prev?.lastSuccessAt,
      durationMs: next.durationMs ?? prev?.durationMs,
      output: next.output,
      errors: prev?.errors ?? new Map<string, number>(),
      health: prev?.health ?? [],
    });
    this.states.set(collector, state);
    this.logTransition(prev, state);
    this.changed();
  }

  private logTransition(prev: CollectorState | undefined, next: CollectorState): void {
    const same = prev && prev.status === next.status && prev.reason === next.reason;
    if (same) return;
    const log = this.options.log.child({ collector: next.collector });
    const fields = { status: next.status, reason: next.reason };
    switch (next.status) {
      case 'ok':
        if (prev && prev.status !== 'starting') log.info(fields, 'collector recovered');
        else log.debug(fields, 'collector ok');
        break;
      case 'no_data':
        log.info(fields, next.message ?? 'nothing to collect on this host');
        break;
      case 'error':
      case 'timeout':
        log.warn({ ...fields, err: next.message }, next.message ?? 'collector failed');
        break;
      case 'starting':
        break;
    }
  }

  private changed(): void {
    this.dirty = true;
    if (this.timer) return;
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined;
      this.flush(true);
    }, this.options.coalesceMs ?? 25);
    this.timer.unref?.();
  }

  private flush(notify: boolean): void {
    if (this.dirty) {
      this.dirty = false;
      this.snapshot = this.build();
    }
    if (!notify) return;
    for (const listener of this.listeners) {
      try {
        listener(this.snapshot);
      } catch (err) {
        this.options.log.error({ err: errorMessage(err) }, 'snapshot listener failed');
      }
    }
  }

  private build(): Snapshot {
    const base: Snapshot = {
      version: ++this.version,
      takenAt: this.options.clock.now(),
      collectors: new Map(this.states),
      derived: [],
    };
    const derived: Sample[] = [];
    for (const deriver of this.derivers) {
      try {
        derived.push(...deriver.derive(base));
      } catch (err) {
        this.options.log.error({ deriver: deriver.name, err: errorMessage(err) }, 'deriver failed');
      }
    }
    return Object.freeze({ ...base, derived: Object.freeze(derived) });
  }
}

function freezeOutput(output: CollectorOutput): CollectorOutput {
  return Object.freeze({ samples: Object.freeze([...output.samples]), facts: output.facts });
}

/** True when a status counts as up for `gpulse_collector_up`. */
export function isUp(status: CollectorStatus): boolean {
  return status === 'ok';
}

/** Merged facts of one kind across collectors (e.g. every collector's `gpus`). */
export function collectFacts<K extends keyof Facts>(snapshot: Snapshot, kind: K): FactItem<K>[] {
  const out: FactItem<K>[] = [];
  for (const state of snapshot.collectors.values()) {
    const facts = state.output.facts?.[kind] as readonly FactItem<K>[] | undefined;
    if (facts) out.push(...facts);
  }
  return out;
}

/** Element type of one fact kind. */
export type FactItem<K extends keyof Facts> = Facts[K] extends readonly (infer T)[] ? T : never;
