import type { FastifyInstance, FastifyReply } from 'fastify';
import {
  acceptsGzip,
  negotiateFormat,
  type ExpositionCache,
  type RenderedBody,
} from './exposition-cache.js';

/**
 * Registers `GET /metrics`, answered from the pre-rendered exposition. The handler is not async:
 * a body already rendered (nearly every scrape) is sent in the same turn, without a promise.
 */
export function registerMetricsRoute(app: FastifyInstance, cache: ExpositionCache): void {
  // A scraper sends the same headers every time: parse each header once, not once per scrape.
  const formatOf = lastOne(negotiateFormat);
  const gzipOf = lastOne(acceptsGzip);
  app.get('/metrics', (request, reply) => {
    const format = formatOf(request.headers.accept);
    const gzip = gzipOf(request.headers['accept-encoding']);
    const rendered = cache.get(format, gzip);
    // Resolving to undefined, not to the reply (a thenable that fastify would wait on again).
    if (rendered instanceof Promise) return rendered.then((r) => send(reply, r));
    send(reply, rendered);
    return undefined;
  });
}

function send(reply: FastifyReply, rendered: RenderedBody): void {
  void reply.header('content-type', rendered.contentType);
  void reply.header('vary', 'Accept, Accept-Encoding');
  void reply.header('cache-control', 'no-store');
  if (rendered.gzipped) void reply.header('content-encoding', 'gzip');
  void reply.send(rendered.body);
}

/** `fn` remembering its latest argument and result. */
function lastOne<T>(fn: (header: string | undefined) => T): (header: string | undefined) => T {
  let header: string | undefined;
  let result = fn(undefined);
  return (h) => {
    if (h !== header) {
      header = h;
      result = fn(h);
    }
    return result;
  };
}
