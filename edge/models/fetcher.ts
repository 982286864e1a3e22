import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { backoffDelay } from '../../agent/core/clock.js';
import { ReasonError } from './reason-error.js';

/** Network settings of a download. */
export interface FetchSettings {
  /** Requests in flight at once. */
  readonly parallel: number;
  /** A response that delivers no bytes for this long is aborted and retried. */
  readonly stallTimeoutMs: number;
  /** Limit for the response headers of one request. */
  readonly requestTimeoutMs: number;
  /** Retries per request after the first attempt. */
  readonly retries: number;
  /** `ranges` reads whole-file blobs with HTTP Range and falls back to chunk objects; `chunks` only uses chunk objects. */
  readonly transport: 'ranges' | 'chunks';
  /** Largest single range request in bytes (adjacent missing chunks are coalesced up to this). */
  readonly maxRangeBytes: number;
}

/** Defaults: 4 in flight, 30 s stall limit, 5 retries, ranges of up to 8 MiB. */
export const DEFAULT_FETCH: FetchSettings = {
  parallel: 4,
  stallTimeoutMs: 30_000,
  requestTimeoutMs: 30_000,
  retries: 5,
  transport: 'ranges',
  maxRangeBytes: 8 * 1024 * 1024,
};

/** A download failure with a stable reason label. */
export class FetchError extends ReasonError {
  readonly code = 'GPULSE_MODEL_FETCH';
  constructor(
    /** http_status, stall, timeout, truncated, oversize, chunk_verify_failed, range_unsupported, network */
    reason: string,
    message: string,
    readonly status?: number,
  ) {
    super(reason, message);
  }
}

/** A failure of the local sink (disk full ...), carried through the stream reader unchanged. */
class LocalWriteError extends Error {
  constructor(override readonly cause: unknown) {
    super('local write failed');
  }
}

/** A chunk wanted from the server. */
export interface WantedChunk {
  readonly sha256: string;
  readonly length: number;
  /** Offset of the chunk in its blob (the whole file it belongs to). */
  readonly blobOffset: number;
  /** SHA-256 of the whole file (names the blob). */
  readonly blobSha256: string;
}

/** Where verified chunks go; `onBytes` counts every byte received (also wasted ones). */
export interface FetchSink {
  write(chunk: WantedChunk, data: Buffer): Promise<void>;
  onBytes(n: number): void;
  onRetry(reason: string): void;
}

interface Work {
  readonly chunks: readonly WantedChunk[];
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Reads a response body with a stall watchdog and a hard byte limit, handing bytes to `onData` as
 * they arrive. Ends with the number of bytes read.
 */
async function readBody(
  res: Response,
  limit: number,
  stallMs: number,
  abort: AbortController,
  onData: (buf: Uint8Array) => Promise<void>,
): Promise<number> {
  const body = res.body;
  if (!body) return 0;
  const reader = body.getReader();
  let total = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(
      () =>
        abort.abort(new FetchError('stall', `no data for ${stallMs}ms (stalled server or link)`)),
      stallMs,
    );
  };
  try {
    arm();
    for (;;) {
      const { done, value } = (await reader.read()) as { done: boolean; value?: Uint8Array };
      if (done || !value) break;
      total += value.length;
      if (total > limit) {
        abort.abort(
          new FetchError('oversize', `response is larger than the expected ${limit} bytes`),
        );
        throw new FetchError('oversize', `response is larger than the expected ${limit} bytes`);
      }
      arm();
      await onData(value);
    }
    return total;
  } catch (err) {
    if (abort.signal.aborted && abort.signal.reason instanceof FetchError)
      throw abort.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
}

/** Downloads chunks from a store over HTTP: ranges on blobs or chunk objects, several in flight. */
export class ChunkFetcher {
  private transport: 'ranges' | 'chunks';
  private fellBack = false;

  constructor(
    /** The model's folder in the store. */
    readonly base: URL,
    private readonly settings: FetchSettings,
    private readonly log: Logger,
  ) {
    this.transport = settings.transport;
  }

  /** Aborts a request with a timeout FetchError unless its response headers come in time. */
  private headerTimeout(url: URL, abort: AbortController): NodeJS.Timeout {
    return setTimeout(
      () =>
        abort.abort(
          new FetchError(
            'timeout',
            `no response from ${url.href} within ${this.settings.requestTimeoutMs}ms`,
          ),
        ),
      this.settings.requestTimeoutMs,
    );
  }

