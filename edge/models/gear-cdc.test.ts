import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  chunkBuffer,
  DEFAULT_CHUNKING,
  GearChunker,
  gearTable,
  SMALL_FILE_CHUNKING,
  validateChunking,
} from './gear-cdc.js';

const data = randomBytes(12 * 1024 * 1024);

describe('Gear/FastCDC chunker', () => {
  it('cuts within [min, max] and covers every byte', () => {
    const cuts = chunkBuffer(data, SMALL_FILE_CHUNKING);
    expect(cuts.reduce((a, b) => a + b, 0)).toBe(data.length);
    for (const c of cuts.slice(0, -1)) {
      expect(c).toBeGreaterThanOrEqual(SMALL_FILE_CHUNKING.min);
      expect(c).toBeLessThanOrEqual(SMALL_FILE_CHUNKING.max);
    }
    // Normalized chunking keeps the mean near avg (plus the skipped min).
    const mean = data.length / cuts.length;
    expect(mean).toBeGreaterThan(SMALL_FILE_CHUNKING.avg * 0.8);
    expect(mean).toBeLessThan(SMALL_FILE_CHUNKING.avg * 1.8);
  });

  it('finds the same cuts whatever the read size (streaming state carries over)', () => {
    const whole = chunkBuffer(data, SMALL_FILE_CHUNKING);
    const chunker = new GearChunker(SMALL_FILE_CHUNKING);
    const streamed: number[] = [];
    for (let off = 0; off < data.length; off += 77_777)
      streamed.push(...chunker.push(data.subarray(off, off + 77_777)));
    const tail = chunker.finish();
    if (tail > 0) streamed.push(tail);
    expect(streamed).toEqual(whole);
  });

  it('resynchronises after an insertion: only chunks near the edit change', () => {
    const edited = Buffer.concat([
      data.subarray(0, 5_000_000),
      randomBytes(1000),
      data.subarray(5_000_000),
    ]);
    const hashes = (buf: Buffer) => {
      const out = new Set<string>();
      let off = 0;
      for (const len of chunkBuffer(buf, SMALL_FILE_CHUNKING)) {
        out.add(
          buf
            .subarray(off, off + len)
            .toString('base64')
            .slice(0, 40) + len,
        );
        off += len;
      }
      return out;
    };
    const a = hashes(data);
    const b = hashes(edited);
    const shared = [...b].filter((x) => a.has(x)).length;
    expect(b.size - shared).toBeLessThanOrEqual(3);
  });

  it('derives a fixed table from the seed and depends on it', () => {
    expect(gearTable('a')).toEqual(gearTable('a'));
    expect(gearTable('a')).not.toEqual(gearTable('b'));
    expect(chunkBuffer(data, { ...SMALL_FILE_CHUNKING, seed: 'other' })).not.toEqual(
      chunkBuffer(data, SMALL_FILE_CHUNKING),
    );
  });

  it('cuts zero-filled data at max', () => {
    const zeros = Buffer.alloc(3 * DEFAULT_CHUNKING.max + 5);
    expect(chunkBuffer(zeros, DEFAULT_CHUNKING)).toEqual([
      DEFAULT_CHUNKING.max,
      DEFAULT_CHUNKING.max,
      DEFAULT_CHUNKING.max,
      5,
    ]);
  });

  it('rejects parameters a device could not reproduce', () => {
    expect(() => validateChunking({ ...DEFAULT_CHUNKING, avg: 300_000 })).toThrow(/power of two/);
    expect(() => validateChunking({ ...DEFAULT_CHUNKING, min: DEFAULT_CHUNKING.avg * 2 })).toThrow(
      /min/,
    );
    expect(() => validateChunking({ ...DEFAULT_CHUNKING, max: 1024 })).toThrow(/max/);
    expect(() => validateChunking({ ...DEFAULT_CHUNKING, normalization: 5 })).toThrow(
      /normalization/,
    );
  });
});
