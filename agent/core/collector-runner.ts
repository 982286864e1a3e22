import type { Logger } from 'pino';
import { backoffDelay, type Clock, type TimerHandle } from './clock.js';
import { CollectorError, NoDataError, errorMessage } from './errors.js';
import type { StateStore } from './state-store.js';
import type { Collector, PolledCollector, StreamSink, StreamingCollector } from './types.js';

/** Options of the collector runner. */
export interface CollectorRunnerOptions {
  readonly clock: Clock;
  readonly log: Logger;
  readonly store: StateStore;
  /** Random source for jitter and backoff (tests pass a constant). */
  readonly random?: () => number;
}

interface PolledLoop {
  readonly collector: PolledCollector;
  timer?: TimerHandle;
  running?: Promise<void>;
}

interface StreamHandle {
  readonly collector: StreamingCollector;
  attempts: number;
  timer?: TimerHandle;
  started: boolean;
}

/**
 * Runs every collector: polled ones on their interval with a timeout and no overlapping runs,
 * streaming ones started once and restarted with backoff if they fail to start.
 * One collector's failure never stops another.
 */
export class CollectorRunner {
  private readonly polled = new Map<string, PolledLoop>();
  private readonly streams = new Map<string, StreamHandle>();
  private stopping = false;
  private readonly shutdown = new AbortController();

  constructor(
    collectors: readonly Collector[],
    private readonly options: CollectorRunnerOptions,
  ) {
    for (const c of collectors) {
      if (this.polled.has(c.name) || this.streams.has(c.name)) {
        throw new Error(`duplicate collector name: ${c.name}`);
      }
      if (c.kind === 'polled') this.polled.set(c.name, { collector: c });
      else this.streams.set(c.name, { collector: c, attempts: 0, started: false });
      options.store.register(c.name);
    }
  }

  /** Names of the collectors this runner owns. */
  names(): string[] {
    return [...this.polled.keys(), ...this.streams.keys()];
  }

  /** Starts every collector; returns once all have been launched (not finished). */
  start(): void {
    for (const loop of this.polled.values()) this.tick(loop);
    for (const handle of this.streams.values()) void this.startStream(handle);
  }

  /** Runs every polled collector once and waits for the results (tests, `--once`). */
  async runOnce(): Promise<void> {
    await Promise.all([...this.polled.values()].map((loop) => this.runPolled(loop)));
  }

  /** Stops loops and streams; idempotent. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.shutdown.abort();
    const { clock, log } = this.options;
    const closing: Promise<void>[] = [];
    for (const loop of this.polled.values()) {
      if (loop.timer) clock.clearTimeout(loop.timer);
      const closeFn = loop.collector.close?.bind(loop.collector);
      closing.push(
        (async () => {
          await loop.running;
          await closeFn?.();
        })(),
      );
    }
    for (const handle of this.streams.values()) {
      if (handle.timer) clock.clearTimeout(handle.timer);
      closing.push(handle.collector.stop());
    }
    const results = await Promise.allSettled(closing);
    for (const r of results) {
      if (r.status === 'rejected')
        log.warn({ err: errorMessage(r.reason) }, 'collector stop failed');
    }
  }

  private tick(loop: PolledLoop): void {
    if (this.stopping) return;
    if (loop.running) {
      // The previous run is still going: skip this tick rather than pile up runs.
      this.options.store.countError(loop.collector.name, 'overrun');
      this.options.log.warn(
        { collector: loop.collector.name },
        'collector still running at its next interval; tick skipped (raise its interval or timeout)',
      );
    } else {
      void this.runPolled(loop);
    }
    const jitter = Math.round(
      (this.options.random ?? Math.random)() * loop.collector.intervalMs * 0.05,
    );
    loop.timer = this.options.clock.setTimeout(
      () => this.tick(loop),
      loop.collector.intervalMs + jitter,
    );
    loop.timer.unref?.();
  }

  private runPolled(loop: PolledLoop): Promise<void> {
    if (loop.running) return loop.running;
    const run = this.execute(loop.collector).finally(() => {
      loop.running = undefined;
    });
    loop.running = run;
    return run;
  }

  private async execute(collector: PolledCollector): Promise<void> {
    const { clock, store } = this.options;
    const log = this.options.log.child({ collector: collector.name });
    const controller = new AbortController();
    const onShutdown = () => controller.abort(new Error('shutdown'));
    this.shutdown.signal.addEventListener('abort', onShutdown, { once: true });
    let timedOut = false;
    const timer = clock.setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`timed out after ${collector.timeoutMs}ms`));
    }, collector.timeoutMs);
    timer.unref?.();
    const started = clock.now();
    try {
      const work = collector.collect({ signal: controller.signal, log, now: () => clock.now() });
      // A collector that ignores its signal must still not hold the loop past its timeout.
      const aborted = new Promise<never>((_, reject) => {
        controller.signal.addEventListener(
          'abort',
          () => reject(controller.signal.reason as Error),
          {
            once: true,
          },
        );
      });
      const output = await Promise.race([work, aborted]);
      store.ok(collector.name, output, clock.now() - started);
    } catch (err) {
      const duration = clock.now() - started;
      if (this.stopping) return;
      if (timedOut) {
        store.fail(
          collector.name,
          'timeout',
          `timed out after ${collector.timeoutMs}ms`,
          'timeout',
          duration,
        );
      } else if (err instanceof NoDataError) {
        store.noData(collector.name, err.reason, err.message);
      } else if (err instanceof CollectorError) {
        store.fail(collector.name, err.reason, err.message, 'error', duration);
      } else {
        store.fail(collector.name, 'exception', errorMessage(err), 'error', duration);
      }
    } finally {
      clock.clearTimeout(timer);
      this.shutdown.signal.removeEventListener('abort', onShutdown);
    }
  }

  private async startStream(handle: StreamHandle): Promise<void> {
    if (this.stopping) return;
    const { store, clock } = this.options;
    const name = handle.collector.name;
    const log = this.options.log.child({ collector: name });
    const sink: StreamSink = {
      ok: (output, durationMs) => {
        if (!this.stopping) store.ok(name, output, durationMs);
      },
      noData: (reason, message) => {
        if (!this.stopping) store.noData(name, reason, message);
      },
      fail: (reason, message) => {
        if (!this.stopping) store.fail(name, reason, message);
      },
      countError: (reason) => store.countError(name, reason),
      health: (samples) => store.health(name, samples),
    };
    try {
      await handle.collector.start(sink, log);
      handle.started = true;
      handle.attempts = 0;
    } catch (err) {
      if (this.stopping) return;
      const reason = err instanceof CollectorError ? err.reason : 'start_failed';
      if (err instanceof NoDataError) store.noData(name, err.reason, err.message);
      else store.fail(name, reason, `could not start: ${errorMessage(err)}`);
      const delay = Math.max(
        backoffDelay(handle.attempts++, 1000, 60_000, this.options.random),
        250,
      );
      // The status (and its one log line) says why; this says that it is being tried again.
      log.debug(
        {
          failure: err instanceof NoDataError ? err.reason : reason,
          attempt: handle.attempts,
          retryInMs: delay,
        },
        'collector start failed; retrying',
      );
      handle.timer = clock.setTimeout(() => void this.startStream(handle), delay);
      handle.timer.unref?.();
    }
  }
}
