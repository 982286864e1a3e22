import {
  appendFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDirs } from '../../../test/helpers/temp-dirs.js';
import { FakeClock } from '../../../agent/core/clock.js';
import { captureLogger } from '../../../test/helpers/log-sink.js';
import { encodeRecord, recordSize, scanRecords } from './record-format.js';
import { Spool, type DropReason, type SpoolStream, type StreamRecord } from './spool.js';

const tempDir = tempDirs('gpulse-spool-');

const T0 = 1_700_000_000_000;

function rec(stream: SpoolStream, seq: number, ts: number, bytes = 100): StreamRecord {
  const data = Buffer.alloc(bytes, `${stream}:${seq};`);
  return { stream, seq, ts, flags: 0, data };
}

async function openSpool(
  dir: string,
  clock: FakeClock,
  limits: { maxBytes?: number; maxAgeMs?: number; segmentBytes?: number } = {},
) {
  const { log, records: logs } = captureLogger();
  const drops: { reason: DropReason; count: number; stream: SpoolStream }[] = [];
  const spool = await Spool.open({
    dir,
    clock,
    log,
    maxBytes: limits.maxBytes ?? 1024 * 1024,
    maxAgeMs: limits.maxAgeMs ?? 7 * 86_400_000,
    segmentBytes: limits.segmentBytes,
    onDrop: (reason, count, stream) => drops.push({ reason, count, stream }),
  });
  const dropped = (reason: DropReason, stream?: SpoolStream) =>
    drops
      .filter((d) => d.reason === reason && (stream === undefined || d.stream === stream))
      .reduce((n, d) => n + d.count, 0);
  return { spool, drops, dropped, logs };
}

async function readAll(spool: Spool): Promise<StreamRecord[]> {
  return spool.read(0, 1_000_000);
}

/** Spools records 1, 2 and 3 of one stream, closes the spool and finds their one segment file. */
async function closedSegment(stream: SpoolStream) {
  const dir = tempDir();
  const clock = new FakeClock();
  const first = await openSpool(dir, clock);
  await first.spool.append([1, 2, 3].map((s) => rec(stream, s, T0 + 1000)));
  await first.spool.close();
  const [file] = segmentFiles(dir, stream);
  return { dir, clock, path: join(dir, stream, file as string) };
}

/** A fresh spool with room for `records` records of 100 bytes, `perSegment` to a segment. */
function openBounded(records: number, perSegment: number) {
  const size = recordSize(100);
  return openSpool(tempDir(), new FakeClock(), {
    maxBytes: size * records,
    segmentBytes: size * perSegment,
  });
}

function segmentFiles(dir: string, stream: SpoolStream): string[] {
  return readdirSync(join(dir, stream)).filter((n) => n.endsWith('.seg'));
}

