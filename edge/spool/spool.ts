import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../agent/clock.js';
import { errorMessage } from '../../agent/errors.js';
import { recordSize, type SpoolRecord } from './record-format.js';
import { SegmentLog, syncDir } from './segment-log.js';

/** Streams the spool keeps apart: over the bound, telemetry is given up before any event. */
export type SpoolStream = 'telemetry' | 'events';

/** Streams in the order the bound gives them up. */
const DROP_ORDER: readonly SpoolStream[] = ['telemetry', 'events'];

/** Why records left the spool without being sent (the `reason` of the drop counter). */
export type DropReason = 'size' | 'age' | 'corrupt' | 'write_error';

/** A stored message with the stream it belongs to. */
export interface StreamRecord extends SpoolRecord {
  readonly stream: SpoolStream;
}

/** Limits and I/O of the spool. */
export interface SpoolOptions {
  readonly dir: string;
  /** Bytes of segment files, all streams together (default 256 MiB). */
  readonly maxBytes: number;
  /** Records older than this are dropped (default 7 days), milliseconds. */
  readonly maxAgeMs: number;
  /** Segment file size; default maxBytes/16 within 4 KiB–16 MiB (the bound drops whole segments). */
  readonly segmentBytes?: number;
  readonly clock: Clock;
  readonly log: Logger;
  /** Called for every record given up, with why. */
  readonly onDrop?: (reason: DropReason, count: number, stream: SpoolStream) => void;
}

/** What the spool holds now. */
export interface SpoolStats {
  readonly bytes: number;
  readonly pending: number;
  /** Time of the oldest pending record (undefined when empty). */
  readonly oldestTs: number | undefined;
}

const CURSOR_FILE = 'cursor.json';
const CURSOR_SAVE_MS = 1000;

/**
 * Durable store-and-forward spool of one node: a segment log per stream (telemetry, events), each
 * record fsynced before `append` resolves, replayed in the node's seq order across both streams.
 * Bounded by bytes (oldest telemetry segment first, events last) and by age; every drop counted.
 * Acknowledged positions are saved in `cursor.json` at most once a second: after a crash the last
 * second of acknowledged records may be sent again (at-least-once), never lost.
 */
