import { appendFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../core/clock.js';
import { silentLogger } from '../../../test/helpers/log-sink.js';
import { tempDirs } from '../../../test/helpers/temp-dirs.js';
import { JsonLinesFollower } from './follower.js';

const tempDir = tempDirs('gpulse-follow-');
let follower: JsonLinesFollower | undefined;

afterEach(async () => {
  await follower?.stop();
  follower = undefined;
});

/** How the tests wait on real file polling (bounded, not timed). */
const POLL = { timeout: 10_000, interval: 20 };

function start(path: string, from: 'end' | 'start', lineBytes = 1024) {
  const lines: string[] = [];
  follower = new JsonLinesFollower({
    path,
    from,
    lineBytes,
    onLine: (l) => lines.push(l),
    log: silentLogger(),
    clock: systemClock,
    pollMs: 50,
    random: () => 0,
  });
  follower.start();
  return lines;
}

const row = (i: number) => `${JSON.stringify({ i })}\n`;

describe('JSON-lines follower', () => {
  it('reads new lines only (from end), then survives rename rotation and truncation', async () => {
    const dir = tempDir();
    const path = join(dir, 'predictions.jsonl');
    writeFileSync(path, row(0));
    const lines = start(path, 'end');
    await expect
      .poll(() => follower?.state, { ...POLL, message: 'the follower to open the file' })
      .toBe('following');
    appendFileSync(path, row(1) + row(2));
    await expect.poll(() => lines.length, { ...POLL, message: 'lines 1-2' }).toBe(2);

    // Rotation: the writer renames the log, writes a last line to it, then starts a new file.
    renameSync(path, `${path}.1`);
    appendFileSync(`${path}.1`, row(3));
    writeFileSync(path, row(4));
    await expect
      .poll(() => lines.length, {
        ...POLL,
        message: 'line 3 from the rotated file and line 4 from the new one',
      })
      .toBe(4);
    expect(follower?.counts.rotations).toBe(1);

    // copytruncate: the file is emptied in place and written again from byte 0. (First the
    // follower has read the new file to its end, as its recorded read position says.)
    const position = () => (follower as unknown as { position: number } | undefined)?.position;
    await expect
      .poll(position, { ...POLL, message: 'the new file read to its end' })
      .toBe(row(4).length);
    truncateSync(path, 0);
    await expect
      .poll(() => follower?.counts.truncations ?? 0, {
        ...POLL,
        message: 'the truncation to be seen',
      })
      .toBe(1);
    appendFileSync(path, row(5));
    await expect.poll(() => lines.length, { ...POLL, message: 'line 5 after truncation' }).toBe(5);
    expect(lines.map((l) => (JSON.parse(l) as { i: number }).i)).toEqual([1, 2, 3, 4, 5]);
  });

  it('waits for a missing file and reads it from its start when it appears', async () => {
    const dir = tempDir();
    const path = join(dir, 'later.jsonl');
    const lines = start(path, 'end');
    // It tried to open the file, failed, and scheduled another try.
    await expect
      .poll(() => follower?.counts.restarts, { ...POLL, message: 'a failed open' })
      .toBeGreaterThanOrEqual(1);
    expect(follower?.state).toBe('waiting');
    writeFileSync(path, row(1) + row(2));
    await expect
      .poll(() => lines.length, { ...POLL, message: 'both lines of the new file', timeout: 15_000 })
      .toBe(2);
    // The state turns once the opened file is stat'ed, which may finish after its first lines.
    await expect
      .poll(() => follower?.state, { ...POLL, message: 'the follower to report following' })
      .toBe('following');
  });

  it('recovers when the file disappears for longer than the poll retries', async () => {
    const dir = tempDir();
    const path = join(dir, 'gone.jsonl');
    writeFileSync(path, '');
    const lines = start(path, 'start');
    await expect
      .poll(() => follower?.state, { ...POLL, message: 'the follower to open the file' })
      .toBe('following');
    appendFileSync(path, row(1));
    await expect.poll(() => lines.length, { ...POLL, message: 'line 1' }).toBe(1);
    rmSync(path);
    // tail-file gives up after 10 failed polls 200 ms apart; the follower then waits and retries.
    await expect
      .poll(() => follower?.state, { ...POLL, message: 'the follower to notice', timeout: 15_000 })
      .toBe('waiting');
    writeFileSync(path, row(2));
    await expect
      .poll(() => lines.length, {
        ...POLL,
        message: 'line 2 of the recreated file',
        timeout: 15_000,
      })
      .toBe(2);
    expect(follower?.counts.restarts).toBeGreaterThanOrEqual(1);
  }, 40_000);

  it('skips a line longer than the limit and keeps the lines after it', async () => {
    const dir = tempDir();
    const path = join(dir, 'long.jsonl');
    writeFileSync(path, `${row(1)}${'x'.repeat(5000)}\n${row(2)}`);
    const lines = start(path, 'start', 1024);
    // Line 2 comes after the long one in the file, and lines are handled in order: once it is
    // there, whatever the long line gave (nothing, or a wrongly kept piece) is there too.
    await expect
      .poll(() => lines.includes('{"i":2}'), { ...POLL, message: 'the line after the long one' })
      .toBe(true);
    expect(lines).toEqual(['{"i":1}', '{"i":2}']);
    expect(follower?.counts.longLines).toBe(1);
  });
});
