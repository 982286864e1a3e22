import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { Logger } from 'pino';
import { errorMessage } from '../../agent/core/errors.js';
import { snapshotSamples } from '../../agent/core/self-metrics.js';
import type { Snapshot, StateReader } from '../../agent/core/types.js';
import { ProcessMetrics } from './process-metrics.js';
import {
  CONTENT_TYPES,
  EOF,
  FamilyLines,
  printFamily,
  type ExpositionFormat,
  type LineFamily,
  type RenderProblem,
} from './render.js';

const gzipAsync = promisify(gzip);

/**
 * Longest stretch of rendering between two turns of the event loop. Scrapes that arrive during a
 * render are answered between its slices, so a render delays none of them by more than this.
 */
const SLICE_MS = 0.5;
/** Samples formatted between two looks at the clock. */
const SAMPLES_PER_CHECK = 32;

/** A rendered exposition ready to send. */
export interface RenderedBody {
  readonly body: Buffer;
  readonly contentType: string;
  readonly gzipped: boolean;
  /** The snapshot it was rendered from. */
  readonly version: number;
}

/** Options of the exposition cache. */
export interface ExpositionCacheOptions {
  readonly state: StateReader;
  readonly version: string;
  readonly log: Logger;
  /** Include process_* and nodejs_* metrics of the agent itself (default true). */
  readonly processMetrics?: boolean;
  /** Longest stretch of rendering between two turns of the event loop, ms (default {@link SLICE_MS}). */
  readonly sliceMs?: number;
}

type Variant = `${ExpositionFormat}${'' | '+gzip'}`;

/** Work in progress for one snapshot. */
interface Job<T> {
  readonly version: number;
  readonly promise: Promise<T>;
}

/**
 * Renders the exposition at most once per snapshot and format, on the first scrape that sees the
 * snapshot, and serves every later scrape of it from memory (gzip too): a scrape never waits on a
 * collector, a child process or the GPU, and an agent nobody scrapes spends nothing on rendering.
 *
 * A render runs in slices between which the event loop answers other scrapes, and renders of
 * one format and encoding run one at a time. While one runs, scrapes get the complete body
 * rendered just before it (never a partial one) if that body is of the snapshot right before the
 * one being rendered, as it is under steady scraping; a scrape whose newest body is older than
 * that waits for the render. So a body served is at most one render behind, for as long as a
 * render takes; a scrape after a render completes never gets an older body. The lines of a
 * snapshot are formatted once and printed in both formats, so text and OpenMetrics agree.
 */
export class ExpositionCache {
  /** The newest complete body of each variant. */
  private readonly done = new Map<Variant, RenderedBody>();
  /** The newest render of each variant in progress. */
  private readonly jobs = new Map<Variant, Job<RenderedBody>>();
  /** The sample lines of the newest snapshot rendered, shared by both formats. */
  private lines: Job<readonly LineFamily[]> | undefined;
  private readonly processMetrics: ProcessMetrics | undefined;
  private readonly reportedProblems = new Set<string>();
  private processMetricsFailed = false;
  private stopped = false;

  constructor(private readonly options: ExpositionCacheOptions) {
    this.processMetrics = options.processMetrics === false ? undefined : new ProcessMetrics();
  }

  /** Kept for the component lifecycle; rendering is on demand. */
  start(): void {
    this.stopped = false;
  }

  /** Drops cached bodies; renders still running finish without storing theirs. */
  stop(): void {
    this.stopped = true;
    this.done.clear();
    this.jobs.clear();
    this.lines = undefined;
  }

  /**
   * The exposition of the current snapshot in the format asked for: the body itself when it is
   * ready (the common case, answered without waiting for anything), else a promise of it.
   */
  get(format: ExpositionFormat, acceptGzip: boolean): RenderedBody | Promise<RenderedBody> {
    const snapshot = this.options.state.current();
    const variant: Variant = acceptGzip ? `${format}+gzip` : format;
    const done = this.done.get(variant);
    if (done?.version === snapshot.version) return done;
    const job = this.jobs.get(variant);
    if (!job) return this.render(variant, snapshot).promise;
    // Snapshot versions count up by one: this body is of the snapshot before the one rendering.
    if (done && done.version >= job.version - 1) return done;
    if (job.version === snapshot.version) return job.promise;
    // Rendering an older snapshot (a newer one came during the render): wait, then ask again.
    return job.promise.then(() => this.get(format, acceptGzip));
  }

