import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { systemClock } from './clock.js';
import { createHttpServer } from './http-server.js';
import { StateStore } from './state-store.js';
import { silentLogger } from '../test/helpers/log-sink.js';

function app() {
  const log = silentLogger();
  return createHttpServer({
    log,
    state: new StateStore({ clock: systemClock, log }),
    version: 'test',
    alive: () => true,
  });
}

describe('schema compilers loaded on demand', () => {
  it('serves its own routes without any schema compiler', async () => {
    const a = app();
    const res = await a.inject({ method: 'GET', url: '/healthz' });
    expect(res.json()).toEqual({ status: 'ok' });
    const loaded = Object.keys(createRequire(import.meta.url).cache);
    expect(loaded.filter((k) => /node_modules\/(ajv|@fastify\/ajv-compiler)\//.test(k))).toEqual(
      [],
    );
    await a.close();
  });

  // Regression: the lazy compilers must still validate and serialize like fastify's defaults.
  it('validates a route with a body schema and serializes its response schema', async () => {
    const a = app();
    a.post(
      '/t',
      {
        schema: {
          headers: {
            type: 'object',
            properties: { 'x-token': { type: 'string', minLength: 3 } },
            required: ['x-token'],
          },
          body: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] },
          response: { 200: { type: 'object', properties: { doubled: { type: 'integer' } } } },
        },
      },
      (req) => ({ doubled: (req.body as { n: number }).n * 2, secret: 'dropped' }),
    );
    const ok = await a.inject({
      method: 'POST',
      url: '/t',
      headers: { 'x-token': 'abc' },
      payload: { n: 21 },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ doubled: 42 });
    const badBody = await a.inject({
      method: 'POST',
      url: '/t',
      headers: { 'x-token': 'abc' },
      payload: { n: 'x' },
    });
    expect(badBody.statusCode).toBe(400);
    const badHeader = await a.inject({ method: 'POST', url: '/t', payload: { n: 1 } });
    expect(badHeader.statusCode).toBe(400);
    const loaded = Object.keys(createRequire(import.meta.url).cache);
    expect(loaded.some((k) => k.includes('node_modules/@fastify/ajv-compiler/'))).toBe(true);
    await a.close();
  });
});
