import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ExpositionCache } from '../exporters/prometheus/exposition-cache.js';
import { registerMetricsRoute } from '../exporters/prometheus/prometheus-exporter.js';
import { systemClock, type Clock } from './core/clock.js';
import { CollectorRunner } from './core/collector-runner.js';
import type { AgentContext, Component } from './core/component.js';
import type { AgentConfig } from './config.js';
import { errorMessage } from './core/errors.js';
import { EventLog } from './core/events.js';
import { gpuProcessesDeriver } from './attribution/gpu-processes.js';
import { createHttpServer } from './http/server.js';
import { HttpCounters } from './http/http-metrics.js';
import type { WebConfig } from './http/web-config-types.js';
import type { ChildProcesses, SpawnFn } from './process/process.js';
import { selfMetricsChannel } from './core/self-metrics-channel.js';
import { StateStore } from './core/state-store.js';
import type { Collector, StateReader } from './core/types.js';

/** Injected I/O of the agent. */
export interface AgentDeps {
  readonly log: Logger;
  readonly version: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly clock?: Clock;
  readonly spawnFn?: SpawnFn;
  /**
   * The children collectors and components spawn (through its `spawn`): whatever still runs when
   * the agent stops (a one-shot call hung in the driver) is ended with its process group.
   */
  readonly children?: ChildProcesses;
  /** The collectors to run (`createCollectors` from the registry, or a test's own). */
  readonly collectors: readonly Collector[];
  /** Extra components (APIs, publishers) started with the agent. */
  readonly components?: readonly Component[];
  /**
   * Rereads the web configuration (http.webConfigFile) when its files change; default: in this
   * process (main passes one that validates in a child process, keeping zod out of the agent).
   */
  readonly reloadWebConfig?: () => Promise<WebConfig>;
}

/** A built, not yet started agent. */
export interface Agent {
  readonly state: StateReader;
  readonly store: StateStore;
  readonly events: EventLog;
  readonly app: FastifyInstance;
  readonly runner: CollectorRunner;
  /** Starts collectors and components and listens; resolves with the bound address. */
  start(): Promise<string>;
  /** Stops everything; idempotent. */
  stop(): Promise<void>;
}

/** Name under which the HTTP server's own metrics are kept in the state store. */
const HTTP = 'http';

/** Thrown when the listen address cannot be bound. */
export class ListenError extends Error {
  readonly code = 'GPULSE_LISTEN_FAILED';
}

/** Wires collectors, the state store, the exporter and components (the fastify build/listen split). */
export function buildAgent(config: AgentConfig, deps: AgentDeps): Agent {
  const clock = deps.clock ?? systemClock;
  const log = deps.log;
  const env = deps.env ?? process.env;
  const store = new StateStore({ clock, log, derivers: [gpuProcessesDeriver] });
  const events = new EventLog({ clock, log: log.child({ component: 'events' }) });
  // Derivers return events with their snapshot; the store hands them over once it is announced.
  store.onEvent((event) => events.emit(event));
  const runner = new CollectorRunner(deps.collectors, { clock, log, store });
  let running = false;
  const httpCounters = new HttpCounters();
  const web = config.http.web;
  const required = Object.entries(config.collectors)
    .filter(([, c]) => c.mode === 'required')
    .map(([name]) => name);
  const app = createHttpServer({
    log,
    state: store,
    version: deps.version,
    alive: () => running,
    limits: config.http,
    web,
    reloadWeb:
      web &&
      (deps.reloadWebConfig ??
        (async () => (await import('./http/web-config.js')).loadWebConfigFile(web.file))),
    writes: { mode: config.http.writeEndpoints, listenHost: config.listen.host },
    counters: httpCounters,
    required,
  });
  // The HTTP server's counters, published like a component's: the first change after a quiet
  // second makes a snapshot, so a flood of refused connections costs one snapshot a second.
  let httpMetricsTimer: ReturnType<Clock['setTimeout']> | undefined;
  const httpChannel = selfMetricsChannel(store, HTTP);
  const publishHttpMetrics = () => httpChannel.ok(httpCounters.samples());
  publishHttpMetrics();
  httpCounters.onChange(() => {
    if (httpMetricsTimer || stopped) return;
    httpMetricsTimer = clock.setTimeout(() => {
      httpMetricsTimer = undefined;
      publishHttpMetrics();
    }, 1000);
    httpMetricsTimer.unref?.();
  });
  const cache = new ExpositionCache({ state: store, version: deps.version, log });
  registerMetricsRoute(app, cache);
  const components = [...(deps.components ?? [])];
  const ctx: AgentContext = {
    config,
    log,
    clock,
    store,
    selfMetrics: (name) => selfMetricsChannel(store, name),
    events,
    app,
    version: deps.version,
    env,
    spawnFn: deps.children?.spawn ?? deps.spawnFn,
  };
  for (const c of components) c.register?.(ctx);
  let stopped = false;

  return {
    state: store,
    store,
    events,
    app,
    runner,
    async start() {
      running = true;
      runner.start();
      cache.start();
      for (const c of components) {
        try {
          await c.start(ctx);
        } catch (err) {
          // One component failing to start must not take the exporter down with it.
          log.error({ component: c.name, err: errorMessage(err) }, 'component failed to start');
        }
      }
      const { host, port } = config.listen;
      try {
        const address = await app.listen({ host, port });
        for (const w of web?.warnings ?? []) log.warn({ file: web?.file }, w);
        // fastify names the scheme from its own https option, which a server factory bypasses.
        return web?.tls ? address.replace(/^http:/, 'https:') : address;
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        const hint =
          e.code === 'EADDRINUSE'
            ? `port ${port} is already in use (another gpulse or exporter?); choose another with --listen HOST:PORT or GPULSE_LISTEN`
            : e.code === 'EACCES'
              ? `not permitted to listen on ${host}:${port}; use a port above 1024 or grant CAP_NET_BIND_SERVICE`
              : e.code === 'EADDRNOTAVAIL'
                ? `${host} is not an address of this machine; use 0.0.0.0, 127.0.0.1 or one of its addresses`
                : e.message;
        throw new ListenError(`cannot listen on ${host}:${port}: ${hint}`);
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      running = false;
      if (httpMetricsTimer) clock.clearTimeout(httpMetricsTimer);
      cache.stop();
      await Promise.allSettled([
        runner.stop(),
        ...components.map((c) => c.stop()),
        // At once, not after the rest: a collector still starting waits on a hung one-shot call.
        deps.children?.stop(),
      ]);
      await app.close();
      store.close();
    },
  };
}
