import { mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fsyncDir } from '../../fsync-dir.js';
import { readExact } from '../../read-exact.js';
import {
  decodeRecordAt,
  encodeRecord,
  HEADER_BYTES,
  MAX_BODY_BYTES,
  MIN_RECORD_BYTES,
  recordSize,
  scanRecords,
  type LocatedRecord,
  type SpoolRecord,
} from './record-format.js';

/**
 * Segment file names: the id in decimal, zero-padded to 12 digits (wider once ids need it). Ids stay
 * exact doubles, so at most 16 digits; a name the writer cannot produce is left alone.
 */
const SEGMENT_RE = /^(\d{12,16})\.seg$/;
const MAX_SEGMENT_ID = Number.MAX_SAFE_INTEGER - 1;

/** File name of a segment. */
export function segmentName(id: number): string {
  return `${String(id).padStart(12, '0')}.seg`;
}

interface Segment {
  readonly id: number;
  readonly path: string;
  bytes: number;
  readonly seqs: number[];
  readonly tss: number[];
  readonly offsets: number[];
  readonly sizes: number[];
}

/**
 * Records lost on disk, found by recovery, between two stored records of the stream (`after` and
 * `before`; undefined at either end). `corrupt`: damaged bytes (inside a segment, at the end of a
 * sealed one, or records out of seq order); `missing`: segment files deleted between others;
 * `gap`: seqs skipped between two records of one segment with nothing damaged between them.
 */
export interface LogLoss {
  readonly kind: 'corrupt' | 'missing' | 'gap';
  readonly after: number | undefined;
  readonly before: number | undefined;
  /** What the loss counts when no stored record bounds it (at an end of the stream): per region. */
  readonly minRecords: number;
  /** Most records the lost bytes or segments could have held. */
  readonly maxRecords: number;
}

/** What recovery found when a log was opened. */
export interface LogRecovery {
  /** Records waiting to be sent. */
  readonly records: number;
  /** Bytes of unfinished writes cut off the end of the newest segment. */
  readonly truncatedBytes: number;
  /** Damaged regions skipped inside segments or cut off sealed ones. */
  readonly corruptRegions: number;
  /** Every loss, in stream order. */
  readonly losses: readonly LogLoss[];
  /** Entries named like segments that are not (a directory, an id no writer makes): left alone. */
  readonly foreign: readonly string[];
}

/**
 * One stream's append-only log: numbered segment files of framed records, an in-memory index of
 * every record, and a head (the oldest record not yet acknowledged by the broker).
 * Appends are fsynced per batch; fully acknowledged segments are deleted.
 */
