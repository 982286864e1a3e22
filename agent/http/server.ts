import { createRequire } from 'node:module';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import type { HttpCounters } from './http-metrics.js';
import type { HttpLimits } from './limits.js';
import { createWebApp, type WriteEndpoints } from './web-app.js';
import type { WebConfig } from './web-config-types.js';
import type { StateReader } from '../core/types.js';

/** What the HTTP server reports about the agent. */
export interface HttpServerOptions {
  readonly log: Logger;
  readonly state: StateReader;
  readonly version: string;
  /** True while the collectors run (liveness). */
  readonly alive: () => boolean;
  /** Connection cap, timeouts and body size (default DEFAULT_HTTP_LIMITS). */
  readonly limits?: HttpLimits;
  /** The web configuration file (TLS, basic auth ...); undefined: plain HTTP, no authentication. */
  readonly web?: WebConfig;
  /** Rereads the web configuration when its files change. */
  readonly reloadWeb?: () => Promise<WebConfig>;
  /** Who may call write endpoints, and the host the agent listens on (buildAgent passes the config's). */
  readonly writes?: { readonly mode: WriteEndpoints; readonly listenHost: string };
  readonly counters?: HttpCounters;
  /** Collectors set to `mode: required`: the agent is not ready while one of them is not ok. */
  readonly required?: readonly string[];
}

const LINKS: readonly [string, string][] = [
  ['/metrics', 'Prometheus metrics'],
  ['/healthz', 'liveness'],
  ['/readyz', 'readiness and collector states'],
];

type Compilers = Required<
  NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>
>;

/**
 * fastify's default schema compilers (ajv, fast-json-stringify), loaded only when a route
 * declares a schema: the agent's own routes have none, and ajv costs ~2 MB of resident memory
 * on edge devices. Same compilers as fastify's defaults; the one difference is that fastify
 * treats them as custom, so it leaves header schemas' key case as written (write them lower case).
 * Exported for bench/tricks.mjs, which weighs it against fastify's defaults.
 */
export function lazySchemaCompilers(): Compilers {
  // Resolved from fastify's own folder: they are its dependencies, not ours.
  const fastifyRequire = createRequire(createRequire(import.meta.url).resolve('fastify'));
  let validator: Compilers['buildValidator'] | undefined;
  let serializer: Compilers['buildSerializer'] | undefined;
  return {
    buildValidator: (...args) => {
      validator ??= (
        fastifyRequire('@fastify/ajv-compiler') as () => Compilers['buildValidator']
      )();
      return validator(...args);
    },
    buildSerializer: (...args) => {
      serializer ??= (
        fastifyRequire(
          '@fastify/fast-json-stringify-compiler',
        ) as () => Compilers['buildSerializer']
      )();
      return serializer(...args);
    },
  };
}

/**
 * Builds the fastify app with health routes and the landing page, served as the web
 * configuration and the `http` bounds say (agent/http/web-app.ts); callers add their routes.
 */
export function createHttpServer(options: HttpServerOptions): FastifyInstance {
  const app = createWebApp({
    log: options.log,
    limits: options.limits,
    web: options.web,
    reload: options.reloadWeb,
    writes: options.writes,
    // Kubernetes probes carry no credentials; /readyz shows collector details only to those with them.
    openPaths: ['/healthz', '/readyz'],
    counters: options.counters,
    fastify: { schemaController: { compilersFactory: lazySchemaCompilers() } },
  });

  app.get('/healthz', async (_request, reply) => {
    if (!options.alive()) return reply.code(503).send({ status: 'stopping' });
    return { status: 'ok' };
  });

  app.get('/readyz', async (request, reply) => {
    const snapshot = options.state.current();
    const collectors = Object.fromEntries(
      [...snapshot.collectors.values()].map((c) => [
        c.collector,
        { status: c.status, reason: c.reason ?? null, message: c.message ?? null },
      ]),
    );
    const starting = [...snapshot.collectors.values()].some((c) => c.status === 'starting');
    // A collector the operator marked required is a promise of its data: failing, it fails readiness.
    const required = options.required ?? [];
    const failing = required.filter((name) => snapshot.collectors.get(name)?.status !== 'ok');
    const ready = options.alive() && !starting && failing.length === 0;
    const full = required.length > 0 ? { ready, collectors, required } : { ready, collectors };
    return reply.code(ready ? 200 : 503).send(app.access.authenticated(request) ? full : { ready });
  });

  app.get('/', async (_request, reply) => {
    const snapshot = options.state.current();
    const rows = [...snapshot.collectors.values()]
      .map(
        (c) =>
          `<tr><td>${escapeHtml(c.collector)}</td><td>${escapeHtml(c.status)}</td><td>${escapeHtml(
            c.message ?? '',
          )}</td></tr>`,
      )
      .join('');
    const links = LINKS.map(
      ([href, what]) => `<li><a href="${href}">${href}</a> — ${what}</li>`,
    ).join('');
    void reply.header('content-type', 'text/html; charset=utf-8');
    return `<!doctype html><html><head><meta charset="utf-8"><title>gpulse</title></head><body>
<h1>gpulse ${escapeHtml(options.version)}</h1><p>GPU monitoring agent and Prometheus exporter.</p>
<ul>${links}</ul><h2>Collectors</h2><table border="1" cellpadding="4"><tr><th>collector</th><th>status</th><th>detail</th></tr>${rows}</table>
</body></html>`;
  });

  return app;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
