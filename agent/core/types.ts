import type { NewEvent } from './events.js';
import type { Logger } from 'pino';
import type { Facts } from './facts.js';

/** Prometheus metric type of a family. */
export type MetricType = 'gauge' | 'counter';

/** One metric family, declared once per module (name in base units, with its labels). */
export interface MetricDesc {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly labelNames: readonly string[];
}

/** Label values of one series. */
export type Labels = Readonly<Record<string, string>>;

/** One value of one series. */
export interface Sample {
  readonly desc: MetricDesc;
  readonly labels: Labels;
  readonly value: number;
}

/** What a collector produced in one run: series for the exposition and typed facts for enrichment. */
export interface CollectorOutput {
  readonly samples: readonly Sample[];
  readonly facts?: Partial<Facts>;
}

/** Outcome class of a collector's latest run. */
export type CollectorStatus = 'ok' | 'no_data' | 'error' | 'timeout' | 'starting';

/** Everything a collector run needs from the outside world, injected. */
export interface CollectContext {
  /** Aborted on timeout or shutdown. */
  readonly signal: AbortSignal;
  readonly log: Logger;
  readonly now: () => number;
}

/** A collector polled on an interval by the scheduler. */
export interface PolledCollector {
  readonly kind: 'polled';
  readonly name: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Gathers once; throws NoDataError when there is nothing to report on this host. */
  collect(ctx: CollectContext): Promise<CollectorOutput>;
  close?(): Promise<void>;
}

/** Where a streaming collector reports what it sees. */
export interface StreamSink {
  /** A fresh result; replaces the previous one whole. */
  ok(output: CollectorOutput, durationMs?: number): void;
  /** The source is absent on this host (no GPU, no socket): a state, not a failure. */
  noData(reason: string, message: string): void;
  /** The source failed; `reason` is a short stable label value, `message` the detail. */
  fail(reason: string, message: string): void;
  /** Counts an error without changing the status (e.g. a parse error in one line). */
  countError(reason: string): void;
  /** Self-metrics of the collector (e.g. restart counters) that stay visible while it fails. */
  health(samples: readonly Sample[]): void;
}

/** A collector that runs long-lived sources (child processes, event streams) and pushes results. */
export interface StreamingCollector {
  readonly kind: 'streaming';
  readonly name: string;
  start(sink: StreamSink, log: Logger): Promise<void>;
  /** Idempotent; stops children and timers. */
  stop(): Promise<void>;
}

/** Either collector shape. */
export type Collector = PolledCollector | StreamingCollector;

/** The latest state of one collector as the state store keeps it. */
export interface CollectorState {
  readonly collector: string;
  readonly status: CollectorStatus;
  /** Short label value describing why the status is not ok. */
  readonly reason?: string;
  readonly message?: string;
  readonly updatedAt: number;
  readonly lastSuccessAt?: number;
  readonly durationMs?: number;
  readonly output: CollectorOutput;
  /** Cumulative errors by reason since start. */
  readonly errors: ReadonlyMap<string, number>;
  /** Self-metrics that survive failures (restart counters, stream states). */
  readonly health: readonly Sample[];
}

/** Immutable view of everything the agent knows at one moment. */
export interface Snapshot {
  readonly version: number;
  readonly takenAt: number;
  readonly collectors: ReadonlyMap<string, CollectorState>;
  /** Series computed from several collectors' facts (attribution, detectors). */
  readonly derived: readonly Sample[];
}

/** Read-only access to snapshots for exporters. */
export interface StateReader {
  current(): Snapshot;
  /** Subscribes to snapshot changes; returns the unsubscribe function. */
  onChange(listener: (snapshot: Snapshot) => void): () => void;
}

/**
 * What a deriver makes of one snapshot: series served with it, and events the store publishes
 * once the snapshot is announced (never while a reader builds it).
 */
export interface Derivation {
  readonly samples: readonly Sample[];
  readonly events?: readonly NewEvent[];
}

/** A step run on every snapshot that computes series and events across collectors (may keep state). */
export interface Deriver {
  readonly name: string;
  derive(snapshot: Snapshot): Derivation;
}