export class SegmentLog {
  private segments: Segment[] = [];
  private active: { segment: Segment; handle: FileHandle } | undefined;
  private nextId = 1;
  /** Index of the head record: segments[headSeg].seqs[headRec]. */
  private headSeg = 0;
  private headRec = 0;
  private readonly ackedAhead = new Set<number>();
  /** Records handed to the broker and not yet acknowledged. */
  private readonly sending = new Set<number>();
  /** Records dropped (bound) while on their way: lost only if their PUBACK never comes. */
  private readonly droppedWhileSending = new Set<number>();
  private ops: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    private readonly segmentBytes: number,
    /** Highest seq acknowledged with every record before it. */
    private ackedThrough: number,
    private readonly beforeDelete: (lastSeq: number) => Promise<void>,
  ) {}

  /** Opens (and recovers) the log in `dir`; records with seq ≤ `ackedThrough` count as sent. */
  static async open(
    dir: string,
    options: {
      readonly segmentBytes: number;
      readonly ackedThrough: number;
      /**
       * Awaited before segment files holding records up to `lastSeq` are deleted, so the saved
       * send position covers them first (recovery then tells delivered records from lost ones).
       */
      readonly beforeDelete?: (lastSeq: number) => Promise<void>;
    },
  ): Promise<{ log: SegmentLog; recovery: LogRecovery }> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const log = new SegmentLog(
      dir,
      options.segmentBytes,
      options.ackedThrough,
      options.beforeDelete ?? (() => Promise.resolve()),
    );
    const recovery = await log.recover();
    return { log, recovery };
  }

  /** Largest segment file this log writes: a full segment, or one record larger than a segment. */
  private maxFileBytes(): number {
    return Math.max(this.segmentBytes, HEADER_BYTES + MAX_BODY_BYTES);
  }

  private async recover(): Promise<LogRecovery> {
    const foreign: string[] = [];
    const found: { id: number; path: string }[] = [];
    let highestId = 0;
    for (const entry of await readdir(this.dir, { withFileTypes: true })) {
      const id = Number(SEGMENT_RE.exec(entry.name)?.[1] ?? NaN);
      if (Number.isNaN(id)) continue;
      if (!Number.isSafeInteger(id) || id < 1 || id > MAX_SEGMENT_ID) {
        foreign.push(entry.name);
        continue;
      }
      // Never reuse the id of anything there, ours or not.
      highestId = Math.max(highestId, id);
      if (!entry.isFile() || entry.name !== segmentName(id)) {
        foreign.push(entry.name);
        continue;
      }
      found.push({ id, path: join(this.dir, entry.name) });
    }
    // By number: names grow past 12 digits, where text order is not number order.
    found.sort((x, y) => x.id - y.id);

    const losses: LogLoss[] = [];
    let truncatedBytes = 0;
    let corruptRegions = 0;
    /** Last stored record of the stream so far. */
    let prevSeq: number | undefined;
    /** Damage and missing segments not yet closed by a following stored record. */
    let damage = { regions: 0, bytes: 0 };
    let missing = 0;
    const perSegment = Math.max(1, Math.floor(this.segmentBytes / MIN_RECORD_BYTES));
    const closeLosses = (before: number | undefined) => {
      if (missing > 0) {
        losses.push({
          kind: 'missing',
          after: prevSeq,
          before,
          minRecords: missing,
          maxRecords: missing * perSegment,
        });
        missing = 0;
      }
      if (damage.regions > 0) {
        losses.push({
          kind: 'corrupt',
          after: prevSeq,
          before,
          minRecords: damage.regions,
          maxRecords: Math.max(damage.regions, Math.floor(damage.bytes / MIN_RECORD_BYTES)),
        });
        corruptRegions += damage.regions;
        damage = { regions: 0, bytes: 0 };
      }
    };
    const kept: Segment[] = [];
    let prevId: number | undefined;
    for (const [i, { id, path }] of found.entries()) {
      const sealed = i < found.length - 1;
      if (prevId !== undefined && id > prevId + 1) missing += id - prevId - 1;
      prevId = id;
      const { buf, fileBytes } = await readHead(path, this.maxFileBytes());
      const scan = scanRecords(buf);
      const records: LocatedRecord[] = [];
      let repaired = scan.damaged.length > 0;
      let d = 0;
      /** Whether prevSeq is in this segment (a gap across segments may span a restart). */
      let prevInSegment = false;
      for (const r of scan.records) {
        for (
          ;
          d < scan.damaged.length && (scan.damaged[d] as { offset: number }).offset < r.offset;
          d++
        ) {
          damage.regions++;
          damage.bytes += (scan.damaged[d] as { length: number }).length;
        }
        if (prevSeq !== undefined && r.seq <= prevSeq) {
          // Seqs only grow within a stream: a record at or below the one before it is damage.
          damage.regions++;
          damage.bytes += r.size;
          repaired = true;
          continue;
        }
        const quiet = missing === 0 && damage.regions === 0;
        if (quiet && prevInSegment && prevSeq !== undefined && r.seq > prevSeq + 1)
          losses.push({
            kind: 'gap',
            after: prevSeq,
            before: r.seq,
            minRecords: 0,
            // A segment never held more records than its size allows.
            maxRecords: perSegment,
          });
        closeLosses(r.seq);
        records.push(r);
        prevSeq = r.seq;
        prevInSegment = true;
      }
      const tail = fileBytes - scan.validLength;
      if (tail > 0) {
        if (sealed || fileBytes > buf.length) {
          // Every write to a sealed segment finished before the next segment was made: what does
          // not check out at its end was stored and is lost (as is anything past the size bound).
          damage.regions++;
          damage.bytes += tail;
          repaired = true;
        } else {
          // The newest segment: an unfinished write, never acknowledged. Cut off, durably.
          truncatedBytes += tail;
          await truncateDurably(path, scan.validLength);
        }
      }
      const offsets = repaired ? await rewriteSegment(path, buf, records) : undefined;
      kept.push(
        segmentOf(id, path, offsets ? offsets.bytes : scan.validLength, records, offsets?.at),
      );
    }
    closeLosses(undefined);

    // Acknowledged segments at the head go, as do empty ones at the end (their ids are reused, so
    // no hole in the numbering is left behind to look like a deleted segment later).
    let removed = false;
    const hasLive = (seg: Segment) => seg.seqs.some((q) => q > this.ackedThrough);
    while (kept.length > 0 && !hasLive(kept[0] as Segment)) {
      await rm((kept.shift() as Segment).path, { force: true });
      removed = true;
    }
    while (kept.length > 0 && (kept[kept.length - 1] as Segment).seqs.length === 0) {
      await rm((kept.pop() as Segment).path, { force: true });
      removed = true;
    }
    if (removed) await fsyncDir(this.dir);
    this.segments = kept;
    const lastKept = kept[kept.length - 1]?.id ?? 0;
    const highestForeign = Math.max(
      0,
      ...foreign.map((n) => Number(SEGMENT_RE.exec(n)?.[1] ?? 0)).filter(Number.isSafeInteger),
    );
    this.nextId = Math.max(lastKept, highestForeign, kept.length > 0 ? 0 : highestId) + 1;
    this.headSeg = 0;
    this.headRec = 0;
    this.skipAcked();
    return { records: this.pending(), truncatedBytes, corruptRegions, losses, foreign };
  }

  /** Lowest seq stored in the files (acknowledged or not); undefined when there is none. */
  lowestStoredSeq(): number | undefined {
    for (const seg of this.segments) if (seg.seqs.length > 0) return seg.seqs[0];
    return undefined;
  }

  /** Every seq stored in the files (acknowledged ones too), ascending. */
  storedSeqs(): number[] {
    return this.segments.flatMap((s) => s.seqs);
  }

  /** Serialises file operations (append, delete) so they never interleave. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.ops.then(fn, fn);
    this.ops = run.catch(() => undefined);
    return run;
  }

  /** Appends records (seq ascending, above every stored seq) and fsyncs before resolving. */
  append(records: readonly SpoolRecord[]): Promise<void> {
    return this.serial(async () => {
      let i = 0;
      while (i < records.length) {
        const active = await this.activeSegment(
          recordSize((records[i] as SpoolRecord).data.length),
        );
        const { segment, handle } = active;
        const bufs: Buffer[] = [];
        const added: LocatedRecord[] = [];
        let offset = segment.bytes;
        while (i < records.length) {
          const r = records[i] as SpoolRecord;
          const size = recordSize(r.data.length);
          if (added.length > 0 && offset + size > this.segmentBytes) break;
          const buf = encodeRecord(r);
          bufs.push(buf);
          added.push({ ...r, offset, size });
          offset += size;
          i++;
        }
        const data = Buffer.concat(bufs);
        try {
          await handle.write(data, 0, data.length, segment.bytes);
          await handle.datasync();
        } catch (err) {
          // Leave no half-written tail behind a failure (disk full): cut back to the last sync.
          await handle.truncate(segment.bytes).catch(() => undefined);
          throw err;
        }
        for (const r of added) {
          segment.seqs.push(r.seq);
          segment.tss.push(r.ts);
          segment.offsets.push(r.offset);
          segment.sizes.push(r.size);
        }
        segment.bytes = offset;
      }
    });
  }

  private async activeSegment(
    nextRecordBytes: number,
  ): Promise<{ segment: Segment; handle: FileHandle }> {
    const current = this.active;
    if (current && current.segment.bytes + nextRecordBytes <= this.segmentBytes) return current;
    if (current && current.segment.seqs.length === 0) return current;
    if (current) await current.handle.close();
    this.active = undefined;
    const id = this.nextId;
    const path = join(this.dir, segmentName(id));
    const handle = await open(path, 'wx', 0o600);
    // Taken only once the file exists: a failed create (disk full) leaves no hole in the ids.
    this.nextId++;
    await fsyncDir(this.dir);
    const segment: Segment = { id, path, bytes: 0, seqs: [], tss: [], offsets: [], sizes: [] };
    this.segments.push(segment);
    this.active = { segment, handle };
    return this.active;
  }

  /** Records not yet acknowledged. */
  pending(): number {
    let n = 0;
    for (let s = this.headSeg; s < this.segments.length; s++) {
      const seg = this.segments[s] as Segment;
      n += seg.seqs.length - (s === this.headSeg ? this.headRec : 0);
    }
    return n;
  }

  /** Bytes of segment files on disk. */
  bytes(): number {
    return this.segments.reduce((sum, s) => sum + s.bytes, 0);
  }

  /** Highest seq stored, acknowledged or not (0 when empty). */
  maxSeq(): number {
    for (let s = this.segments.length - 1; s >= 0; s--) {
      const seqs = (this.segments[s] as Segment).seqs;
      if (seqs.length > 0) return seqs[seqs.length - 1] as number;
    }
    return this.ackedThrough;
  }

  /** Highest seq acknowledged together with everything before it. */
  acked(): number {
    return this.ackedThrough;
  }

  /** Time of the oldest pending record. */
  oldestPendingTs(): number | undefined {
    const seg = this.segments[this.headSeg];
    return seg?.tss[this.headRec];
  }

  /** Seq and time of the pending records, oldest first, without reading the files. */
  *pendingIndex(): Generator<{ seq: number; ts: number }> {
    for (let s = this.headSeg; s < this.segments.length; s++) {
      const seg = this.segments[s] as Segment;
      for (let r = s === this.headSeg ? this.headRec : 0; r < seg.seqs.length; r++)
        yield { seq: seg.seqs[r] as number, ts: seg.tss[r] as number };
    }
  }

  /** Reads up to `limit` pending records with seq above `afterSeq`, oldest first. */
  async read(afterSeq: number, limit: number): Promise<SpoolRecord[]> {
    const out: SpoolRecord[] = [];
    // A snapshot: acknowledgements may delete segments from the index while the reads below wait.
    const segments = this.segments.slice(this.headSeg);
    const headRec = this.headRec;
    for (let s = 0; s < segments.length && out.length < limit; s++) {
      const seg = segments[s] as Segment;
      let first = s === 0 ? headRec : 0;
      while (first < seg.seqs.length && (seg.seqs[first] as number) <= afterSeq) first++;
      if (first >= seg.seqs.length) continue;
      const last = Math.min(seg.seqs.length, first + (limit - out.length)) - 1;
      const start = seg.offsets[first] as number;
      const end = (seg.offsets[last] as number) + (seg.sizes[last] as number);
      const buf = await this.readRange(seg, start, end - start);
      if (!buf) continue;
      for (let r = first; r <= last; r++) {
        const rec = decodeRecordAt(buf, (seg.offsets[r] as number) - start);
        out.push({ seq: rec.seq, ts: rec.ts, flags: rec.flags, data: rec.data });
      }
    }
    return out;
  }

  private async readRange(
    seg: Segment,
    start: number,
    length: number,
  ): Promise<Buffer | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(seg.path, 'r');
    } catch (err) {
      // The segment was dropped (size bound) while this read was on its way.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      return await readExact(handle, start, length);
    } finally {
      await handle.close();
    }
  }

  /** Notes that a record is on its way to the broker. */
  markSending(seq: number): void {
    this.sending.add(seq);
  }

  /**
   * The connection dropped: nothing is on its way any more. Returns how many records were dropped
   * by the bound while on their way and never acknowledged (now counted as lost).
   */
  releaseSending(): number {
    const lost = this.droppedWhileSending.size;
    this.droppedWhileSending.clear();
    this.sending.clear();
    return lost;
  }

  /** Marks one record acknowledged; the head moves over every contiguous acknowledged record. */
  ack(seq: number): void {
    this.sending.delete(seq);
    // Delivered after all, though the bound dropped it meanwhile: not lost.
    if (this.droppedWhileSending.delete(seq)) return;
    if (seq <= this.ackedThrough) return;
    this.ackedAhead.add(seq);
    this.skipAcked();
    this.removeSpent();
  }

  /** Drops pending records from the head while `expired` says so; returns how many. */
  discardWhile(expired: (seq: number, ts: number) => boolean): number {
    let n = 0;
    for (;;) {
      const seg = this.segments[this.headSeg];
      const head = seg?.seqs[this.headRec];
      if (seg === undefined || head === undefined) break;
      if (!expired(head, seg.tss[this.headRec] as number)) break;
      if (!this.ackedAhead.delete(head)) n++;
      this.ackedThrough = head;
      this.advance();
      this.skipAcked();
    }
    this.removeSpent();
    return n;
  }

  private skipAcked(): void {
    for (;;) {
      const seg = this.segments[this.headSeg];
      if (!seg) break;
      const head = seg.seqs[this.headRec];
      if (head === undefined) {
        if (this.headSeg < this.segments.length - 1) {
          this.headSeg++;
          this.headRec = 0;
          continue;
        }
        break;
      }
      if (head <= this.ackedThrough) {
        this.advance();
        continue;
      }
      if (!this.ackedAhead.delete(head)) break;
      this.ackedThrough = head;
      this.advance();
    }
  }

  private advance(): void {
    this.headRec++;
    const seg = this.segments[this.headSeg];
    if (seg && this.headRec >= seg.seqs.length && this.headSeg < this.segments.length - 1) {
      this.headSeg++;
      this.headRec = 0;
    }
  }

  /** Deletes segments whose records are all acknowledged (the active one too, when drained). */
  private removeSpent(): void {
    const spent: Segment[] = [];
    while (this.segments.length > 0) {
      const seg = this.segments[0] as Segment;
      if (seg === this.active?.segment) break;
      if (this.headSeg === 0 && this.headRec < seg.seqs.length) break;
      spent.push(seg);
      this.segments.shift();
      if (this.headSeg > 0) this.headSeg--;
      else this.headRec = 0;
    }
    if (spent.length > 0) void this.deleteSegments(spent);
    const active = this.active?.segment;
    if (active && this.segments[0] === active && this.headRec >= active.seqs.length) {
      // Decided inside the serial queue: an append queued before this may still add records.
      void this.serial(async () => {
        const current = this.active;
        if (!current || this.segments[0] !== current.segment) return;
        if (this.headSeg !== 0 || this.headRec < current.segment.seqs.length) return;
        await current.handle.close();
        this.active = undefined;
        this.segments.shift();
        this.headRec = 0;
        await this.beforeDelete(this.ackedThrough);
        await rm(current.segment.path, { force: true });
        await fsyncDir(this.dir);
      });
    }
  }

  /**
   * Deletes the oldest segment whatever its state; returns how many pending records it held that
   * are lost (records on their way to the broker count only if their PUBACK never comes).
   */
  async dropOldestSegment(): Promise<{ dropped: number; bytes: number } | undefined> {
    const seg = this.segments[0];
    if (!seg) return undefined;
    let dropped = 0;
    for (const seq of seg.seqs) {
      if (seq <= this.ackedThrough || this.ackedAhead.has(seq)) continue;
      if (this.sending.has(seq)) this.droppedWhileSending.add(seq);
      else dropped++;
    }
    const last = seg.seqs[seg.seqs.length - 1];
    this.segments.shift();
    this.headSeg = 0;
    this.headRec = 0;
    if (last !== undefined) this.ackedThrough = Math.max(this.ackedThrough, last);
    for (const s of [...this.ackedAhead]) if (s <= this.ackedThrough) this.ackedAhead.delete(s);
    this.skipAcked();
    await this.deleteSegments([seg]);
    return { dropped, bytes: seg.bytes };
  }

  /** Number of segments (for the bound: a log with none has nothing to give up). */
  segmentCount(): number {
    return this.segments.length;
  }

  /** Newest record time of the oldest segment (age expiry drops whole segments past the limit). */
  oldestSegmentNewestTs(): number | undefined {
    const seg = this.segments[0];
    // An empty segment holds nothing to keep: as old as can be.
    return seg ? (seg.tss[seg.tss.length - 1] ?? -Infinity) : undefined;
  }

  private deleteSegments(spent: readonly Segment[]): Promise<void> {
    return this.serial(async () => {
      await this.beforeDelete(this.ackedThrough);
      for (const seg of spent) {
        if (this.active?.segment === seg) {
          await this.active.handle.close();
          this.active = undefined;
        }
        await rm(seg.path, { force: true });
      }
      await fsyncDir(this.dir);
    });
  }

  /** Waits for pending file operations and closes the active segment. */
  async close(): Promise<void> {
    await this.serial(async () => {
      if (this.active) await this.active.handle.close();
      this.active = undefined;
    });
  }
}

