import { setImmediate as nextTurn } from 'node:timers/promises';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../../agent/core/clock.js';
import { gauge } from '../../agent/core/metric.js';
import { StateStore } from '../../agent/core/state-store.js';
import type { Sample } from '../../agent/core/types.js';
import { captureLogger } from '../../test/helpers/log-sink.js';
import { ExpositionCache, type RenderedBody } from './exposition-cache.js';

const util = gauge('gpulse_gpu_utilization_ratio', 'GPU utilization.', ['gpu', 'uuid']);

function setup(options: { processMetrics?: boolean; sliceMs?: number } = {}) {
  const clock = new FakeClock(1_700_000_000_000);
  const { log, records } = captureLogger();
  const store = new StateStore({ clock, log });
  const cache = new ExpositionCache({
    state: store,
    version: '1.2.3',
    log,
    processMetrics: options.processMetrics ?? false,
    ...(options.sliceMs === undefined ? {} : { sliceMs: options.sliceMs }),
  });
  cache.start();
  return { store, cache, records };
}

/** `count` GPUs at one utilization, a new sample object each (as a collector hands them over). */
function gpus(count: number, value: number): { samples: Sample[] } {
  const samples: Sample[] = [];
  for (let i = 0; i < count; i++) {
    samples.push({ desc: util, labels: { gpu: String(i), uuid: `GPU-${i}` }, value });
  }
  return { samples };
}