  /** GETs a small document (the manifest) with a size limit. */
  async getText(url: URL, limit: number, signal?: AbortSignal): Promise<string> {
    const abort = new AbortController();
    const onAbort = () => abort.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const headerTimer = this.headerTimeout(url, abort);
    try {
      const res = await fetch(url, { signal: abort.signal, redirect: 'follow' });
      clearTimeout(headerTimer);
      if (!res.ok) {
        await res.body?.cancel();
        throw new FetchError('http_status', `GET ${url.href}: HTTP ${res.status}`, res.status);
      }
      const parts: Uint8Array[] = [];
      await readBody(res, limit, this.settings.stallTimeoutMs, abort, (b) => {
        parts.push(b);
        return Promise.resolve();
      });
      return Buffer.concat(parts).toString('utf8');
    } catch (err) {
      throw this.wrap(err, abort, url);
    } finally {
      clearTimeout(headerTimer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Fetches every wanted chunk, verifying each one's SHA-256 before handing it to the sink. Adjacent
   * chunks of one blob are coalesced into one range request. Throws the first unrecoverable error.
   */
  async fetchAll(
    wanted: readonly WantedChunk[],
    sink: FetchSink,
    signal?: AbortSignal,
  ): Promise<void> {
    const queue: Work[] = this.plan(wanted);
    const abort = new AbortController();
    const onAbort = () => abort.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let failure: unknown;
    const requeue = (chunks: readonly WantedChunk[]) => {
      for (const c of chunks) queue.push({ chunks: [c] });
    };
    const worker = async () => {
      for (;;) {
        const work = queue.shift();
        if (!work || failure !== undefined) return;
        try {
          await this.fetchWithRetries(work, sink, abort.signal, requeue);
        } catch (err) {
          failure ??= err;
          abort.abort(err);
          return;
        }
      }
    };
    try {
      // Workers that find the queue empty end; a fallback may refill it, so run rounds until drained.
      while (queue.length > 0 && failure === undefined) {
        await Promise.all(Array.from({ length: Math.max(1, this.settings.parallel) }, worker));
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (failure !== undefined)
      throw failure instanceof Error ? failure : new FetchError('network', 'download failed');
  }

  private plan(wanted: readonly WantedChunk[]): Work[] {
    if (this.transport === 'chunks') return wanted.map((c) => ({ chunks: [c] }));
    const out: Work[] = [];
    let run: WantedChunk[] = [];
    let runBytes = 0;
    for (const c of wanted) {
      const last = run[run.length - 1];
      const adjacent =
        last !== undefined &&
        last.blobSha256 === c.blobSha256 &&
        last.blobOffset + last.length === c.blobOffset &&
        runBytes + c.length <= this.settings.maxRangeBytes;
      if (!adjacent && run.length > 0) {
        out.push({ chunks: run });
        run = [];
        runBytes = 0;
      }
      run.push(c);
      runBytes += c.length;
    }
    if (run.length > 0) out.push({ chunks: run });
    return out;
  }

  private async fetchWithRetries(
    work: Work,
    sink: FetchSink,
    signal: AbortSignal,
    requeue: (chunks: readonly WantedChunk[]) => void,
  ): Promise<void> {
    let remaining = work.chunks;
    let failures = 0;
    while (remaining.length > 0) {
      if (this.transport === 'chunks' && remaining.length > 1) {
        // After a fallback from ranges, spread the rest over all workers as single-chunk requests.
        requeue(remaining.slice(1));
        remaining = remaining.slice(0, 1);
      }
      try {
        remaining = await this.fetchOnce(remaining, sink, signal);
        failures = 0;
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        if (err instanceof FetchError && err.reason === 'range_unsupported') continue;
        // Local failures (disk full, I/O errors) are not the network's: retrying cannot help.
        if (!(err instanceof FetchError)) throw err;
        const rest = (err as { remaining?: readonly WantedChunk[] }).remaining;
        if (rest) remaining = rest;
        failures++;
        const reason = err instanceof FetchError ? err.reason : 'network';
        if (failures > this.settings.retries) throw err;
        sink.onRetry(reason);
        this.log.warn(
          {
            reason,
            attempt: failures,
            retries: this.settings.retries,
            err: (err as Error).message,
          },
          'chunk download failed; retrying',
        );
        await sleep(backoffDelay(failures - 1, 200, 5000), signal);
      }
    }
  }

  /** One request; returns the chunks still missing (a verified prefix may have been delivered). */
  private async fetchOnce(
    chunks: readonly WantedChunk[],
    sink: FetchSink,
    signal: AbortSignal,
  ): Promise<readonly WantedChunk[]> {
    const first = chunks[0];
    if (!first) return [];
    const useRange = this.transport === 'ranges';
    const batch = useRange ? chunks : [first];
    const url = new URL(
      useRange
        ? `blobs/${first.blobSha256.slice(0, 2)}/${first.blobSha256}`
        : `chunks/${first.sha256.slice(0, 2)}/${first.sha256}`,
      this.base,
    );
    const total = batch.reduce((n, c) => n + c.length, 0);
    const abort = new AbortController();
    const onAbort = () => abort.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const headerTimer = this.headerTimeout(url, abort);
    let delivered = 0;
    let received: number;
    let inBody = false;
    try {
      const headers: Record<string, string> = {};
      if (useRange) headers.range = `bytes=${first.blobOffset}-${first.blobOffset + total - 1}`;
      const res = await fetch(url, { signal: abort.signal, headers });
      clearTimeout(headerTimer);
      if (useRange && (res.status === 200 || res.status === 404 || res.status === 416)) {
        // The server ignores Range (200 would stream the whole file) or has no blobs: use chunk objects.
        abort.abort(new FetchError('range_unsupported', `HTTP ${res.status} to a range request`));
        await res.body?.cancel().catch(() => undefined);
        this.fallBack(res.status);
        throw new FetchError('range_unsupported', `HTTP ${res.status} to a range request`);
      }
      if (useRange ? res.status !== 206 : res.status !== 200) {
        await res.body?.cancel().catch(() => undefined);
        throw new FetchError('http_status', `GET ${url.href}: HTTP ${res.status}`, res.status);
      }
      if (useRange) {
        const range = /^bytes (\d+)-(\d+)\//.exec(res.headers.get('content-range') ?? '');
        if (!range || Number(range[1]) !== first.blobOffset)
          throw new FetchError(
            'http_status',
            `GET ${url.href}: unexpected Content-Range ${res.headers.get('content-range') ?? '(none)'}`,
          );
      }
      // Split the stream into chunks by their manifest lengths; hash each before it is written.
      inBody = true;
      let current = Buffer.allocUnsafe(batch[0]!.length);
      let filled = 0;
      received = await readBody(res, total, this.settings.stallTimeoutMs, abort, async (buf) => {
        sink.onBytes(buf.length);
        let off = 0;
        while (off < buf.length) {
          const chunk = batch[delivered]!;
          const take = Math.min(chunk.length - filled, buf.length - off);
          Buffer.from(buf.buffer, buf.byteOffset + off, take).copy(current, filled);
          filled += take;
          off += take;
          if (filled === chunk.length) {
            const sha = createHash('sha256').update(current).digest('hex');
            if (sha !== chunk.sha256) {
              throw new FetchError(
                'chunk_verify_failed',
                `chunk ${chunk.sha256.slice(0, 16)} from ${url.href} has SHA-256 ${sha.slice(0, 16)}: corrupted in transit or in the store`,
              );
            }
            try {
              await sink.write(chunk, current);
            } catch (err) {
              throw new LocalWriteError(err);
            }
            delivered++;
            filled = 0;
            const next = batch[delivered];
            if (next) current = Buffer.allocUnsafe(next.length);
          }
        }
      });
      if (received < total)
        throw new FetchError(
          'truncated',
          `GET ${url.href}: got ${received} of ${total} bytes (truncated response)`,
        );
      return chunks.slice(batch.length);
    } catch (err) {
      if (err instanceof LocalWriteError) throw err.cause;
      let e = this.wrap(err, abort, url);
      if (inBody && !(e instanceof FetchError)) {
        // The connection broke in the middle of the body: the response was cut short.
        e = new FetchError(
          'truncated',
          `GET ${url.href}: connection closed during the body (${(e as Error).message})`,
        );
      } else if (inBody && e instanceof FetchError && e.reason === 'network') {
        e = new FetchError(
          'truncated',
          `GET ${url.href}: connection closed during the body (${e.message})`,
        );
      }
      if (e instanceof FetchError && e.reason === 'range_unsupported') throw e;
      if (delivered > 0) {
        // Keep what verified; the retry starts at the first missing chunk.
        (e as { remaining?: readonly WantedChunk[] }).remaining = chunks.slice(delivered);
      }
      throw e;
    } finally {
      clearTimeout(headerTimer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  private fallBack(status: number): void {
    if (this.transport === 'chunks') return;
    this.transport = 'chunks';
    if (!this.fellBack) {
      this.fellBack = true;
      this.log.info(
        { status },
        'the store does not serve byte ranges of blobs; downloading chunk objects instead',
      );
    }
  }

  /** Whether range requests were abandoned for chunk objects. */
  get usedFallback(): boolean {
    return this.fellBack;
  }

  private wrap(err: unknown, abort: AbortController, url: URL): unknown {
    if (err instanceof FetchError) return err;
    if (abort.signal.aborted && abort.signal.reason instanceof FetchError)
      return abort.signal.reason;
    if (abort.signal.aborted) return abort.signal.reason ?? err;
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return new FetchError(
      'network',
      `GET ${url.href}: ${cause?.code ?? ''} ${cause?.message ?? (err as Error).message}`.trim(),
    );
  }
}