function segmentOf(
  id: number,
  path: string,
  bytes: number,
  records: readonly LocatedRecord[],
  offsets?: readonly number[],
): Segment {
  return {
    id,
    path,
    bytes,
    seqs: records.map((r) => r.seq),
    tss: records.map((r) => r.ts),
    offsets: offsets ? [...offsets] : records.map((r) => r.offset),
    sizes: records.map((r) => r.size),
  };
}

/** Reads at most `limit` bytes of a file; `fileBytes` is its whole size. */
async function readHead(path: string, limit: number): Promise<{ buf: Buffer; fileBytes: number }> {
  const handle = await open(path, 'r');
  try {
    const fileBytes = (await handle.stat()).size;
    const buf = Buffer.alloc(Math.min(fileBytes, limit));
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    return { buf: buf.subarray(0, bytesRead), fileBytes };
  } finally {
    await handle.close();
  }
}

/** Cuts a file to `length` and flushes that, so a power loss cannot bring the cut bytes back. */
async function truncateDurably(path: string, length: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.truncate(length);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/**
 * Rewrites a segment with only its good records (temporary file, fsync, rename, directory fsync),
 * so damage that was counted once is not found and counted again at the next start.
 */
async function rewriteSegment(
  path: string,
  buf: Buffer,
  records: readonly LocatedRecord[],
): Promise<{ bytes: number; at: number[] }> {
  const at: number[] = [];
  let bytes = 0;
  for (const r of records) {
    at.push(bytes);
    bytes += r.size;
  }
  const tmp = `${path}.repair`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(
      Buffer.concat(records.map((r) => buf.subarray(r.offset, r.offset + r.size))),
    );
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
  return { bytes, at };
}
