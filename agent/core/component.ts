import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import type { AgentConfig } from '../config.js';
import type { EventLog } from './events.js';
import type { SpawnFn } from '../process/process.js';
import type { SelfMetricsChannel } from './self-metrics-channel.js';
import type { Deriver, StateReader } from './types.js';

/** What every agent component gets: config, logging, time, state, events and the HTTP app. */
export interface AgentContext {
  readonly config: AgentConfig;
  readonly log: Logger;
  readonly clock: Clock;
  /**
   * Snapshots to read, and derivers to add. Components write nothing here: only collectors
   * produce facts; a component's own series go through `selfMetrics`.
   */
  readonly store: StateReader & { addDeriver(deriver: Deriver): void };
  /** The channel for a component's own status and series (`collector="<name>"`), never facts. */
  readonly selfMetrics: (name: string) => SelfMetricsChannel;
  readonly events: EventLog;
  readonly app: FastifyInstance;
  readonly version: string;
  readonly env: NodeJS.ProcessEnv;
  readonly spawnFn?: SpawnFn;
}

/**
 * A part of the agent with a lifecycle (an API, the MQTT publisher, the model updater ...).
 * `register` runs before the server listens (add routes there); `stop` is idempotent.
 */
export interface Component {
  readonly name: string;
  register?(ctx: AgentContext): void;
  start(ctx: AgentContext): Promise<void>;
  stop(): Promise<void>;
}
