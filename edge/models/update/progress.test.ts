import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { useUpdateFixture } from '../../../test/helpers/models/update-fixture.js';
import type { AssemblyStats } from '../assemble.js';
import { downloadLine, downloadPercent, makeProgress } from './progress.js';

const stats = (downloaded: number): AssemblyStats => ({
  bytesTotal: 10 * 1024 * 1024,
  bytesToDownload: 4 * 1024 * 1024,
  bytesDownloaded: downloaded,
  bytesReused: 6 * 1024 * 1024,
  chunksDownloaded: 3,
  chunksReused: 5,
  chunksResumed: 0,
  retries: 0,
  indexBytesDownloaded: 0,
  verified: false,
  chunksReuseFailed: 0,
});

describe('download progress', () => {
  const t = useUpdateFixture([['1.0.0', 1]]);

  it('counts the rate from the start of the download on the fake clock, and percent of what must be downloaded', () => {
    const { f } = t;
    const [r] = t.r;
    const start = f.clock.now();
    const u = f.record('downloading', r, { bytes_total: 99 });
    const p = makeProgress('detector', u, stats(2 * 1024 * 1024), 1000, start + 4000, start);
    expect(p).toMatchObject({
      model: 'detector',
      state: 'downloading',
      version: '1.0.0',
      bytes_total: 10 * 1024 * 1024,
      bytes_downloaded: 2 * 1024 * 1024,
      done_bytes: 1000,
      percent: 50,
      // 2 MiB in 4 s of fake time.
      rate_bytes_per_second: 524_288,
      updated_at: new Date(start + 4000).toISOString(),
    });
    expect(downloadLine(p)).toBe('2.0 MiB of 4.0 MiB needed (50.0%), 512.0 KiB/s, 6.0 MiB reused');
    // No download in this run: no rate; past downloading everything is done.
    const after = makeProgress(
      'detector',
      f.record('trial', r, { bytes_total: 99 }),
      undefined,
      undefined,
      start,
      0,
    );
    expect(after).toMatchObject({ rate_bytes_per_second: 0, done_bytes: 99, percent: 100 });
    expect(makeProgress('detector', u, undefined, undefined, start, 0).done_bytes).toBe(0);
    expect(downloadPercent(5, 4)).toBe(100);
    expect(downloadPercent(0, 0)).toBe(100);
  });

  it('reports every step, writes progress.json at most once a second and logs at most every 5 s', async () => {
    const { f } = t;
    const [r] = t.r;
    const ctx = await f.context();
    ctx.downloadStart = f.clock.now();
    const u = f.record('downloading', r);
    const written = async () =>
      (
        JSON.parse(await readFile(f.paths.progress, 'utf8').catch(() => '{}')) as {
          bytes_downloaded?: number;
        }
      ).bytes_downloaded;
    const logged = () => f.logs.filter((l) => String(l.msg).startsWith('downloading 1.0.0')).length;

    const end = 10 * 1024 * 1024;
    // [ms since the previous step, bytes done, progress.json then holds, log lines by then]
    const steps: [number, number, number, number][] = [
      [1000, 100, 100, 1],
      // Half a second later: reported, neither written nor logged.
      [500, 200, 100, 1],
      [500, 300, 300, 1],
      [4000, 400, 400, 2],
      // The last byte is always logged, however soon after the previous line.
      [0, end, 400, 3],
    ];
    for (const [ms, done, file, lines] of steps) {
      await f.clock.advance(ms);
      const write = ctx.progress(u, stats(done), done);
      expect(write === undefined).toBe(file !== done);
      await write;
      expect(await written()).toBe(file);
      expect(logged()).toBe(lines);
    }
    expect(f.progress.map((p) => p.bytes_downloaded)).toEqual([100, 200, 300, 400, end]);
  });
});
