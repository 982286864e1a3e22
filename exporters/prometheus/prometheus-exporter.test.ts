import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { captureLogger } from '../../test/helpers/log-sink.js';
import { FakeClock } from '../../agent/core/clock.js';
import { createHttpServer } from '../../agent/http/server.js';
import { counter, gauge } from '../../agent/core/metric.js';
import { StateStore } from '../../agent/core/state-store.js';
import { acceptsGzip, ExpositionCache, negotiateFormat } from './exposition-cache.js';
import { registerMetricsRoute } from './prometheus-exporter.js';
import { FamilyLines, renderFamilies, renderSamples } from './render.js';
import type { MetricDesc } from '../../agent/core/types.js';

const temp = gauge('gpulse_gpu_temperature_celsius', 'GPU core temperature.', ['gpu', 'uuid']);
const energy = counter('gpulse_gpu_energy_joules_total', 'Energy.', ['gpu', 'uuid']);

function setup(alive = true) {
  const clock = new FakeClock(1_700_000_000_000);
  const { log, records } = captureLogger();
  const store = new StateStore({ clock, log });
  const app = createHttpServer({ log, state: store, version: '1.2.3', alive: () => alive });
  const cache = new ExpositionCache({ state: store, version: '1.2.3', log, processMetrics: false });
  registerMetricsRoute(app, cache);
  cache.start();
  cleanup = async () => {
    cache.stop();
    await app.close();
  };
  return { clock, store, app, cache, records };
}

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe('GET /metrics', () => {
  it('serves collector series and self-metrics with exact lines', async () => {
    const { store, app } = setup();
    store.register('nvidia-smi');
    store.ok(
      'nvidia-smi',
      { samples: [{ desc: temp, labels: { gpu: '0', uuid: 'GPU-a' }, value: 41 }] },
      250,
    );
    store.noData('docker', 'socket_missing', 'no docker socket');
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const lines = res.body.split('\n');
    expect(lines).toContain('# TYPE gpulse_gpu_temperature_celsius gauge');
    expect(lines).toContain('gpulse_gpu_temperature_celsius{gpu="0",uuid="GPU-a"} 41');
    expect(lines).toContain('gpulse_collector_up{collector="nvidia-smi"} 1');
    expect(lines).toContain('gpulse_collector_up{collector="docker"} 0');
    expect(lines).toContain(
      'gpulse_collector_status{collector="docker",status="no_data",reason="socket_missing"} 1',
    );
    expect(lines).toContain('gpulse_collector_duration_seconds{collector="nvidia-smi"} 0.25');
    expect(lines).toContain(
      'gpulse_collector_last_success_timestamp_seconds{collector="nvidia-smi"} 1700000000',
    );
    expect(lines.some((l) => l.startsWith('gpulse_build_info{version="1.2.3",node_version='))).toBe(
      true,
    );
  });

  it('drops the series of a failed collector instead of serving stale values', async () => {
    const { store, app } = setup();
    store.ok('nvidia-smi', {
      samples: [{ desc: temp, labels: { gpu: '0', uuid: 'GPU-a' }, value: 41 }],
    });
    expect((await app.inject('/metrics')).body).toContain('gpulse_gpu_temperature_celsius{');
    store.fail('nvidia-smi', 'gpu_lost', 'GPU has fallen off the bus');
    const body = (await app.inject('/metrics')).body;
    expect(body).not.toContain('gpulse_gpu_temperature_celsius{');
    expect(body).toContain(
      'gpulse_collector_errors_total{collector="nvidia-smi",reason="gpu_lost"} 1',
    );
    expect(body).toContain(
      'gpulse_collector_status{collector="nvidia-smi",status="error",reason="gpu_lost"} 1',
    );
  });

  it('serves gzip when accepted and OpenMetrics when asked', async () => {
    const { store, app } = setup();
    store.ok('x', {
      samples: [{ desc: energy, labels: { gpu: '0', uuid: 'GPU-a' }, value: 12.5 }],
    });
    const gz = await app.inject({
      url: '/metrics',
      headers: { 'accept-encoding': 'gzip, deflate' },
    });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gz.rawPayload).toString()).toContain(
      'gpulse_gpu_energy_joules_total{gpu="0",uuid="GPU-a"} 12.5',
    );
    const om = await app.inject({
      url: '/metrics',
      headers: {
        accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5',
      },
    });
    expect(om.headers['content-type']).toBe(
      'application/openmetrics-text; version=1.0.0; charset=utf-8',
    );
    expect(om.body).toContain('# TYPE gpulse_gpu_energy_joules counter');
    expect(om.body).toContain('gpulse_gpu_energy_joules_total{gpu="0",uuid="GPU-a"} 12.5');
    expect(om.body.endsWith('# EOF\n')).toBe(true);
    expect(om.body.match(/# EOF/g)).toHaveLength(1);
    // The Prometheus format is unaffected by rendering OpenMetrics (prom-client renames counters in place).
    const text = await app.inject('/metrics');
    expect(text.body).toContain('# TYPE gpulse_gpu_energy_joules_total counter');
  });

  it('renders once per snapshot and serves the cached body to every scrape', async () => {
    const { store, cache } = setup();
    store.ok('x', { samples: [{ desc: temp, labels: { gpu: '0', uuid: 'u' }, value: 1 }] });
    const a = await cache.get('prometheus', false);
    const b = await cache.get('prometheus', false);
    expect(b.body).toBe(a.body);
    store.ok('x', { samples: [{ desc: temp, labels: { gpu: '0', uuid: 'u' }, value: 2 }] });
    const c = await cache.get('prometheus', false);
    expect(c.version).toBeGreaterThan(a.version);
    expect(c.body.toString()).toContain('} 2\n');
  });

  it('includes process metrics of the agent when enabled', async () => {
    const { store, records } = setup();
    const { log } = captureLogger();
    const cache = new ExpositionCache({ state: store, version: 'v', log });
    const body = (await cache.get('prometheus', false)).body.toString();
    expect(body).toContain('process_resident_memory_bytes');
    expect(body).toContain('nodejs_eventloop_lag_seconds');
    const om = (await cache.get('openmetrics', false)).body.toString();
    expect(om.match(/# EOF/g)).toHaveLength(1);
    expect(records.filter((r) => r.msg === 'series dropped from the exposition')).toEqual([]);
  });
});

describe('health and landing routes', () => {
  it('healthz, readyz and / report the agent', async () => {
    const { store, app } = setup();
    store.register('nvidia-smi');
    const notReady = await app.inject('/readyz');
    expect(notReady.statusCode).toBe(503);
    expect(notReady.json()).toEqual({
      ready: false,
      collectors: { 'nvidia-smi': { status: 'starting', reason: null, message: null } },
    });
    store.noData('nvidia-smi', 'binary_not_found', 'no NVIDIA GPU found <here>');
    const ready = await app.inject('/readyz');
    expect(ready.statusCode).toBe(200);
    expect((await app.inject('/healthz')).json()).toEqual({ status: 'ok' });
    const landing = await app.inject('/');
    expect(landing.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(landing.body).toContain('<h1>gpulse 1.2.3</h1>');
    expect(landing.body).toContain('no NVIDIA GPU found &#60;here&#62;');
  });

  it('healthz is 503 once the agent is stopping', async () => {
    const { app } = setup(false);
    expect((await app.inject('/healthz')).statusCode).toBe(503);
  });
});

describe('renderSamples', () => {
  it('escapes label values, drops duplicates and conflicting declarations, reports each problem', () => {
    const problems: string[] = [];
    // Built by hand: metric() itself refuses a conflicting declaration at load time.
    const other: MetricDesc = {
      name: 'gpulse_gpu_temperature_celsius',
      help: 'different help',
      type: 'gauge',
      labelNames: ['gpu', 'uuid'],
    };
    const text = renderSamples(
      [
        { desc: temp, labels: { gpu: '0', uuid: 'a"b\\c\nd' }, value: 1 },
        { desc: temp, labels: { gpu: '0', uuid: 'a"b\\c\nd' }, value: 2 },
        { desc: other, labels: { gpu: '1', uuid: 'x' }, value: 3 },
        { desc: energy, labels: { gpu: '0', uuid: 'x' }, value: -1 },
        { desc: temp, labels: { gpu: '0', uuid: 'z', extra: 'no' }, value: 1 },
      ],
      'prometheus',
      (p) => problems.push(`${p.metric}: ${p.problem}`),
    );
    expect(text).toContain('gpulse_gpu_temperature_celsius{gpu="0",uuid="a\\"b\\\\c\\nd"} 1');
    expect(text).not.toContain('} 2');
    expect(text).not.toContain('} 3');
    expect(problems).toHaveLength(4);
    expect(problems[0]).toMatch(/duplicate series/);
    expect(problems[1]).toMatch(/declared twice/);
    expect(problems[2]).toMatch(/negative counter/);
  });
});

describe('content negotiation', () => {
  it.each([
    [undefined, 'prometheus'],
    ['text/plain', 'prometheus'],
    [
      'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
      'openmetrics',
    ],
    ['application/openmetrics-text;q=0.2,text/plain;q=0.9', 'prometheus'],
    ['application/openmetrics-text', 'openmetrics'],
  ] as const)('Accept %s → %s', (accept, format) => {
    expect(negotiateFormat(accept)).toBe(format);
  });

  it.each([
    [undefined, false],
    ['gzip', true],
    ['br, gzip;q=0.5', true],
    ['gzip;q=0', false],
    ['identity', false],
  ] as const)('Accept-Encoding %s → %s', (enc, gz) => {
    expect(acceptsGzip(enc)).toBe(gz);
  });
});

describe('FamilyLines.addForeign', () => {
  it('formats prom-client families like gpulse lines and refuses what would differ between formats', () => {
    const problems: string[] = [];
    const families = new FamilyLines((p) => problems.push(`${p.metric}: ${p.problem}`));
    families.add({ desc: temp, labels: { gpu: '0', uuid: 'a' }, value: 40 });
    families.addForeign({
      name: 'nodejs_gc_duration_seconds',
      help: 'GC duration.',
      type: 'histogram',
      values: [
        {
          labels: { le: 0.001, kind: 'minor' },
          value: 3,
          metricName: 'nodejs_gc_duration_seconds_bucket',
        },
        {
          labels: { le: '+Inf', kind: 'minor' },
          value: 4,
          metricName: 'nodejs_gc_duration_seconds_bucket',
        },
        { labels: { kind: 'minor' }, value: 0.0125, metricName: 'nodejs_gc_duration_seconds_sum' },
        { labels: { kind: 'minor' }, value: 4, metricName: 'nodejs_gc_duration_seconds_count' },
      ],
    });
    families.addForeign({
      name: 'nodejs_version_info',
      help: 'Node.js version info.',
      type: 'gauge',
      values: [{ labels: { version: 'v20"\\', major: 20 }, value: 1 }],
    });
    families.addForeign({
      name: 'process_cpu_seconds_total',
      help: 'CPU.',
      type: 'counter',
      values: [{ value: 1.5 }],
    });
    families.addForeign({
      name: 'nodejs_wrong_counter',
      help: 'x',
      type: 'counter',
      values: [{ value: 1 }],
    });
    families.addForeign({
      name: 'nodejs_summary',
      help: 'x',
      type: 'summary',
      values: [{ value: 1 }],
    });
    families.addForeign({ name: temp.name, help: 'x', type: 'gauge', values: [{ value: 1 }] });
    families.addForeign({ name: 'nodejs_no_samples', help: 'x', type: 'histogram', values: [] });

    const text = renderFamilies(families.list(), 'prometheus').toString();
    const om = renderFamilies(families.list(), 'openmetrics').toString();
    expect(text.split('\n')).toEqual([
      '# HELP gpulse_gpu_temperature_celsius GPU core temperature.',
      '# TYPE gpulse_gpu_temperature_celsius gauge',
      'gpulse_gpu_temperature_celsius{gpu="0",uuid="a"} 40',
      '# HELP nodejs_gc_duration_seconds GC duration.',
      '# TYPE nodejs_gc_duration_seconds histogram',
      'nodejs_gc_duration_seconds_bucket{kind="minor",le="0.001"} 3',
      'nodejs_gc_duration_seconds_bucket{kind="minor",le="+Inf"} 4',
      'nodejs_gc_duration_seconds_sum{kind="minor"} 0.0125',
      'nodejs_gc_duration_seconds_count{kind="minor"} 4',
      '# HELP nodejs_version_info Node.js version info.',
      '# TYPE nodejs_version_info gauge',
      'nodejs_version_info{version="v20\\"\\\\",major="20"} 1',
      '# HELP process_cpu_seconds_total CPU.',
      '# TYPE process_cpu_seconds_total counter',
      'process_cpu_seconds_total 1.5',
      '',
    ]);
    expect(om).toBe(
      text.replace(
        '# HELP process_cpu_seconds_total CPU.\n# TYPE process_cpu_seconds_total counter',
        '# HELP process_cpu_seconds CPU.\n# TYPE process_cpu_seconds counter',
      ) + '# EOF\n',
    );
    expect(problems).toEqual([
      'nodejs_wrong_counter: counter name does not end in _total',
      'nodejs_summary: unsupported type summary',
      'gpulse_gpu_temperature_celsius: declared twice',
    ]);
  });
});
