/**
 * On-disk framing of spool records. Hand-written: no maintained npm package offers a framed,
 * checksummed append log with torn-write recovery for Node; the format is 30 lines.
 *
 * Every record (little endian):
 *
 *   offset size
 *   0      4    magic 0x4C535047 ("GPSL"): lets recovery find the next record after damage
 *   4      4    body length N
 *   8      4    CRC-32 of the body (zlib.crc32)
 *   12     N    body:
 *                 0  1  format version (1)
 *                 1  1  flags (bit 0: data is zlib-deflated)
 *                 2  2  reserved (0)
 *                 4  8  seq (u64)
 *                 12 8  ts, Unix milliseconds (f64)
 *                 20 …  data
 *
 * A write cut short by a crash leaves a record whose length or CRC does not check out; recovery
 * truncates it (it was never acknowledged: the fsync that acknowledges a batch came after it).
 */
import { crc32 } from 'node:zlib';

/** First four bytes of every record. */
export const RECORD_MAGIC = 0x4c535047;
/** Bytes before the body. */
export const HEADER_BYTES = 12;
/** Bytes of the body before the data. */
export const BODY_HEADER_BYTES = 20;
/** Larger bodies are treated as damage (a message is < 64 KB; this leaves wide room). */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;
const FORMAT_VERSION = 1;

/** Record flag: the data is deflated JSON. */
export const FLAG_DEFLATE = 1;

/** One stored message. */
export interface SpoolRecord {
  readonly seq: number;
  readonly ts: number;
  readonly flags: number;
  readonly data: Buffer;
}

/** Encodes one record with its frame. */
export function encodeRecord(r: SpoolRecord): Buffer {
  const bodyLength = BODY_HEADER_BYTES + r.data.length;
  const buf = Buffer.allocUnsafe(HEADER_BYTES + bodyLength);
  buf.writeUInt32LE(RECORD_MAGIC, 0);
  buf.writeUInt32LE(bodyLength, 4);
  buf.writeUInt8(FORMAT_VERSION, HEADER_BYTES);
  buf.writeUInt8(r.flags & 0xff, HEADER_BYTES + 1);
  buf.writeUInt16LE(0, HEADER_BYTES + 2);
  buf.writeBigUInt64LE(BigInt(r.seq), HEADER_BYTES + 4);
  buf.writeDoubleLE(r.ts, HEADER_BYTES + 12);
  r.data.copy(buf, HEADER_BYTES + BODY_HEADER_BYTES);
  buf.writeUInt32LE(crc32(buf.subarray(HEADER_BYTES)), 8);
  return buf;
}

/** Size of a record's frame on disk. */
export function recordSize(dataBytes: number): number {
  return HEADER_BYTES + BODY_HEADER_BYTES + dataBytes;
}

/** A record found in a segment, with where it is. */
export interface LocatedRecord extends SpoolRecord {
  readonly offset: number;
  readonly size: number;
}

/** Bytes that are not a valid record, found between valid ones. */
export interface DamagedRegion {
  readonly offset: number;
  readonly length: number;
}

/** What a scan of a segment found. */
export interface ScanResult {
  readonly records: LocatedRecord[];
  /** Length of the valid prefix; bytes after it are an unfinished write to cut off. */
  readonly validLength: number;
  /** Damaged regions skipped between valid records (each lost at least one record). */
  readonly corruptRegions: number;
  /** Where those regions are. */
  readonly damaged: readonly DamagedRegion[];
}

/** The smallest frame a record can have (no data): bounds how many records lost bytes held. */
export const MIN_RECORD_BYTES = HEADER_BYTES + BODY_HEADER_BYTES;

function recordAt(buf: Buffer, pos: number): LocatedRecord | undefined {
  if (buf.length - pos < HEADER_BYTES) return undefined;
  if (buf.readUInt32LE(pos) !== RECORD_MAGIC) return undefined;
  const len = buf.readUInt32LE(pos + 4);
  if (len < BODY_HEADER_BYTES || len > MAX_BODY_BYTES) return undefined;
  const end = pos + HEADER_BYTES + len;
  if (end > buf.length) return undefined;
  const body = buf.subarray(pos + HEADER_BYTES, end);
  if (crc32(body) !== buf.readUInt32LE(pos + 8)) return undefined;
  if (body.readUInt8(0) !== FORMAT_VERSION) return undefined;
  // A CRC-valid frame whose seq or time no writer produces (crafted or misdirected) is damage too.
  const seq = body.readBigUInt64LE(4);
  const ts = body.readDoubleLE(12);
  if (seq < 1n || seq > BigInt(Number.MAX_SAFE_INTEGER) || !Number.isFinite(ts)) return undefined;
  return {
    flags: body.readUInt8(1),
    seq: Number(seq),
    ts,
    data: Buffer.from(body.subarray(BODY_HEADER_BYTES)),
    offset: pos,
    size: HEADER_BYTES + len,
  };
}

/**
 * Reads every valid record of a segment. Damage followed by valid records (bit rot) is skipped and
 * counted; damage with nothing valid after it is an unfinished write, reported as `validLength`.
 */
export function scanRecords(buf: Buffer): ScanResult {
  const records: LocatedRecord[] = [];
  const damaged: DamagedRegion[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const r = recordAt(buf, pos);
    if (r) {
      records.push(r);
      pos += r.size;
      continue;
    }
    const next = findNextRecord(buf, pos + 1);
    if (next === undefined) break;
    damaged.push({ offset: pos, length: next - pos });
    pos = next;
  }
  return { records, validLength: pos, corruptRegions: damaged.length, damaged };
}

function findNextRecord(buf: Buffer, from: number): number | undefined {
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(RECORD_MAGIC, 0);
  for (let at = buf.indexOf(magic, from); at !== -1; at = buf.indexOf(magic, at + 1)) {
    if (recordAt(buf, at)) return at;
  }
  return undefined;
}

/** Decodes one record read at a known offset (throws when the bytes are not a valid record). */
export function decodeRecordAt(buf: Buffer, pos = 0): LocatedRecord {
  const r = recordAt(buf, pos);
  if (!r) throw new Error(`no valid spool record at offset ${pos}`);
  return r;
}
