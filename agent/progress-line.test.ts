import { describe, expect, it } from 'vitest';
import { humanBytes, ProgressLine } from './progress-line.js';

/** A stream that records what is written, saying it is (or is not) a terminal. */
function fakeStream(isTTY: boolean, columns = 80) {
  const writes: string[] = [];
  return { isTTY, columns, writes, write: (t: string) => writes.push(t) };
}

describe('ProgressLine', () => {
  it('rewrites one line in place on a terminal, throttled, and erases it at the end', () => {
    const stream = fakeStream(true);
    let now = 1000;
    const line = new ProgressLine(stream, { intervalMs: 100, now: () => now });
    line.update('reading: 10 rows');
    line.update('reading: 20 rows'); // within 100 ms: held back
    now += 100;
    line.update('reading: 30 rows');
    line.update('writing', true); // a new step shows at once
    line.update('writing', true); // the same text is not written twice
    line.finish();
    expect(stream.writes).toEqual([
      '\rreading: 10 rows\x1b[K',
      '\rreading: 30 rows\x1b[K',
      '\rwriting\x1b[K',
      '\r\x1b[K',
    ]);
  });

  it('gets out of the way of other output and comes back with the latest text', () => {
    const stream = fakeStream(true);
    let now = 0;
    const line = new ProgressLine(stream, { intervalMs: 100, now: () => now });
    line.update('step 1');
    line.update('step 2'); // throttled, but it is what redraw shows
    line.clear();
    stream.write('a log line\n');
    now += 5;
    line.redraw();
    expect(stream.writes).toEqual(['\rstep 1\x1b[K', '\r\x1b[K', 'a log line\n', '\rstep 2\x1b[K']);
  });

  it('cuts a line to the terminal width', () => {
    const stream = fakeStream(true, 30);
    new ProgressLine(stream).update('x'.repeat(50));
    expect(stream.writes).toEqual([`\r${'x'.repeat(28)}…\x1b[K`]);
  });

  it('writes nothing when the stream is not a terminal', () => {
    const stream = fakeStream(false);
    const line = new ProgressLine(stream);
    line.update('reading', true);
    line.clear();
    line.redraw();
    line.finish();
    expect(line.active).toBe(false);
    expect(stream.writes).toEqual([]);
  });
});

describe('humanBytes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1536, '1.5 KiB'],
    [35_000_000, '33.4 MiB'],
    [64 * 1024 ** 3, '64.0 GiB'],
  ])('%d → %s', (n, text) => expect(humanBytes(n)).toBe(text));
});
