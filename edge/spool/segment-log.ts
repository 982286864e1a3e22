import { mkdir, open, readdir, readFile, rm, truncate, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import {
  decodeRecordAt,
  encodeRecord,
  recordSize,
  scanRecords,
  type LocatedRecord,
  type SpoolRecord,
} from './record-format.js';

const SEGMENT_RE = /^(\d{12})\.seg$/;

interface Segment {
  readonly id: number;
  readonly path: string;
  bytes: number;
  readonly seqs: number[];
  readonly tss: number[];
  readonly offsets: number[];
  readonly sizes: number[];
}

/** What recovery found when a log was opened. */
export interface LogRecovery {
  /** Records waiting to be sent. */
  readonly records: number;
  /** Bytes of unfinished writes cut off the end of segments. */
  readonly truncatedBytes: number;
  /** Damaged regions skipped inside segments (each lost at least one record). */
  readonly corruptRegions: number;
}

/** Flushes a directory entry change (new or removed segment) to disk. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
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
  ) {}

  /** Opens (and recovers) the log in `dir`; records with seq ≤ `ackedThrough` count as sent. */
  static async open(
    dir: string,
    options: { readonly segmentBytes: number; readonly ackedThrough: number },
  ): Promise<{ log: SegmentLog; recovery: LogRecovery }> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const log = new SegmentLog(dir, options.segmentBytes, options.ackedThrough);
    const recovery = await log.recover();
    return { log, recovery };
  }

  private async recover(): Promise<LogRecovery> {
    const names = (await readdir(this.dir)).filter((n) => SEGMENT_RE.test(n)).sort();
    let truncatedBytes = 0;
    let corruptRegions = 0;
    let removed = false;
    for (const name of names) {
      const id = Number(SEGMENT_RE.exec(name)?.[1]);
      this.nextId = Math.max(this.nextId, id + 1);
      const path = join(this.dir, name);
      const buf = await readFile(path);
      const scan = scanRecords(buf);
      corruptRegions += scan.corruptRegions;
      if (scan.validLength < buf.length) {
        truncatedBytes += buf.length - scan.validLength;
        await truncate(path, scan.validLength);
      }
      const live = scan.records.filter((r) => r.seq > this.ackedThrough);
      if (live.length === 0) {
        await rm(path, { force: true });
        removed = true;
        continue;
      }
      this.segments.push(segmentOf(id, path, scan.validLength, scan.records));
    }
    if (removed) await syncDir(this.dir);
    this.headSeg = 0;
    this.headRec = 0;
    this.skipAcked();
    return { records: this.pending(), truncatedBytes, corruptRegions };
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
    const id = this.nextId++;
    const path = join(this.dir, `${String(id).padStart(12, '0')}.seg`);
    const handle = await open(path, 'wx', 0o600);
    await syncDir(this.dir);
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
      const buf = Buffer.allocUnsafe(length);
      const { bytesRead } = await handle.read(buf, 0, length, start);
      return bytesRead === length ? buf : undefined;
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
        await rm(current.segment.path, { force: true });
        await syncDir(this.dir);
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
    return seg ? seg.tss[seg.tss.length - 1] : undefined;
  }

  private deleteSegments(spent: readonly Segment[]): Promise<void> {
    return this.serial(async () => {
      for (const seg of spent) {
        if (this.active?.segment === seg) {
          await this.active.handle.close();
          this.active = undefined;
        }
        await rm(seg.path, { force: true });
      }
      await syncDir(this.dir);
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
): Segment {
  return {
    id,
    path,
    bytes,
    seqs: records.map((r) => r.seq),
    tss: records.map((r) => r.ts),
    offsets: records.map((r) => r.offset),
    sizes: records.map((r) => r.size),
  };
}
