import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../core/clock.js';
import { createHttpServer } from './server.js';
import { StateStore } from '../core/state-store.js';
import { silentLogger } from '../../test/helpers/log-sink.js';

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

describe('GET /readyz', () => {
  function withRequired(required: readonly string[]) {
    const log = silentLogger();
    const state = new StateStore({ clock: systemClock, log });
    const server = createHttpServer({ log, state, version: 'test', alive: () => true, required });
    return { state, server };
  }

  it('is not ready while a required collector fails, and ready once it reports', async () => {
    const { state, server } = withRequired(['nvidia-smi']);
    state.register('nvidia-smi');
    state.register('docker');
    state.noData('docker', 'socket_missing', 'no Docker socket');
    state.fail('nvidia-smi', 'binary_not_found', 'nvidia-smi not found');
    const failing = await server.inject('/readyz');
    expect(failing.statusCode).toBe(503);
    expect(failing.json()).toEqual({
      ready: false,
      required: ['nvidia-smi'],
      collectors: {
        'nvidia-smi': {
          status: 'error',
          reason: 'binary_not_found',
          message: 'nvidia-smi not found',
        },
        docker: { status: 'no_data', reason: 'socket_missing', message: 'no Docker socket' },
      },
    });
    state.ok('nvidia-smi', { samples: [] });
    const ready = await server.inject('/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({ ready: true, required: ['nvidia-smi'] });
    await server.close();
  });

  it('counts a collector without data as ready when it is not required', async () => {
    const { state, server } = withRequired([]);
    state.register('nvidia-smi');
    state.noData('nvidia-smi', 'binary_not_found', 'no NVIDIA GPU found');
    const res = await server.inject('/readyz');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      ready: true,
      collectors: {
        'nvidia-smi': {
          status: 'no_data',
          reason: 'binary_not_found',
          message: 'no NVIDIA GPU found',
        },
      },
    });
    await server.close();
  });
});