describe('Spool', () => {
  it('replays records of both streams in seq order and forgets them once acknowledged', async () => {
    const dir = tempDir();
    const clock = new FakeClock();
    const { spool } = await openSpool(dir, clock);
    await spool.append([rec('telemetry', 1, T0 + 1000), rec('events', 2, T0 + 1001)]);
    await spool.append([
      rec('telemetry', 3, T0 + 1002),
      rec('events', 4, T0 + 1003),
      rec('telemetry', 5, T0 + 1004),
    ]);
    const all = await readAll(spool);
    expect(all.map((r) => `${r.stream}:${r.seq}`)).toEqual([
      'telemetry:1',
      'events:2',
      'telemetry:3',
      'events:4',
      'telemetry:5',
    ]);
    expect(all[1]?.data.toString()).toMatch(/^events:2;/);
    expect((await spool.read(3, 10)).map((r) => r.seq)).toEqual([4, 5]);
    expect((await spool.read(0, 2)).map((r) => r.seq)).toEqual([1, 2]);
    expect(spool.stats()).toMatchObject({ pending: 5, oldestTs: T0 + 1000 });

    for (const r of all) spool.ack(r.stream, r.seq);
    expect(spool.isEmpty()).toBe(true);
    expect(spool.stats()).toMatchObject({ pending: 0, oldestTs: undefined });
    await spool.close();
    expect(spool.bytes()).toBe(0);
    expect(segmentFiles(dir, 'telemetry')).toEqual([]);
    expect(segmentFiles(dir, 'events')).toEqual([]);
  });

  it('keeps pending records across a restart and does not resend acknowledged ones', async () => {
    const dir = tempDir();
    const clock = new FakeClock();
    const first = await openSpool(dir, clock);
    await first.spool.append([1, 2, 3, 4].map((s) => rec('telemetry', s, T0 + 1000 + s)));
    first.spool.ack('telemetry', 1);
    first.spool.ack('telemetry', 2);
    await first.spool.close();

    const second = await openSpool(dir, clock);
    expect((await readAll(second.spool)).map((r) => r.seq)).toEqual([3, 4]);
    expect(second.spool.maxSeq()).toBe(4);
    await second.spool.close();
  });

  it('moves the head only over contiguous acknowledgements (PUBACKs out of order)', async () => {
    const dir = tempDir();
    const clock = new FakeClock();
    const { spool } = await openSpool(dir, clock);
    await spool.append([1, 2, 3].map((s) => rec('telemetry', s, T0 + 1000)));
    spool.ack('telemetry', 3);
    spool.ack('telemetry', 2);
    expect((await readAll(spool)).map((r) => r.seq)).toEqual([1, 2, 3]);
    spool.ack('telemetry', 1);
    expect(spool.isEmpty()).toBe(true);
    await spool.close();
  });

  it('over the byte bound drops the oldest telemetry segments first, keeps events, counts drops', async () => {
    const size = recordSize(100);
    // Room for 20 records, 4 per segment.
    const { spool, dropped } = await openBounded(20, 4);
    let seq = 0;
    const events: number[] = [];
    for (let i = 0; i < 40; i++) {
      seq++;
      if (i % 10 === 0) {
        events.push(seq);
        await spool.append([rec('events', seq, T0 + 1000 + seq)]);
      } else {
        await spool.append([rec('telemetry', seq, T0 + 1000 + seq)]);
      }
      expect(spool.bytes()).toBeLessThanOrEqual(size * 20);
    }
    const all = await readAll(spool);
    const telemetry = all.filter((r) => r.stream === 'telemetry').map((r) => r.seq);
    expect(all.filter((r) => r.stream === 'events').map((r) => r.seq)).toEqual(events);
    // What is left of telemetry is the newest, in order, without holes.
    const allTelemetry = Array.from({ length: 40 }, (_, i) => i + 1).filter(
      (s) => !events.includes(s),
    );
    expect(telemetry).toEqual(allTelemetry.slice(allTelemetry.length - telemetry.length));
    expect(dropped('size', 'telemetry')).toBe(allTelemetry.length - telemetry.length);
    expect(dropped('size', 'events')).toBe(0);
    expect(telemetry.length).toBeGreaterThan(0);
    await spool.close();
  });

  it('counts a record dropped while on its way only if its PUBACK never comes', async () => {
    const { spool, dropped } = await openBounded(4, 2);
    await spool.append([1, 2].map((s) => rec('telemetry', s, T0)));
    await spool.append([3, 4].map((s) => rec('telemetry', s, T0)));
    spool.markSending('telemetry', 1);
    spool.markSending('telemetry', 2);
    // Room for 5 and 6 costs the oldest segment (1, 2), both on their way to the broker.
    await spool.append([5, 6].map((s) => rec('telemetry', s, T0)));
    expect(dropped('size')).toBe(0);
    spool.ack('telemetry', 1); // delivered after all
    spool.releaseSending(); // the connection dropped: 2 never made it
    expect(dropped('size')).toBe(1);
    expect((await readAll(spool)).map((r) => r.seq)).toEqual([3, 4, 5, 6]);
    await spool.close();
  });

  it('gives up incoming telemetry rather than stored events when only events fill the bound', async () => {
    const { spool, dropped } = await openBounded(4, 2);
    await spool.append([1, 2, 3, 4].map((s) => rec('events', s, T0 + 1000)));
    const rejected = await spool.append([rec('telemetry', 5, T0 + 1000)]);
    expect(rejected.map((r) => r.seq)).toEqual([5]);
    expect(dropped('size', 'telemetry')).toBe(1);
    expect((await readAll(spool)).map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    // A new event still gets in, at the cost of the oldest events segment.
    await spool.append([rec('events', 6, T0 + 1000)]);
    expect((await readAll(spool)).map((r) => r.seq)).toEqual([3, 4, 6]);
    expect(dropped('size', 'events')).toBe(2);
    await spool.close();
  });

  it('drops records older than the age limit and counts them', async () => {
    const dir = tempDir();
    const clock = new FakeClock(1_000_000);
    const { spool, dropped } = await openSpool(dir, clock, {
      maxAgeMs: 60_000,
      segmentBytes: recordSize(100) * 2,
    });
    await spool.append([1, 2, 3, 4, 5].map((s) => rec('telemetry', s, clock.now() + s * 10_000)));
    expect(spool.stats().oldestTs).toBe(1_010_000);
    await clock.advance(85_000); // limit = 1_025_000: records 1 and 2 are too old
    expect((await readAll(spool)).map((r) => r.seq)).toEqual([3, 4, 5]);
    expect(dropped('age')).toBe(2);
    expect(spool.stats().oldestTs).toBe(1_030_000);
    await clock.advance(1_000_000);
    expect(await readAll(spool)).toEqual([]);
    expect(dropped('age')).toBe(5);
    await spool.close();
  });

  it('recovers from a torn write at the end of a segment (crash mid-append)', async () => {
    const { dir, clock, path } = await closedSegment('telemetry');
    const sizeBefore = readFileSync(path).length;
    const torn = encodeRecord(rec('telemetry', 4, T0 + 1000)).subarray(0, 50);
    appendFileSync(path, torn);

    const second = await openSpool(dir, clock);
    expect((await readAll(second.spool)).map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(readFileSync(path).length).toBe(sizeBefore);
    expect(second.logs.some((l) => /unfinished write/.test(String(l.msg)))).toBe(true);
    // Appends continue after the cut, readable after another restart.
    await second.spool.append([rec('telemetry', 5, T0 + 1000)]);
    await second.spool.close();
    const third = await openSpool(dir, clock);
    expect((await readAll(third.spool)).map((r) => r.seq)).toEqual([1, 2, 3, 5]);
    expect(third.dropped('corrupt')).toBe(0);
    await third.spool.close();
  });

  it('skips a damaged record inside a segment, keeps the ones after it and counts the damage', async () => {
    const { dir, clock, path } = await closedSegment('events');
    const buf = readFileSync(path);
    buf.writeUInt8(buf.readUInt8(recordSize(100) + 40) ^ 0xff, recordSize(100) + 40); // a byte in the body of record 2
    writeFileSync(path, buf);

    const second = await openSpool(dir, clock);
    expect((await readAll(second.spool)).map((r) => r.seq)).toEqual([1, 3]);
    expect(second.dropped('corrupt', 'events')).toBe(1);
    await second.spool.close();
  });

  it('rejects what it cannot store when the bound is smaller than one batch', async () => {
    const dir = tempDir();
    const clock = new FakeClock();
    const { spool, dropped } = await openSpool(dir, clock, { maxBytes: recordSize(100) });
    const rejected = await spool.append([rec('telemetry', 1, T0), rec('events', 2, T0)]);
    expect(rejected.map((r) => r.seq)).toEqual([1]);
    expect(dropped('size', 'telemetry')).toBe(1);
    expect((await readAll(spool)).map((r) => r.seq)).toEqual([2]);
    await spool.close();
  });
});

describe('Spool recovery counts what was lost on disk', () => {
  const size = recordSize(100);

  /** Spools telemetry 1..n (odd seqs) and events (even seqs) in segments of two records. */
  async function filled(n: number) {
    const dir = tempDir();
    const clock = new FakeClock();
    const first = await openSpool(dir, clock, { segmentBytes: size * 2 });
    for (let s = 1; s <= n; s++)
      await first.spool.append([rec(s % 2 === 1 ? 'telemetry' : 'events', s, T0 + s)]);
    await first.spool.close();
    const reopen = () => openSpool(dir, clock, { segmentBytes: size * 2 });
    return { dir, reopen };
  }

  it('counts damage at the end of a sealed segment as corrupt, once', async () => {
    const { dir, reopen } = await filled(12);
    // Telemetry 1,3 | 5,7 | 9,11: cut record 7 out of the sealed middle segment.
    const files = segmentFiles(dir, 'telemetry');
    expect(files).toHaveLength(3);
    const path = join(dir, 'telemetry', files[1] as string);
    const buf = readFileSync(path);
    writeFileSync(path, Buffer.concat([buf.subarray(0, size), buf.subarray(size, size + 20)]));
    const second = await reopen();
    expect(second.dropped('corrupt', 'telemetry')).toBe(1);
    expect(second.dropped('missing')).toBe(0);
    expect((await readAll(second.spool)).map((r) => r.seq)).toEqual([
      1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12,
    ]);
    await second.spool.close();
    const third = await reopen();
    expect(third.drops).toEqual([]);
    expect((await readAll(third.spool)).length).toBe(11);
    await third.spool.close();
  });

  it('counts every message of a segment file deleted between others as missing, once', async () => {
    const { dir, reopen } = await filled(12);
    rmSync(join(dir, 'events', segmentFiles(dir, 'events')[1] as string)); // events 6 and 8
    const second = await reopen();
    expect(second.dropped('missing', 'events')).toBe(2);
    expect(second.dropped('corrupt')).toBe(0);
    expect((await readAll(second.spool)).map((r) => r.seq)).toEqual([
      1, 2, 3, 4, 5, 7, 9, 10, 11, 12,
    ]);
    await second.spool.close();
    const third = await reopen();
    expect(third.drops).toEqual([]);
    await third.spool.close();
  });

  it('counts records cut out of a segment (a seq gap no stream explains) as missing', async () => {
    const dir = tempDir();
    const clock = new FakeClock();
    const first = await openSpool(dir, clock);
    // One telemetry segment 1,2,4,5,6 with events 3 beside it.
    await first.spool.append([1, 2].map((s) => rec('telemetry', s, T0)));
    await first.spool.append([rec('events', 3, T0)]);
    await first.spool.append([4, 5, 6].map((s) => rec('telemetry', s, T0)));
    await first.spool.close();
    const path = join(dir, 'telemetry', segmentFiles(dir, 'telemetry')[0] as string);
    const buf = readFileSync(path);
    // Records 4 and 5 removed whole, byte-exact: the framing alone cannot see it.
    writeFileSync(path, Buffer.concat([buf.subarray(0, size * 2), buf.subarray(size * 4)]));
    const second = await openSpool(dir, clock);
    expect(second.dropped('missing', 'telemetry')).toBe(2);
    expect(second.dropped('corrupt')).toBe(0);
    expect((await readAll(second.spool)).map((r) => r.seq)).toEqual([1, 2, 3, 6]);
    await second.spool.close();
    expect((await openSpool(dir, clock)).drops).toEqual([]);
  });

  it('counts nothing for seqs the bound refused or the other stream acknowledged', async () => {
    const dir = tempDir();
    const clock = new FakeClock();
    const first = await openSpool(dir, clock, { maxBytes: size * 4, segmentBytes: size * 2 });
    await first.spool.append([1, 2].map((s) => rec('events', s, T0)));
    await first.spool.append([rec('telemetry', 3, T0)]);
    first.spool.ack('telemetry', 3);
    await first.spool.append([4, 5].map((s) => rec('events', s, T0)));
    // Events fill the bound: telemetry 6 is refused (counted now), events 7 makes room.
    expect((await first.spool.append([rec('telemetry', 6, T0)])).map((r) => r.seq)).toEqual([6]);
    await first.spool.append([rec('events', 7, T0)]);
    expect(first.dropped('size')).toBe(3);
    await first.spool.close();
    const second = await openSpool(dir, clock, { maxBytes: size * 4, segmentBytes: size * 2 });
    expect((await readAll(second.spool)).map((r) => r.seq)).toEqual([4, 5, 7]);
    expect(second.drops).toEqual([]);
    await second.spool.close();
  });

  it('reads back segment names past 12 digits in number order after a restart', async () => {
    const dir = tempDir();
    const clock = new FakeClock();
    mkdirSync(join(dir, 'telemetry'), { recursive: true });
    // The writer numbers segments on from the highest; the 13-digit name sorts before it as text.
    writeFileSync(
      join(dir, 'telemetry', '999999999999.seg'),
      encodeRecord(rec('telemetry', 1, T0)),
    );
    const first = await openSpool(dir, clock, { segmentBytes: size });
    await first.spool.append([rec('telemetry', 2, T0)]);
    await first.spool.append([rec('telemetry', 3, T0)]);
    await first.spool.close();
    expect(segmentFiles(dir, 'telemetry').sort()).toEqual([
      '1000000000000.seg',
      '1000000000001.seg',
      '999999999999.seg',
    ]);
    const second = await openSpool(dir, clock, { segmentBytes: size });
    expect((await readAll(second.spool)).map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(second.drops).toEqual([]);
    await second.spool.close();
  });

  it('leaves alone entries that are not its segments and never writes over their ids', async () => {
    const dir = tempDir();
    const clock = new FakeClock();
    mkdirSync(join(dir, 'telemetry', '000000000007.seg'), { recursive: true });
    writeFileSync(join(dir, 'telemetry', '99999999999999999999.seg'), 'x');
    writeFileSync(join(dir, 'telemetry', '0000000000001.seg'), 'not canonical');
    const first = await openSpool(dir, clock);
    await first.spool.append([rec('telemetry', 1, T0)]);
    expect(segmentFiles(dir, 'telemetry')).toContain('000000000008.seg');
    expect(first.logs.some((l) => /no gpulse wrote/.test(String(l.msg)))).toBe(true);
    await first.spool.close();
    const second = await openSpool(dir, clock);
    expect((await readAll(second.spool)).map((r) => r.seq)).toEqual([1]);
    await second.spool.close();
  });

  it('treats records out of seq order, seq 0 and a file past the size bound as damage', async () => {
    const dir = tempDir();
    const clock = new FakeClock();
    mkdirSync(join(dir, 'events'), { recursive: true });
    const frames = [5, 6, 4, 7].map((s) => encodeRecord(rec('events', s, T0)));
    const zero = encodeRecord(rec('events', 1, T0));
    zero.writeBigUInt64LE(0n, 16); // seq 0, CRC fixed below: only the value is wrong
    const { crc32 } = await import('node:zlib');
    zero.writeUInt32LE(crc32(zero.subarray(12)), 8);
    writeFileSync(join(dir, 'events', '000000000001.seg'), Buffer.concat([...frames, zero]));
    // A sealed segment followed by 20 MiB of garbage: read up to the bound, not into memory whole.
    writeFileSync(
      join(dir, 'events', '000000000002.seg'),
      Buffer.concat([encodeRecord(rec('events', 9, T0)), Buffer.alloc(20 * 1024 * 1024, 1)]),
    );
    const spool = await openSpool(dir, clock);
    expect((await readAll(spool.spool)).map((r) => r.seq)).toEqual([5, 6, 7, 9]);
    // 4 out of order loses nothing (no seq is missing around it); the seq-0 frame took seq 8's
    // place between 7 and 9; the garbage at the end of the stream counts as one region.
    expect(spool.dropped('corrupt', 'events')).toBe(2);
    await spool.spool.close();
  });
});

describe('record framing', () => {
  it('finds every record and reports where valid data ends', () => {
    const a = encodeRecord({ seq: 7, ts: 1.5, flags: 1, data: Buffer.from('hello') });
    const b = encodeRecord({ seq: 2 ** 40, ts: 2, flags: 0, data: Buffer.alloc(0) });
    const scan = scanRecords(Buffer.concat([a, b, Buffer.from([1, 2, 3])]));
    expect(scan.records.map((r) => [r.seq, r.ts, r.flags, r.data.toString()])).toEqual([
      [7, 1.5, 1, 'hello'],
      [2 ** 40, 2, 0, ''],
    ]);
    expect(scan.validLength).toBe(a.length + b.length);
    expect(scan.corruptRegions).toBe(0);
  });
});
