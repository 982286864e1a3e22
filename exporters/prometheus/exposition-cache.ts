import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { Registry, RegistryContentType } from 'prom-client';
import { loadProcessMetrics } from '../../agent/lazy-require.js';
import type { Logger } from 'pino';
import { snapshotSamples } from '../../agent/self-metrics.js';
import type { Snapshot, StateReader } from '../../agent/types.js';
import { CONTENT_TYPES, renderSamples, type ExpositionFormat } from './render.js';

const gzipAsync = promisify(gzip);

/**
 * Sampling period of the event-loop delay histogram (nodejs_eventloop_lag_*). prom-client's default,
 * 10 ms, wakes the agent 100 times a second for as long as it runs, about a third of its idle CPU;
 * at 100 ms a stall shorter than the period is seen with probability length/100 ms, and every
 * stall longer than that is measured.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/** A rendered exposition ready to send. */
export interface RenderedBody {
  readonly body: Buffer;
  readonly contentType: string;
  readonly gzipped: boolean;
  readonly version: number;
}

interface Entry {
  version: number;
  text?: Promise<Buffer>;
  gzipped?: Promise<Buffer>;
}

/** Options of the exposition cache. */
export interface ExpositionCacheOptions {
  readonly state: StateReader;
  readonly version: string;
  readonly log: Logger;
  /** Include process_* and nodejs_* metrics of the agent itself (default true). */
  readonly processMetrics?: boolean;
}

/**
 * Renders the exposition at most once per snapshot, on the first scrape that sees it, and serves
 * every later scrape of that snapshot from memory (gzip too): a scrape never waits on a collector,
 * a child process or the GPU, and an agent nobody scrapes spends nothing on rendering.
 */
export class ExpositionCache {
  private readonly entries: Record<ExpositionFormat, Entry> = {
    prometheus: { version: -1 },
    openmetrics: { version: -1 },
  };
  private readonly processRegistries = new Map<ExpositionFormat, Registry<RegistryContentType>>();
  private readonly reportedProblems = new Set<string>();

  constructor(private readonly options: ExpositionCacheOptions) {}

  /** Kept for the component lifecycle; rendering is on demand. */
  start(): void {
    // Nothing to subscribe to: the first scrape of each snapshot renders it.
  }

  /** Drops cached bodies. */
  stop(): void {
    this.entries.prometheus = { version: -1 };
    this.entries.openmetrics = { version: -1 };
  }

  /** The exposition of the current snapshot in the format asked for. */
  async get(format: ExpositionFormat, acceptGzip: boolean): Promise<RenderedBody> {
    const snapshot = this.options.state.current();
    const entry = this.entry(format, snapshot);
    entry.text ??= this.renderText(format, snapshot);
    if (acceptGzip) {
      const text = entry.text;
      entry.gzipped ??= text.then((buf) => gzipAsync(buf, { level: 6 }));
      return {
        body: await entry.gzipped,
        contentType: CONTENT_TYPES[format],
        gzipped: true,
        version: entry.version,
      };
    }
    return {
      body: await entry.text,
      contentType: CONTENT_TYPES[format],
      gzipped: false,
      version: entry.version,
    };
  }

  private entry(format: ExpositionFormat, snapshot: Snapshot): Entry {
    let entry = this.entries[format];
    if (entry.version !== snapshot.version) {
      // A new object: requests still awaiting the old one keep a consistent body.
      entry = { version: snapshot.version };
      this.entries[format] = entry;
    }
    return entry;
  }

  private async renderText(format: ExpositionFormat, snapshot: Snapshot): Promise<Buffer> {
    const samples = snapshotSamples(snapshot, this.options.version);
    let text = renderSamples(samples, format, (p) => {
      const key = `${p.metric}: ${p.problem}`;
      if (this.reportedProblems.has(key)) return;
      this.reportedProblems.add(key);
      this.options.log.warn(
        { metric: p.metric, problem: p.problem },
        'series dropped from the exposition',
      );
    });
    if (this.options.processMetrics !== false) {
      const processText = await this.processRegistry(format).metrics();
      if (format === 'openmetrics') {
        text = text.replace(/# EOF\n$/, '') + processText;
      } else {
        text = `${text}\n${processText}`;
      }
    }
    return Buffer.from(text, 'utf8');
  }

  private processRegistry(format: ExpositionFormat): Registry<RegistryContentType> {
    let registry = this.processRegistries.get(format);
    if (!registry) {
      const { Registry: PromRegistry, collectDefaultMetrics } = loadProcessMetrics();
      registry = new PromRegistry<RegistryContentType>();
      registry.setContentType(CONTENT_TYPES[format] as RegistryContentType);
      collectDefaultMetrics({
        register: registry,
        eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS,
      });
      // prom-client declares these as gauges ending in _total, which promtool rightly rejects;
      // the per-type nodejs_active_* gauges carry the same information.
      for (const name of [
        'nodejs_active_handles_total',
        'nodejs_active_requests_total',
        'nodejs_active_resources_total',
      ]) {
        registry.removeSingleMetric(name);
      }
      this.processRegistries.set(format, registry);
    }
    return registry;
  }
}

/** Picks the exposition format from an Accept header (OpenMetrics only when preferred). */
export function negotiateFormat(accept: string | undefined): ExpositionFormat {
  if (!accept) return 'prometheus';
  let om = -1;
  let text = -1;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.trim().split(';');
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    const t = (type ?? '').trim().toLowerCase();
    if (t === 'application/openmetrics-text') om = Math.max(om, q);
    else if (t === 'text/plain' || t === '*/*') text = Math.max(text, q);
  }
  return om > 0 && om >= text ? 'openmetrics' : 'prometheus';
}

/** True when an Accept-Encoding header allows gzip. */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  return acceptEncoding.split(',').some((part) => {
    const [enc, ...params] = part.trim().split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return (
      (enc ?? '').trim().toLowerCase() === 'gzip' && (q === undefined || Number(q.slice(2)) > 0)
    );
  });
}
