import { describe, expect, it } from 'vitest';
import { captureLogger } from '../../test/helpers/log-sink.js';
import { FakeClock } from './clock.js';
import { CollectorRunner } from './collector-runner.js';
import { CollectorError, NoDataError } from './errors.js';
import { gauge } from './metric.js';
import { StateStore } from './state-store.js';
import type {
  CollectContext,
  CollectorOutput,
  PolledCollector,
  StreamSink,
  StreamingCollector,
} from './types.js';

const value = gauge('test_runs', 'runs');

function setup() {
  const clock = new FakeClock();
  const { log, records } = captureLogger();
  const store = new StateStore({ clock, log });
  return { clock, log, records, store };
}

function polled(
  name: string,
  collect: (ctx: CollectContext) => Promise<CollectorOutput>,
  intervalMs = 1000,
  timeoutMs = 500,
): PolledCollector {
  return { kind: 'polled', name, intervalMs, timeoutMs, collect };
}

describe('CollectorRunner', () => {
  it('runs polled collectors on their interval; one failing collector never stops another', async () => {
    const { clock, log, store } = setup();
    let good = 0;
    let bad = 0;
    const runner = new CollectorRunner(
      [
        polled('good', () =>
          Promise.resolve({ samples: [{ desc: value, labels: {}, value: ++good }] }),
        ),
        polled('bad', () => {
          bad++;
          return Promise.reject(new Error('kaboom'));
        }),
      ],
      { clock, log, store, random: () => 0 },
    );
    runner.start();
    await clock.advance(0);
    await clock.advance(3000);
    expect(good).toBe(4);
    expect(bad).toBe(4);
    const snap = store.current();
    expect(snap.collectors.get('good')).toMatchObject({ status: 'ok' });
    expect(snap.collectors.get('good')?.output.samples[0]?.value).toBe(4);
    expect(snap.collectors.get('bad')).toMatchObject({
      status: 'error',
      reason: 'exception',
      message: 'kaboom',
    });
    expect(snap.collectors.get('bad')?.errors.get('exception')).toBe(4);
    await runner.stop();
    await clock.advance(5000);
    expect(good).toBe(4);
  });

  it('classifies no data, coded errors and timeouts, and abandons a collector that ignores its signal', async () => {
    const { clock, log, store } = setup();
    let sawAbort = false;
    const runner = new CollectorRunner(
      [
        polled('absent', () => Promise.reject(new NoDataError('no_socket', 'no docker here'))),
        polled('coded', () => Promise.reject(new CollectorError('exit_9', 'driver not loaded'))),
        polled('slow', (ctx) => {
          ctx.signal.addEventListener('abort', () => (sawAbort = true));
          return new Promise(() => undefined);
        }),
      ],
      { clock, log, store, random: () => 0 },
    );
    runner.start();
    await clock.advance(600);
    const s = store.current().collectors;
    expect(s.get('absent')).toMatchObject({ status: 'no_data', reason: 'no_socket' });
    expect(s.get('coded')).toMatchObject({ status: 'error', reason: 'exit_9' });
    expect(s.get('slow')).toMatchObject({
      status: 'timeout',
      reason: 'timeout',
      message: 'timed out after 500ms',
    });
    expect(s.get('slow')?.durationMs).toBe(500);
    expect(sawAbort).toBe(true);
    await runner.stop();
  });

  it('skips a tick while the previous run is still going and counts it', async () => {
    const { clock, log, store, records } = setup();
    let started = 0;
    let release: (() => void) | undefined;
    const runner = new CollectorRunner(
      [
        polled(
          'sticky',
          () => {
            started++;
            return new Promise((resolve) => {
              release = () => resolve({ samples: [] });
            });
          },
          1000,
          10_000,
        ),
      ],
      { clock, log, store, random: () => 0 },
    );
    runner.start();
    await clock.advance(2500);
    expect(started).toBe(1);
    expect(store.current().collectors.get('sticky')?.errors.get('overrun')).toBe(2);
    expect(records.filter((r) => String(r.msg).includes('tick skipped'))).toHaveLength(2);
    release?.();
    await clock.advance(1000);
    expect(started).toBe(2);
    await runner.stop();
  });

  it('runOnce runs every polled collector and waits', async () => {
    const { clock, log, store } = setup();
    const runner = new CollectorRunner(
      [polled('a', () => Promise.resolve({ samples: [{ desc: value, labels: {}, value: 7 }] }))],
      { clock, log, store },
    );
    await runner.runOnce();
    expect(store.current().collectors.get('a')?.output.samples[0]?.value).toBe(7);
    expect(runner.names()).toEqual(['a']);
  });

  it('restarts a streaming collector whose start fails, with backoff, and records its reports', async () => {
    const { clock, log, store, records } = setup();
    let attempts = 0;
    let sink: StreamSink | undefined;
    let stopped = 0;
    const stream: StreamingCollector = {
      kind: 'streaming',
      name: 'stream',
      start(s) {
        attempts++;
        if (attempts < 3)
          return Promise.reject(new CollectorError('driver_not_loaded', 'no driver yet'));
        sink = s;
        return Promise.resolve();
      },
      stop() {
        stopped++;
        return Promise.resolve();
      },
    };
    const runner = new CollectorRunner([stream], { clock, log, store, random: () => 1 });
    runner.start();
    await clock.advance(0);
    expect(store.current().collectors.get('stream')).toMatchObject({
      status: 'error',
      reason: 'driver_not_loaded',
    });
    await clock.advance(1000);
    expect(attempts).toBe(2);
    await clock.advance(2000);
    expect(attempts).toBe(3);
    // Each retry is logged at debug (tests count them to know the retries really ran).
    expect(
      records
        .filter((r) => r.msg === 'collector start failed; retrying')
        .map((r) => [r.collector, r.failure, r.attempt, r.retryInMs]),
    ).toEqual([
      ['stream', 'driver_not_loaded', 1, 1000],
      ['stream', 'driver_not_loaded', 2, 2000],
    ]);
    sink?.ok({ samples: [{ desc: value, labels: {}, value: 1 }] }, 5);
    sink?.countError('parse_error');
    sink?.health([{ desc: value, labels: {}, value: 9 }]);
    let state = store.current().collectors.get('stream');
    expect(state).toMatchObject({ status: 'ok', durationMs: 5 });
    expect(state?.errors.get('parse_error')).toBe(1);
    expect(state?.health[0]?.value).toBe(9);
    sink?.noData('no_devices', 'none');
    expect(store.current().collectors.get('stream')).toMatchObject({
      status: 'no_data',
      reason: 'no_devices',
    });
    sink?.fail('gpu_lost', 'lost');
    state = store.current().collectors.get('stream');
    expect(state).toMatchObject({ status: 'error', reason: 'gpu_lost' });
    await runner.stop();
    await runner.stop();
    expect(stopped).toBe(1);
    // Reports after stop are ignored.
    sink?.ok({ samples: [] });
    expect(store.current().collectors.get('stream')?.status).toBe('error');
  });

  it('a streaming collector without a source reports no_data', async () => {
    const { clock, log, store } = setup();
    const stream: StreamingCollector = {
      kind: 'streaming',
      name: 's',
      start: () => Promise.reject(new NoDataError('binary_not_found', 'no nvidia-smi')),
      stop: () => Promise.resolve(),
    };
    const runner = new CollectorRunner([stream], { clock, log, store, random: () => 0 });
    runner.start();
    await clock.advance(0);
    expect(store.current().collectors.get('s')).toMatchObject({
      status: 'no_data',
      reason: 'binary_not_found',
    });
    await runner.stop();
  });

  it('rejects duplicate collector names', () => {
    const { clock, log, store } = setup();
    const c = polled('dup', () => Promise.resolve({ samples: [] }));
    expect(() => new CollectorRunner([c, c], { clock, log, store })).toThrow(
      'duplicate collector name: dup',
    );
  });

  it('closes polled collectors on stop, after their run finishes', async () => {
    const { clock, log, store } = setup();
    let closed = 0;
    const runner = new CollectorRunner(
      [
        {
          ...polled('c', () => Promise.resolve({ samples: [] })),
          close: () => Promise.resolve(void closed++),
        },
      ],
      { clock, log, store },
    );
    runner.start();
    await runner.stop();
    expect(closed).toBe(1);
  });
});
