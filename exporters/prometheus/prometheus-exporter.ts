import type { FastifyInstance } from 'fastify';
import { acceptsGzip, negotiateFormat, type ExpositionCache } from './exposition-cache.js';

/** Registers `GET /metrics`, answered from the pre-rendered exposition. */
export function registerMetricsRoute(app: FastifyInstance, cache: ExpositionCache): void {
  app.get('/metrics', async (request, reply) => {
    const format = negotiateFormat(request.headers.accept);
    const gzip = acceptsGzip(request.headers['accept-encoding']);
    const rendered = await cache.get(format, gzip);
    void reply.header('content-type', rendered.contentType);
    void reply.header('vary', 'Accept, Accept-Encoding');
    void reply.header('cache-control', 'no-store');
    if (rendered.gzipped) void reply.header('content-encoding', 'gzip');
    return reply.send(rendered.body);
  });
}
