import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import { errorMessage } from './errors.js';

/** How bad an event is. */
export type EventSeverity = 'info' | 'warning' | 'critical';

/** One typed event (OOM kill, GPU OOM, throttling episode, Xid, update, drift ...). */
export interface AgentEvent {
  /** Monotonic id within this agent run. */
  readonly id: number;
  /** Unix time in milliseconds when it happened. */
  readonly ts: number;
  /** Dotted type, e.g. `container.oom_kill`, `gpu.xid`, `gpu.throttle_episode`. */
  readonly type: string;
  readonly severity: EventSeverity;
  /** Collector or component that saw it. */
  readonly source: string;
  readonly message: string;
  /** Identity of what it concerns (gpu, uuid, container_name ...). */
  readonly labels: Readonly<Record<string, string>>;
  readonly data?: Readonly<Record<string, unknown>>;
}

/** What an emitter supplies; id and (by default) time are added. */
export type NewEvent = Omit<AgentEvent, 'id' | 'ts'> & { readonly ts?: number };

/** Query of the event ring. */
export interface EventQuery {
  /** Only events at or after this Unix time in ms. */
  readonly since?: number;
  readonly type?: string;
  readonly limit?: number;
}

/** Bounded ring of recent events: newest kept, each logged once, listeners notified. */
export class EventLog {
  private readonly ring: AgentEvent[] = [];
  private nextId = 1;
  private readonly listeners = new Set<(e: AgentEvent) => void>();

  constructor(
    private readonly options: {
      readonly clock: Clock;
      readonly log: Logger;
      readonly capacity?: number;
    },
  ) {}

  /** Records an event and tells listeners (e.g. the MQTT publisher). */
  emit(event: NewEvent): AgentEvent {
    const full: AgentEvent = Object.freeze({
      ...event,
      id: this.nextId++,
      ts: event.ts ?? this.options.clock.now(),
      labels: Object.freeze({ ...event.labels }),
    });
    this.ring.push(full);
    const capacity = this.options.capacity ?? 1000;
    if (this.ring.length > capacity) this.ring.splice(0, this.ring.length - capacity);
    const fields = {
      event: full.type,
      severity: full.severity,
      source: full.source,
      ...full.labels,
    };
    if (full.severity === 'info') this.options.log.info(fields, full.message);
    else this.options.log.warn(fields, full.message);
    for (const listener of this.listeners) {
      try {
        listener(full);
      } catch (err) {
        this.options.log.error({ err: errorMessage(err) }, 'event listener failed');
      }
    }
    return full;
  }

  /** Events matching the query, newest first. */
  list(query: EventQuery = {}): AgentEvent[] {
    const out: AgentEvent[] = [];
    for (let i = this.ring.length - 1; i >= 0; i--) {
      const e = this.ring[i];
      if (!e) continue;
      if (query.since !== undefined && e.ts < query.since) continue;
      if (query.type !== undefined && e.type !== query.type && !e.type.startsWith(`${query.type}.`))
        continue;
      out.push(e);
      if (query.limit !== undefined && out.length >= query.limit) break;
    }
    return out;
  }

  /** Subscribes to new events; returns the unsubscribe function. */
  onEvent(listener: (e: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
