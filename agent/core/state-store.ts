import type { Logger } from 'pino';
import type { Clock, TimerHandle } from './clock.js';
import type { NewEvent } from './events.js';
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
  /**
   * Longest wait before a success that changed nothing (timestamps only) reaches a snapshot when
   * no real change carries it sooner (default 5 s).
   */
  readonly quietMs?: number;
}

/**
 * Latest state of every collector; publishes immutable snapshots, replaced whole on change.
 * It also logs each collector's state transitions once (not once per failing tick).
 */
export class StateStore implements StateReader {
  private readonly states = new Map<string, CollectorState>();
  /** Each collector's last successful output as it handed it over (before freezing a copy). */
  private readonly rawOutputs = new Map<string, CollectorOutput>();
  private readonly listeners = new Set<(s: Snapshot) => void>();
  private readonly eventListeners = new Set<(e: NewEvent) => void>();
  private readonly derivers: Deriver[];
  /** Events derived from snapshots already built but not yet announced, oldest first. */
  private undelivered: NewEvent[] = [];
  private snapshot: Snapshot;
  private dirty = false;
  /** A quiet success (timestamps only) is not in the snapshot yet. */
  private stale = false;
  private staleTimer: TimerHandle | undefined;
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
    this.rawOutputs.delete(collector);
    if (this.states.delete(collector)) this.changed();
  }

  /**
   * Records a successful result. A collector that hands back the very output object of its
   * previous success (nothing changed, e.g. a quiet kernel log) updates its timestamps without a
   * snapshot of its own: the next change carries them, or a snapshot within `quietMs`. (A build
   * runs every deriver and a scrape re-renders after it, for a second timestamp that moved.)
   */
  ok(collector: string, output: CollectorOutput, durationMs?: number): void {
    const now = this.options.clock.now();
    const prev = this.states.get(collector);
    const unchanged = prev?.status === 'ok' && this.rawOutputs.get(collector) === output;
    this.rawOutputs.set(collector, output);
    this.set(
      collector,
      {
        status: 'ok',
        output: unchanged ? prev.output : freezeOutput(output),
        lastSuccessAt: now,
        durationMs,
      },
      !unchanged,
    );
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

  /**
   * The latest state. A reader may build a pending snapshot, but reading has no effect outside
   * the store: events its derivers return wait for the announcement (the coalescing timer).
   */
  current(): Snapshot {
    if (this.dirty) this.flush(false);
    return this.snapshot;
  }

  onChange(listener: (s: Snapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Subscribes to the events derivers return, told after each announced snapshot. */
  onEvent(listener: (event: NewEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Stops pending notifications and hands over derived events still waiting. */
  close(): void {
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    if (this.staleTimer) this.options.clock.clearTimeout(this.staleTimer);
    this.timer = undefined;
    this.staleTimer = undefined;
    this.deliverEvents();
  }

  private set(
    collector: string,
    next: Pick<CollectorState, 'status' | 'output'> &
      Partial<Pick<CollectorState, 'reason' | 'message' | 'lastSuccessAt' | 'durationMs'>>,
    announce = true,
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
    if (announce) this.changed();
    else this.quietlyChanged();
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

  private quietlyChanged(): void {
    this.stale = true;
    if (this.staleTimer) return;
    this.staleTimer = this.options.clock.setTimeout(() => {
      this.staleTimer = undefined;
      if (this.stale) this.changed();
    }, this.options.quietMs ?? 5000);
    this.staleTimer.unref?.();
  }

  private flush(notify: boolean): void {
    if (this.dirty) {
      this.dirty = false;
      this.stale = false;
      if (this.staleTimer) this.options.clock.clearTimeout(this.staleTimer);
      this.staleTimer = undefined;
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
    this.deliverEvents();
  }

  private deliverEvents(): void {
    const events = this.undelivered;
    if (events.length === 0) return;
    this.undelivered = [];
    for (const event of events) {
      for (const listener of this.eventListeners) {
        try {
          listener(event);
        } catch (err) {
          this.options.log.error(
            { event: event.type, err: errorMessage(err) },
            'derived event could not be recorded',
          );
        }
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
        const { samples, events } = deriver.derive(base);
        derived.push(...samples);
        if (events) this.undelivered.push(...events);
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
