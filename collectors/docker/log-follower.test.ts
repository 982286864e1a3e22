import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  cursorAt,
  cursorSince,
  LogFollower,
  LogLineDecoder,
  parseStampedLine,
} from './log-follower.js';

function frame(stream: number, text: string): Buffer {
  const body = Buffer.from(text);
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(body.length, 4);
  return Buffer.concat([h, body]);
}

describe('LogLineDecoder', () => {
  it('demultiplexes stdout/stderr frames split anywhere, each stream with its own partial line', () => {
    const lines: string[] = [];
    const d = new LogLineDecoder(true, (l) => lines.push(l));
    const bytes = Buffer.concat([
      frame(1, 'out one\nout tw'),
      frame(2, 'err one\n'),
      frame(1, 'o\n'),
      frame(2, 'err without newline'),
    ]);
    for (let i = 0; i < bytes.length; i += 3) d.push(bytes.subarray(i, i + 3));
    d.end();
    expect(lines).toEqual(['out one', 'err one', 'out two', 'err without newline']);
  });

  it('TTY output is raw, CRLF trimmed; an endless line is cut at the limit', () => {
    const lines: string[] = [];
    const d = new LogLineDecoder(false, (l) => lines.push(l), 10);
    d.push(Buffer.from('a\r\nb\n'));
    d.push(Buffer.from('x'.repeat(25)));
    expect(lines).toEqual(['a', 'b', 'x'.repeat(10)]);
  });
});

describe('parseStampedLine and cursors', () => {
  it('reads RFC 3339 nanosecond stamps, also with trailing zeros dropped', () => {
    expect(parseStampedLine('2026-11-28T12:41:52.511356548Z hello world')).toEqual({
      cursor: { sec: Date.parse('2026-11-28T12:41:52Z') / 1000, nsec: 511356548 },
      atMs: Date.parse('2026-11-28T12:41:52.511Z'),
      text: 'hello world',
    });
    expect(parseStampedLine('2026-11-28T12:41:52.5Z x')?.cursor.nsec).toBe(500_000_000);
    expect(parseStampedLine('no stamp')).toBeUndefined();
  });
  it('since strings', () => {
    expect(cursorSince({ sec: 12, nsec: 5 })).toBe('12.000000005');
    expect(cursorAt(1500)).toEqual({ sec: 1, nsec: 500_000_000 });
  });
});

describe('LogFollower', () => {
  it('passes only lines after its cursor and remembers where it stopped', async () => {
    const stream = new PassThrough();
    const got: [string, number][] = [];
    let since = '';
    let ended = 0;
    const f = new LogFollower({
      open: (s) => {
        since = s;
        return Promise.resolve(stream);
      },
      tty: false,
      from: { sec: 100, nsec: 0 },
      onLine: (text, at) => got.push([text, at]),
      onEnd: () => ended++,
    });
    await f.start();
    expect(since).toBe('100.000000000');
    stream.write(frame(1, '1970-01-01T00:01:40Z old line\n'));
    stream.write(frame(2, '1970-01-01T00:01:41.25Z RuntimeError: CUDA out of memory.\n'));
    stream.end();
    await new Promise((r) => setImmediate(r));
    expect(got).toEqual([['RuntimeError: CUDA out of memory.', 101_250]]);
    expect(f.cursor).toEqual({ sec: 101, nsec: 250_000_000 });
    expect(ended).toBe(1);
  });

  it('reports a stream that cannot be opened (log driver without read support)', async () => {
    const errors: unknown[] = [];
    const f = new LogFollower({
      open: () =>
        Promise.reject(
          new Error('(HTTP code 501) configured logging driver does not support reading'),
        ),
      tty: false,
      from: { sec: 0, nsec: 0 },
      onLine: () => undefined,
      onEnd: (e) => errors.push(e),
    });
    await f.start();
    expect(String(errors[0])).toContain('does not support reading');
  });
});