export class Spool {
  private cursorTimer: TimerHandle | undefined;
  private cursorDirty = false;
  private appending: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly options: SpoolOptions,
    private readonly logs: Readonly<Record<SpoolStream, SegmentLog>>,
  ) {}

  /** Opens the spool directory, recovering from any crash; reports what recovery found. */
  static async open(options: SpoolOptions): Promise<Spool> {
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    const cursor = await readCursor(join(options.dir, CURSOR_FILE), options.log);
    const segmentBytes =
      options.segmentBytes ??
      Math.min(16 * 1024 * 1024, Math.max(4096, Math.floor(options.maxBytes / 16)));
    const logs = {} as Record<SpoolStream, SegmentLog>;
    for (const stream of DROP_ORDER) {
      const { log, recovery } = await SegmentLog.open(join(options.dir, stream), {
        segmentBytes,
        ackedThrough: cursor[stream] ?? 0,
      });
      logs[stream] = log;
      if (recovery.corruptRegions > 0) {
        options.log.warn(
          { stream, regions: recovery.corruptRegions },
          'spool: skipped damaged records (disk errors?); each damaged region lost at least one message',
        );
        options.onDrop?.('corrupt', recovery.corruptRegions, stream);
      }
      if (recovery.truncatedBytes > 0) {
        options.log.info(
          { stream, bytes: recovery.truncatedBytes },
          'spool: cut off an unfinished write from before a crash (it was never acknowledged)',
        );
      }
      if (recovery.records > 0) {
        options.log.info(
          { stream, records: recovery.records },
          'spool: messages waiting to be sent',
        );
      }
    }
    const spool = new Spool(options, logs);
    await spool.expire();
    return spool;
  }

  /**
   * Stores records durably (fsync) before resolving; records must come in ascending seq order.
   * Makes room under the byte bound first. Resolves with the records that could not be stored.
   */
  append(records: readonly StreamRecord[]): Promise<StreamRecord[]> {
    const run = this.appending.then(() => this.doAppend(records));
    this.appending = run.catch(() => undefined);
    return run;
  }

  private async doAppend(input: readonly StreamRecord[]): Promise<StreamRecord[]> {
    if (this.closed) return [...input];
    const incoming = [...input];
    const rejected: StreamRecord[] = [];
    await this.makeRoom(incoming, rejected);
    for (const stream of DROP_ORDER) {
      const batch = incoming.filter((r) => r.stream === stream);
      if (batch.length === 0) continue;
      try {
        await this.logs[stream].append(batch);
      } catch (err) {
        this.options.log.error(
          { stream, err: errorMessage(err), dir: this.options.dir },
          'spool: cannot write; messages dropped (is the disk full or read-only? see mqtt.spool.dir)',
        );
        this.options.onDrop?.('write_error', batch.length, stream);
        rejected.push(...batch);
      }
    }
    return rejected;
  }

  /** Drops the oldest telemetry (stored, then incoming) until the bound holds; events go last. */
  private async makeRoom(incoming: StreamRecord[], rejected: StreamRecord[]): Promise<void> {
    const need = () => incoming.reduce((sum, r) => sum + recordSize(r.data.length), 0);
    while (this.bytes() + need() > this.options.maxBytes) {
      let freed = false;
      for (const stream of DROP_ORDER) {
        const log = this.logs[stream];
        if (log.segmentCount() > 0) {
          const result = await log.dropOldestSegment();
          if (result && result.dropped > 0) this.options.onDrop?.('size', result.dropped, stream);
          freed = true;
          break;
        }
        const idx = incoming.findIndex((r) => r.stream === stream);
        if (idx >= 0) {
          const [r] = incoming.splice(idx, 1);
          if (r) {
            rejected.push(r);
            this.options.onDrop?.('size', 1, stream);
          }
          freed = true;
          break;
        }
      }
      if (!freed) break;
    }
    this.markCursorDirty();
  }

  /** Up to `limit` pending records with seq above `afterSeq`, in seq order across streams. */
  async read(afterSeq: number, limit: number): Promise<StreamRecord[]> {
    await this.expire();
    if (this.closed) return [];
    const merged: StreamRecord[] = [];
    for (const stream of DROP_ORDER) {
      const records = await this.logs[stream].read(afterSeq, limit);
      for (const r of records) merged.push({ ...r, stream });
    }
    merged.sort((a, b) => a.seq - b.seq);
    return merged.slice(0, limit);
  }

  /** Notes that a record was handed to the broker (see releaseSending). */
  markSending(stream: SpoolStream, seq: number): void {
    this.logs[stream].markSending(seq);
  }

  /** The connection changed: records dropped by the bound while on their way now count as lost. */
  releaseSending(): void {
    for (const stream of DROP_ORDER) {
      const lost = this.logs[stream].releaseSending();
      if (lost > 0) this.options.onDrop?.('size', lost, stream);
    }
  }

  /** Marks a record delivered (PUBACK); it is deleted with its segment once all before it are. */
  ack(stream: SpoolStream, seq: number): void {
    this.logs[stream].ack(seq);
    this.markCursorDirty();
  }

  /** Drops records older than the age limit (whole segments, and expired records at the head). */
  expire(): Promise<void> {
    // In the append queue: dropping segments must not interleave with making room for a batch.
    const run = this.appending.then(() => this.doExpire());
    this.appending = run.catch(() => undefined);
    return run;
  }

  private async doExpire(): Promise<void> {
    if (this.closed) return;
    const limit = this.options.clock.now() - this.options.maxAgeMs;
    for (const stream of DROP_ORDER) {
      const log = this.logs[stream];
      for (;;) {
        const newest = log.oldestSegmentNewestTs();
        if (newest === undefined || newest >= limit || log.segmentCount() <= 1) break;
        const result = await log.dropOldestSegment();
        if (result && result.dropped > 0) this.options.onDrop?.('age', result.dropped, stream);
      }
      const dropped = log.discardWhile((_seq, ts) => ts < limit);
      if (dropped > 0) this.options.onDrop?.('age', dropped, stream);
    }
    this.markCursorDirty();
  }

  /** Records waiting, bytes on disk and the oldest record's time. */
  stats(): SpoolStats {
    let oldestTs: number | undefined;
    let pending = 0;
    for (const stream of DROP_ORDER) {
      const log = this.logs[stream];
      pending += log.pending();
      const ts = log.oldestPendingTs();
      if (ts !== undefined && (oldestTs === undefined || ts < oldestTs)) oldestTs = ts;
    }
    return { bytes: this.bytes(), pending, oldestTs };
  }

  /** True when nothing waits to be sent. */
  isEmpty(): boolean {
    return DROP_ORDER.every((s) => this.logs[s].pending() === 0);
  }

  /** Highest seq the spool has seen (so a lost sequence file never makes seq go backwards). */
  maxSeq(): number {
    return Math.max(...DROP_ORDER.map((s) => this.logs[s].maxSeq()));
  }

  /** Bytes of segment files on disk. */
  bytes(): number {
    return DROP_ORDER.reduce((sum, s) => sum + this.logs[s].bytes(), 0);
  }

  private markCursorDirty(): void {
    this.cursorDirty = true;
    if (this.cursorTimer || this.closed) return;
    this.cursorTimer = this.options.clock.setTimeout(() => {
      this.cursorTimer = undefined;
      void this.saveCursor();
    }, CURSOR_SAVE_MS);
    this.cursorTimer.unref?.();
  }

  private async saveCursor(): Promise<void> {
    if (!this.cursorDirty) return;
    this.cursorDirty = false;
    const body = JSON.stringify({
      v: 1,
      telemetry: this.logs.telemetry.acked(),
      events: this.logs.events.acked(),
    });
    const path = join(this.options.dir, CURSOR_FILE);
    try {
      const tmp = `${path}.tmp`;
      const handle = await open(tmp, 'w', 0o600);
      try {
        await handle.writeFile(body);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, path);
      await syncDir(this.options.dir);
    } catch (err) {
      this.options.log.warn(
        { err: errorMessage(err) },
        'spool: cannot save the send position; a restart may send some messages twice',
      );
    }
  }

  /** Waits for writes, saves the send position and closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.appending;
    this.closed = true;
    if (this.cursorTimer) this.options.clock.clearTimeout(this.cursorTimer);
    this.cursorTimer = undefined;
    this.cursorDirty = true;
    await this.saveCursor();
    await Promise.all(DROP_ORDER.map((s) => this.logs[s].close()));
  }
}

async function readCursor(
  path: string,
  log: Logger,
): Promise<Partial<Record<SpoolStream, number>>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return {};
  }
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    const out: Partial<Record<SpoolStream, number>> = {};
    for (const s of DROP_ORDER) {
      const v = parsed[s];
      if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) out[s] = v;
    }
    return out;
  } catch {
    log.warn({ path }, 'spool: unreadable send position; every stored message will be sent again');
    return {};
  }
}