/** The sample lines of an exposition, in order (comments and the blank end left out). */
function sampleLines(body: string): string[] {
  return body.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

/** Names in `# TYPE` lines that no sample line belongs to. */
function familiesWithoutSamples(body: string): string[] {
  const lines = body.split('\n');
  const families = lines
    .filter((l) => l.startsWith('# TYPE '))
    .map((l) => l.split(' ')[2] as string);
  const samples = sampleLines(body);
  return families.filter((f) => !samples.some((s) => s.startsWith(f)));
}

function text(r: RenderedBody): string {
  return (r.gzipped ? gunzipSync(r.body) : r.body).toString('utf8');
}

describe('ExpositionCache', () => {
  it('answers a scrape during a render with the previous complete body, then with the new one', async () => {
    const { store, cache } = setup();
    store.ok('nvidia-smi', gpus(2, 0.25));
    const first = await cache.get('prometheus', false);
    expect(sampleLines(text(first)).slice(0, 2)).toEqual([
      'gpulse_gpu_utilization_ratio{gpu="0",uuid="GPU-0"} 0.25',
      'gpulse_gpu_utilization_ratio{gpu="1",uuid="GPU-1"} 0.25',
    ]);

    store.ok('nvidia-smi', gpus(2, 0.75));
    const rendering = cache.get('prometheus', false);
    expect(rendering).toBeInstanceOf(Promise);
    // Arrives while the new snapshot is being rendered: the previous bytes, whole.
    const during = cache.get('prometheus', false);
    expect(during).toBe(first);

    const after = await rendering;
    expect(after.version).toBe(first.version + 1);
    expect(sampleLines(text(after)).slice(0, 2)).toEqual([
      'gpulse_gpu_utilization_ratio{gpu="0",uuid="GPU-0"} 0.75',
      'gpulse_gpu_utilization_ratio{gpu="1",uuid="GPU-1"} 0.75',
    ]);
    // Once the render is complete nobody gets the older body again, and nothing renders twice.
    expect(cache.get('prometheus', false)).toBe(after);
    expect(cache.get('prometheus', false)).toBe(after);
  });

  it('renders in slices and answers scrapes between them from the previous body', async () => {
    const { store, cache } = setup({ sliceMs: 0 });
    store.ok('nvidia-smi', gpus(512, 0.25));
    const before = await cache.get('prometheus', false);
    const beforeText = text(before);

    store.ok('nvidia-smi', gpus(512, 0.75));
    const rendering = cache.get('prometheus', false);
    let turns = 0;
    let settled = false;
    void Promise.resolve(rendering).then(() => (settled = true));
    while (!settled) {
      const during = cache.get('prometheus', false);
      if (!settled) {
        // Every scrape between two slices gets the previous exposition, byte for byte.
        expect(during).toBe(before);
        expect(text(before)).toBe(beforeText);
        turns++;
      }
      await nextTurn();
    }
    // 512 samples formatted 32 at a time with no time budget: 16 slices.
    expect(turns).toBeGreaterThanOrEqual(15);
    const after = await rendering;
    const lines = sampleLines(text(after)).filter((l) => l.startsWith('gpulse_gpu_utilization'));
    expect(lines).toHaveLength(512);
    expect(lines.every((l) => l.endsWith('} 0.75'))).toBe(true);
    expect(lines[511]).toBe('gpulse_gpu_utilization_ratio{gpu="511",uuid="GPU-511"} 0.75');
  });

  it('never serves a body two snapshots old: such a scrape waits for the render', async () => {
    const { store, cache } = setup();
    store.ok('nvidia-smi', gpus(1, 0.1));
    const old = await cache.get('prometheus', false);
    store.ok('nvidia-smi', gpus(1, 0.2));
    store.current(); // a snapshot nobody scraped
    store.ok('nvidia-smi', gpus(1, 0.3));
    const rendering = cache.get('prometheus', false);
    const during = cache.get('prometheus', false);
    expect(during).toBeInstanceOf(Promise);
    const [a, b] = await Promise.all([rendering, during]);
    expect(a.version).toBe(old.version + 2);
    expect(b).toBe(a);
    expect(sampleLines(text(b))[0]).toBe('gpulse_gpu_utilization_ratio{gpu="0",uuid="GPU-0"} 0.3');
  });

  it('keeps answering from the previous body when a snapshot arrives during a render', async () => {
    const { store, cache } = setup();
    store.ok('nvidia-smi', gpus(1, 0.1));
    const v1 = await cache.get('prometheus', false);
    store.ok('nvidia-smi', gpus(1, 0.2));
    const rendering2 = cache.get('prometheus', false);
    store.ok('nvidia-smi', gpus(1, 0.3));
    // Snapshot 3 is current, 2 is rendering: nobody waits, nothing renders twice at once.
    expect(cache.get('prometheus', false)).toBe(v1);
    const v2 = await rendering2;
    expect(sampleLines(text(v2))[0]).toBe('gpulse_gpu_utilization_ratio{gpu="0",uuid="GPU-0"} 0.2');
    // The next scrape renders snapshot 3 and waits for it; the ones during it get snapshot 2.
    const rendering3 = cache.get('prometheus', false);
    expect(rendering3).toBeInstanceOf(Promise);
    expect(cache.get('prometheus', false)).toBe(v2);
    const v3 = await rendering3;
    expect(v3.version).toBe(v2.version + 1);
    expect(sampleLines(text(v3))[0]).toBe('gpulse_gpu_utilization_ratio{gpu="0",uuid="GPU-0"} 0.3');
  });

  it('a scrape with only an old body waits through a render of an older snapshot for the current one', async () => {
    const { store, cache } = setup();
    store.ok('nvidia-smi', gpus(1, 0.1));
    const v1 = await cache.get('prometheus', false);
    store.ok('nvidia-smi', gpus(1, 0.2));
    store.current();
    store.ok('nvidia-smi', gpus(1, 0.3));
    const rendering3 = cache.get('prometheus', false);
    store.ok('nvidia-smi', gpus(1, 0.4));
    const late = cache.get('prometheus', false);
    expect(late).toBeInstanceOf(Promise);
    expect((await rendering3).version).toBe(v1.version + 2);
    const v4 = await late;
    expect(v4.version).toBe(v1.version + 3);
    expect(sampleLines(text(v4))[0]).toBe('gpulse_gpu_utilization_ratio{gpu="0",uuid="GPU-0"} 0.4');
  });

  it('serves gzip of exactly the plain bytes of the same snapshot, in both formats', async () => {
    const { store, cache } = setup();
    store.ok('nvidia-smi', gpus(8, 0.5));
    for (const format of ['prometheus', 'openmetrics'] as const) {
      const gz = await cache.get(format, true);
      const plain = await cache.get(format, false);
      expect(gz.gzipped).toBe(true);
      expect(gz.version).toBe(plain.version);
      expect(gz.contentType).toBe(plain.contentType);
      expect(gunzipSync(gz.body).equals(plain.body)).toBe(true);
    }
    // A gzip scrape during the next render gets the previous gzip body, still whole.
    const previous = await cache.get('prometheus', true);
    store.ok('nvidia-smi', gpus(8, 0.6));
    const rendering = cache.get('prometheus', true);
    expect(cache.get('prometheus', true)).toBe(previous);
    expect(text(await rendering)).toContain('{gpu="7",uuid="GPU-7"} 0.6\n');
  });

  it('prints the same samples in text and OpenMetrics, the agent’s own metrics included', async () => {
    const { store, cache, records } = setup({ processMetrics: true });
    store.ok('nvidia-smi', gpus(2, 0.5));

    // The first scrape is OpenMetrics, as Prometheus asks: no family is printed without samples
    // (prom-client's GC histogram before the first collection had a TYPE line and nothing else).
    const firstOm = text(await cache.get('openmetrics', false));
    expect(familiesWithoutSamples(firstOm)).toEqual([]);
    expect(firstOm.endsWith('# EOF\n')).toBe(true);

    // Make the collector see garbage collections, on a new snapshot each try.
    let value = 0;
    await vi.waitFor(async () => {
      allocateGarbage();
      await nextTurn();
      store.ok('nvidia-smi', gpus(2, ++value));
      const body = text(await cache.get('prometheus', false));
      expect(body).toMatch(/^nodejs_gc_duration_seconds_count\{kind="minor"\} [1-9]/m);
    });
    const plain = text(await cache.get('prometheus', false));
    // More collections between the two scrapes of one snapshot change nothing in what they print.
    allocateGarbage();
    await nextTurn();
    const om = text(await cache.get('openmetrics', false));

    expect(sampleLines(om)).toEqual(sampleLines(plain));
    const names = new Set(sampleLines(plain).map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)?.[0]));
    for (const name of [
      'gpulse_gpu_utilization_ratio',
      'gpulse_build_info',
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_seconds',
      'nodejs_gc_duration_seconds_bucket',
      'nodejs_gc_duration_seconds_sum',
      'nodejs_gc_duration_seconds_count',
    ]) {
      expect(names).toContain(name);
    }
    for (const gone of [
      'nodejs_active_handles_total',
      'nodejs_active_requests_total',
      'nodejs_active_resources_total',
    ]) {
      expect(names).not.toContain(gone);
    }
    // The formats differ only where OpenMetrics says so: a counter family's name, and # EOF.
    expect(plain).toContain('# TYPE process_cpu_user_seconds_total counter\n');
    expect(om).toContain('# TYPE process_cpu_user_seconds counter\n');
    expect(plain).toContain('# TYPE nodejs_gc_duration_seconds histogram\n');
    expect(om).toContain('# TYPE nodejs_gc_duration_seconds histogram\n');
    expect(om.match(/# EOF/g)).toHaveLength(1);
    expect(familiesWithoutSamples(plain)).toEqual([]);
    expect(familiesWithoutSamples(om)).toEqual([]);
    // A histogram's buckets end with +Inf, equal to its count, `le` last.
    const minorCount = /^nodejs_gc_duration_seconds_count\{kind="minor"\} (\d+)$/m.exec(om)?.[1];
    expect(om).toContain(
      `nodejs_gc_duration_seconds_bucket{kind="minor",le="+Inf"} ${minorCount}\n`,
    );
    expect(records.filter((r) => r.msg === 'series dropped from the exposition')).toEqual([]);
  });
});

/** Short-lived objects, enough to fill V8's young generation (16 MiB semi-spaces) at least once. */
function allocateGarbage(): void {
  let keep = 0;
  for (let round = 0; round < 8; round++) {
    const junk: object[] = [];
    for (let i = 0; i < 100_000; i++) junk.push({ i });
    keep += junk.length;
  }
  expect(keep).toBe(800_000);
}
