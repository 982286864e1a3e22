import { mkdir, open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../../agent/core/clock.js';
import { errorMessage } from '../../../agent/core/errors.js';
import { recordSize, type SpoolRecord } from './record-format.js';
import { SeqRanges } from './seq-ranges.js';
import { fsyncDir } from '../../fsync-dir.js';
import { SegmentLog, type LogLoss } from './segment-log.js';

/** Streams the spool keeps apart: over the bound, telemetry is given up before any event. */
export type SpoolStream = 'telemetry' | 'events';

/** Streams in the order the bound gives them up. */
const DROP_ORDER: readonly SpoolStream[] = ['telemetry', 'events'];

/**
 * Why records left the spool without being sent (the `reason` of the drop counter): `size` and
 * `age` bounds, `corrupt` damaged on disk, `missing` gone from disk (a deleted segment file or
 * records cut out between others), `write_error` not writable.
 */
export type DropReason = 'size' | 'age' | 'corrupt' | 'missing' | 'write_error';

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
/** A cursor file larger than this is not ours: read no more of it. */
const MAX_CURSOR_BYTES = 256 * 1024;

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
  private saving: Promise<void> = Promise.resolve();
  /** Send positions as last saved in cursor.json. */
  private readonly savedAcked: Record<SpoolStream, number> = { telemetry: 0, events: 0 };
  private appending: Promise<unknown> = Promise.resolve();
  private closed = false;
  private logs!: Readonly<Record<SpoolStream, SegmentLog>>;

  private constructor(
    private readonly options: SpoolOptions,
    /**
     * Seqs given up and counted already (refused by the bound, not writable, found lost by an
     * earlier recovery): a later recovery does not count them again. Saved in cursor.json.
     */
    private readonly accounted: SeqRanges,
  ) {}

  /** Opens the spool directory, recovering from any crash; reports what recovery found. */
  static async open(options: SpoolOptions): Promise<Spool> {
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    const cursor = await readCursor(join(options.dir, CURSOR_FILE), options.log);
    const segmentBytes =
      options.segmentBytes ??
      Math.min(16 * 1024 * 1024, Math.max(4096, Math.floor(options.maxBytes / 16)));
    const spool = new Spool(options, SeqRanges.from(cursor.accounted));
    const logs = {} as Record<SpoolStream, SegmentLog>;
    const losses = {} as Record<SpoolStream, readonly LogLoss[]>;
    for (const stream of DROP_ORDER) {
      spool.savedAcked[stream] = cursor[stream] ?? 0;
      const { log, recovery } = await SegmentLog.open(join(options.dir, stream), {
        segmentBytes,
        ackedThrough: cursor[stream] ?? 0,
        beforeDelete: (lastSeq) => spool.coverBeforeDelete(stream, lastSeq),
      });
      logs[stream] = log;
      losses[stream] = recovery.losses;
      if (recovery.foreign.length > 0) {
        options.log.warn(
          { stream, entries: recovery.foreign.slice(0, 10) },
          'spool: entries named like segments that no gpulse wrote are left alone; remove them',
        );
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
    spool.logs = logs;
    spool.countLosses(losses);
    await spool.expire();
    return spool;
  }

  /**
   * Counts what recovery found lost. A loss between two stored records is the seqs between them
   * that neither stream holds, the other stream did not acknowledge and nothing counted before, at
   * most what the lost bytes or segments could hold (a duplicate or misplaced record loses none);
   * one at either end of a stream counts one per damaged region.
   * Damage and deleted segments claim their seqs first, then plain gaps take what is left, so a
   * message missing from one stream and skipped in the other counts once.
   */
  private countLosses(found: Readonly<Record<SpoolStream, readonly LogLoss[]>>): void {
    const stored = {
      telemetry: this.logs.telemetry.storedSeqs(),
      events: this.logs.events.storedSeqs(),
    };
    const counted: Record<SpoolStream, Record<'corrupt' | 'missing', number>> = {
      telemetry: { corrupt: 0, missing: 0 },
      events: { corrupt: 0, missing: 0 },
    };
    const all = DROP_ORDER.flatMap((stream) => found[stream].map((loss) => ({ stream, loss })));
    all.sort((x, y) => Number(x.loss.kind === 'gap') - Number(y.loss.kind === 'gap'));
    for (const { stream, loss } of all) {
      const reason = loss.kind === 'corrupt' ? 'corrupt' : 'missing';
      // At either end of the stream nothing bounds the seqs: count what the loss must hold.
      if (loss.after === undefined || loss.before === undefined) {
        counted[stream][reason] += loss.minRecords;
        continue;
      }
      const lo = loss.after + 1;
      const hi = loss.before - 1;
      // Counted at an earlier start, refused at the time, or claimed above: not a new loss.
      if (hi >= lo && this.accounted.covers(lo, hi)) continue;
      const other: SpoolStream = stream === 'telemetry' ? 'events' : 'telemetry';
      const unexplained = this.accounted.countOutside(
        Math.max(lo, this.logs[other].acked() + 1),
        hi,
        (a, b) => countBetween(stored[other], a, b),
      );
      // Every lost record had a seq in the range no stream explains: that bounds the count.
      counted[stream][reason] += Math.min(unexplained, loss.maxRecords);
      this.accounted.add(lo, hi);
    }
    for (const stream of DROP_ORDER) {
      const { corrupt, missing } = counted[stream];
      if (corrupt > 0) {
        this.options.log.warn(
          { stream, messages: corrupt },
          'spool: damaged records skipped (disk errors?); the messages in them are lost',
        );
        this.options.onDrop?.('corrupt', corrupt, stream);
      }
      if (missing > 0) {
        this.options.log.warn(
          { stream, messages: missing },
          'spool: messages missing from disk (a segment file deleted, or records cut out); they are lost',
        );
        this.options.onDrop?.('missing', missing, stream);
      }
    }
    if (this.accounted.size > 0) this.markCursorDirty();
  }

  /** Saves the send position before a segment with records up to `lastSeq` is deleted. */
  private async coverBeforeDelete(stream: SpoolStream, lastSeq: number): Promise<void> {
    if (this.savedAcked[stream] >= lastSeq) return;
    this.cursorDirty = true;
    await this.saveCursor();
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
    for (const r of rejected) this.accounted.add(r.seq, r.seq);
    if (rejected.length > 0) this.markCursorDirty();
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

  /** Writes cursor.json (temporary file, fsync, rename, directory fsync); saves never overlap. */
  private saveCursor(): Promise<void> {
    const run = this.saving.then(() => this.doSaveCursor());
    this.saving = run;
    return run;
  }

  private async doSaveCursor(): Promise<void> {
    if (!this.cursorDirty) return;
    this.cursorDirty = false;
    const acked = { telemetry: this.logs.telemetry.acked(), events: this.logs.events.acked() };
    // Ranges below every stored record can never sit between two of them again.
    this.accounted.pruneBelow(
      Math.min(...DROP_ORDER.map((s) => this.logs[s].lowestStoredSeq() ?? Number.MAX_SAFE_INTEGER)),
    );
    const body = JSON.stringify({ v: 1, ...acked, accounted: this.accounted.toJSON() });
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
      await fsyncDir(this.options.dir);
      for (const s of DROP_ORDER) this.savedAcked[s] = acked[s];
    } catch (err) {
      this.cursorDirty = true;
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

/** What cursor.json holds. */
interface Cursor extends Partial<Record<SpoolStream, number>> {
  readonly accounted?: unknown;
}

async function readCursor(path: string, log: Logger): Promise<Cursor> {
  let text: string;
  try {
    const handle = await open(path, 'r');
    try {
      const buf = Buffer.alloc(MAX_CURSOR_BYTES);
      const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
      text = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return {};
  }
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    const out: { -readonly [K in keyof Cursor]: Cursor[K] } = { accounted: parsed.accounted };
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

/** How many of the ascending `sorted` lie in [lo, hi]. */
function countBetween(sorted: readonly number[], lo: number, hi: number): number {
  return lowerBound(sorted, hi + 1) - lowerBound(sorted, lo);
}

function lowerBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as number) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
