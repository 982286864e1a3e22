import { mkdir, readdir, readlink } from 'node:fs/promises';
import { beforeEach, describe, expect, it } from 'vitest';
import { useUpdateFixture, versions } from '../../../test/helpers/models/update-fixture.js';
import { commit } from './committing.js';

describe('committing', () => {
  const t = useUpdateFixture(versions('1.0.0', '2.0.0', '3.0.0'), {
    place: true,
    links: { current: '3.0.0', previous: '2.0.0' },
  });
  // A quarantined copy left from an earlier rollback.
  beforeEach(() => mkdir(`${t.f.paths.quarantine}/0.9.0-r0`));

  it('makes the trial version current at the fake time, keeps only current and previous', async () => {
    const { f } = t;
    const [, v2, v3] = t.r;
    const from = f.ref(v2);
    const trial = f.record('trial', v3, { from, bytes_downloaded: 7, bytes_reused: 9 });
    const ctx = await f.context({ highest_release: 3, current: from, update: trial });
    await f.clock.advance(600_000);
    const result = await commit(ctx, trial, v3.m);
    expect(result).toMatchObject({
      outcome: 'committed',
      version: '3.0.0',
      release: 3,
      message: '3.0.0 (release 3) committed',
    });
    const saved = await f.saved();
    expect(saved.current).toEqual({
      version: '3.0.0',
      release: 3,
      manifest_sha256: v3.digest,
      at: new Date(f.clock.now()).toISOString(),
    });
    expect(saved.previous).toEqual(from);
    expect(saved.update?.state).toBe('committed');
    expect(f.states).toEqual(['committed']);
    // gc: 1.0.0 (neither current nor previous) and the quarantine are gone, links untouched.
    expect((await readdir(f.paths.versions)).sort()).toEqual(['2.0.0', '3.0.0']);
    expect((await readdir(f.paths.manifests)).sort()).toEqual(['2.0.0.json', '3.0.0.json']);
    expect(await readdir(f.paths.quarantine)).toEqual([]);
    expect(await readlink(f.paths.current)).toBe('versions/3.0.0');
    expect(f.events.list({ type: 'model' })[0]).toMatchObject({
      type: 'model.update_committed',
      data: { from: '2.0.0', bytes_downloaded: 7, bytes_reused: 9, state: 'committed' },
    });
  });

  it('keeps the previous version when the first commit had nothing before it', async () => {
    const { f } = t;
    const [v1, , v3] = t.r;
    const prev = { version: '1.0.0', release: 1, manifest_sha256: v1.digest };
    const trial = f.record('trial', v3);
    const ctx = await f.context({ previous: prev, update: trial });
    await commit(ctx, trial, v3.m);
    expect((await f.saved()).previous).toEqual(prev);
    expect((await readdir(f.paths.versions)).sort()).toEqual(['1.0.0', '3.0.0']);
  });
});