  private render(variant: Variant, snapshot: Snapshot): Job<RenderedBody> {
    const format: ExpositionFormat = variant.startsWith('openmetrics')
      ? 'openmetrics'
      : 'prometheus';
    const gzipped = variant.endsWith('+gzip');
    const promise = this.produce(format, gzipped, snapshot).then(
      (body) => {
        const rendered: RenderedBody = {
          body,
          contentType: CONTENT_TYPES[format],
          gzipped,
          version: snapshot.version,
        };
        this.finish(variant, job);
        if (!this.stopped && (this.done.get(variant)?.version ?? -1) < snapshot.version) {
          this.done.set(variant, rendered);
        }
        return rendered;
      },
      (err: unknown) => {
        this.finish(variant, job);
        throw err;
      },
    );
    const job: Job<RenderedBody> = { version: snapshot.version, promise };
    this.jobs.set(variant, job);
    return job;
  }

  private finish(variant: Variant, job: Job<RenderedBody>): void {
    if (this.jobs.get(variant) === job) this.jobs.delete(variant);
  }

  private async produce(
    format: ExpositionFormat,
    gzipped: boolean,
    snapshot: Snapshot,
  ): Promise<Buffer> {
    if (gzipped) {
      // The same bytes as the plain body of this snapshot, which a plain scrape may reuse too.
      const plain = this.plainBody(format, snapshot);
      const { body } = plain instanceof Promise ? await plain : plain;
      // zlib compresses on libuv's thread pool: the event loop goes on answering scrapes.
      return gzipAsync(body, { level: 6 });
    }
    const families = await this.linesOf(snapshot);
    const slices = new Slices(this.options.sliceMs ?? SLICE_MS);
    const parts: Buffer[] = [];
    for (const family of families) {
      parts.push(...printFamily(family, format));
      await slices.next();
    }
    if (format === 'openmetrics') parts.push(EOF);
    return Buffer.concat(parts);
  }

  private plainBody(
    format: ExpositionFormat,
    snapshot: Snapshot,
  ): RenderedBody | Promise<RenderedBody> {
    const done = this.done.get(format);
    if (done?.version === snapshot.version) return done;
    const job = this.jobs.get(format);
    if (job?.version === snapshot.version) return job.promise;
    return this.render(format, snapshot).promise;
  }

  private linesOf(snapshot: Snapshot): Promise<readonly LineFamily[]> {
    if (this.lines?.version === snapshot.version) return this.lines.promise;
    const job: Job<readonly LineFamily[]> = {
      version: snapshot.version,
      promise: this.formatLines(snapshot).catch((err: unknown) => {
        if (this.lines === job) this.lines = undefined;
        throw err;
      }),
    };
    this.lines = job;
    return job.promise;
  }

  /** Formats every sample of a snapshot, letting the event loop run every `sliceMs`. */
  private async formatLines(snapshot: Snapshot): Promise<readonly LineFamily[]> {
    const families = new FamilyLines((p) => this.reportProblem(p));
    const slices = new Slices(this.options.sliceMs ?? SLICE_MS);
    let count = 0;
    for (const sample of snapshotSamples(snapshot, this.options.version)) {
      families.add(sample);
      // A look at the clock costs about as much as formatting a sample: look every few.
      if (++count % SAMPLES_PER_CHECK === 0) await slices.next();
    }
    if (this.processMetrics) {
      try {
        for await (const family of this.processMetrics.collect()) {
          families.addForeign(family);
          await slices.next();
        }
        this.processMetricsFailed = false;
      } catch (err) {
        // The agent's own metrics are not worth failing a scrape for; logged once per outage.
        if (!this.processMetricsFailed) {
          this.options.log.warn(
            { err: errorMessage(err) },
            'process metrics could not be collected; serving the exposition without them',
          );
        }
        this.processMetricsFailed = true;
      }
    }
    return families.list();
  }

  private reportProblem(p: RenderProblem): void {
    const key = `${p.metric}: ${p.problem}`;
    if (this.reportedProblems.has(key)) return;
    this.reportedProblems.add(key);
    this.options.log.warn(
      { metric: p.metric, problem: p.problem },
      'series dropped from the exposition',
    );
  }
}

/** Cuts a long piece of work into slices with turns of the event loop between them. */
class Slices {
  private deadline: number;

  constructor(private readonly sliceMs: number) {
    this.deadline = performance.now() + sliceMs;
  }

  /** Returns at once within the slice; past its end, after a turn of the event loop. */
  async next(): Promise<void> {
    if (performance.now() < this.deadline) return;
    await nextTurn();
    this.deadline = performance.now() + this.sliceMs;
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
