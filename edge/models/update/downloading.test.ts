import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { UPDATE_PATH, useUpdateFixture } from '../../../test/helpers/models/update-fixture.js';
import { ChunkFetcher, DEFAULT_FETCH } from '../fetcher.js';
import { sourceUrls } from '../store-layout.js';
import type { UpdateContext } from './context.js';
import { download } from './downloading.js';
import { PAUSE_POINTS } from './types.js';

describe('downloading', () => {
  const t = useUpdateFixture([['1.0.0', 4]]);

  const fetcher = (ctx: UpdateContext) =>
    new ChunkFetcher(sourceUrls(ctx.opts.source).base, ctx.opts.fetch, ctx.log);

  it('records the start at the fake time, downloads every byte and carries on to the commit', async () => {
    const { f } = t;
    const [r] = t.r;
    const ctx = await f.context();
    const started = new Date(f.clock.now()).toISOString();
    const result = await download(ctx, r.m, r.digest, r.text, fetcher(ctx), undefined);
    expect(result).toMatchObject({ outcome: 'committed', version: '1.0.0', release: 4 });
    const size = r.m.files.reduce((n, file) => n + file.size, 0);
    expect(result.stats?.bytesTotal).toBe(size);
    expect(result.stats?.bytesReused).toBe(0);
    expect(f.states).toEqual(UPDATE_PATH);
    expect(f.pauses).toEqual(PAUSE_POINTS.filter((p) => p !== 'rolling_back'));
    const saved = await f.saved();
    expect(saved.highest_release).toBe(4);
    expect(saved.update).toMatchObject({
      state: 'committed',
      started_at: started,
      bytes_total: size,
      bytes_to_download: size,
    });
    expect(saved.update!.bytes_downloaded).toBeGreaterThanOrEqual(size);
    expect(f.events.list({ type: 'model' }).map((e) => [e.type, e.data?.resumed])).toEqual([
      ['model.update_committed', undefined],
      ['model.update_started', false],
    ]);
    // The last download progress reported everything downloaded.
    const last = f.progress.filter((p) => p.state === 'downloading').at(-1);
    expect(last).toMatchObject({ percent: 100, bytes_total: size });
  });

  it('fails with the fetch reason when the store answers 503', async () => {
    const { f } = t;
    const [r] = t.r;
    await f.h.serve({
      fault: (path) =>
        path.includes('chunks') || path.includes('blobs')
          ? { kind: 'status', code: 503 }
          : undefined,
    });
    const ctx = await f.context(
      {},
      { fetch: { ...DEFAULT_FETCH, retries: 0, stallTimeoutMs: 2000 } },
    );
    const result = await download(ctx, r.m, r.digest, r.text, fetcher(ctx), undefined);
    expect(result).toMatchObject({ outcome: 'failed', version: '1.0.0', reason: 'http_status' });
    expect(result.message).toMatch(
      /^download of 1\.0\.0 failed: .*the next attempt resumes where this one stopped$/,
    );
    expect(f.states).toEqual(['downloading', 'failed']);
    expect((await f.saved()).update).toMatchObject({ state: 'failed', reason: result.reason });
    // Nothing was installed; `current` never moved.
    expect((await readdir(f.paths.versions)).filter((n) => !n.startsWith('.'))).toEqual([]);
  });

  it('resumes a previous attempt: its start time stays and the event says resumed', async () => {
    const { f } = t;
    const [r] = t.r;
    const previous = f.record('failed', r, { started_at: '2026-02-01T00:00:00.000Z' });
    const ctx = await f.context({ highest_release: 4, update: previous });
    await f.clock.advance(3_600_000);
    await download(ctx, r.m, r.digest, r.text, fetcher(ctx), previous);
    expect((await f.saved()).update?.started_at).toBe('2026-02-01T00:00:00.000Z');
    expect(f.events.list({ type: 'model.update_started' })[0]?.data?.resumed).toBe(true);
  });
});
