import {
  appendFileSync,
  mkdtempSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../agent/clock.js';
import { silentLogger } from '../../test/helpers/log-sink.js';
import { JsonLinesFollower } from './follower.js';

let dir = '';
let follower: JsonLinesFollower | undefined;

afterEach(async () => {
  await follower?.stop();
  follower = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = '';
});

/** Polls until `check` holds (bounded: these tests wait on real file polling, not on time). */
async function until(check: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

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
    dir = mkdtempSync(join(tmpdir(), 'gpulse-follow-'));
    const path = join(dir, 'predictions.jsonl');
    writeFileSync(path, row(0));
    const lines = start(path, 'end');
    await until(() => follower?.state === 'following', 'the follower to open the file');
    appendFileSync(path, row(1) + row(2));
    await until(() => lines.length === 2, 'lines 1-2');

    // Rotation: the writer renames the log, writes a last line to it, then starts a new file.
    renameSync(path, `${path}.1`);
    appendFileSync(`${path}.1`, row(3));
    writeFileSync(path, row(4));
    await until(
      () => lines.length === 4,
      'line 3 from the rotated file and line 4 from the new one',
    );
    expect(follower?.counts.rotations).toBe(1);

    // copytruncate: the file is emptied in place and written again from byte 0.
    await new Promise((r) => setTimeout(r, 150));
    truncateSync(path, 0);
    await until(() => (follower?.counts.truncations ?? 0) === 1, 'the truncation to be seen');
    appendFileSync(path, row(5));
    await until(() => lines.length === 5, 'line 5 after truncation');
    expect(lines.map((l) => (JSON.parse(l) as { i: number }).i)).toEqual([1, 2, 3, 4, 5]);
  });

  it('waits for a missing file and reads it from its start when it appears', async () => {
    dir = mkdtempSync(join(tmpdir(), 'gpulse-follow-'));
    const path = join(dir, 'later.jsonl');
    const lines = start(path, 'end');
    await new Promise((r) => setTimeout(r, 100));
    expect(follower?.state).toBe('waiting');
    writeFileSync(path, row(1) + row(2));
    await until(() => lines.length === 2, 'both lines of the new file', 15_000);
    // The state turns once the opened file is stat'ed, which may finish after its first lines.
    await until(() => follower?.state === 'following', 'the follower to report following');
  });

  it('recovers when the file disappears for longer than the poll retries', async () => {
    dir = mkdtempSync(join(tmpdir(), 'gpulse-follow-'));
    const path = join(dir, 'gone.jsonl');
    writeFileSync(path, '');
    const lines = start(path, 'start');
    await until(() => follower?.state === 'following', 'the follower to open the file');
    appendFileSync(path, row(1));
    await until(() => lines.length === 1, 'line 1');
    rmSync(path);
    // tail-file gives up after 10 failed polls 200 ms apart; the follower then waits and retries.
    await until(() => follower?.state === 'waiting', 'the follower to notice', 15_000);
    writeFileSync(path, row(2));
    await until(() => lines.length === 2, 'line 2 of the recreated file', 15_000);
    expect(follower?.counts.restarts).toBeGreaterThanOrEqual(1);
  }, 40_000);

  it('skips a line longer than the limit and keeps the lines after it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'gpulse-follow-'));
    const path = join(dir, 'long.jsonl');
    writeFileSync(path, `${row(1)}${'x'.repeat(5000)}\n${row(2)}`);
    const lines = start(path, 'start', 1024);
    await until(() => lines.length >= 2, 'the short lines');
    await new Promise((r) => setTimeout(r, 100));
    expect(lines).toEqual(['{"i":1}', '{"i":2}']);
    expect(follower?.counts.longLines).toBe(1);
  });
});
