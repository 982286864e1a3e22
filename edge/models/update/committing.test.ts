import { mkdir, readdir, readlink, symlink } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createUpdateFixture,
  type Release,
  type UpdateFixture,
} from '../../../test/helpers/models/update-fixture.js';
import { commit } from './committing.js';

describe('committing', () => {
  let f: UpdateFixture;
  let v1: Release;
  let v2: Release;
  let v3: Release;
  beforeEach(async () => {
    f = await createUpdateFixture();
    v1 = await f.release('1.0.0', 1);
    v2 = await f.release('2.0.0', 2);
    v3 = await f.release('3.0.0', 3);
    for (const r of [v1, v2, v3]) await f.place(r);
    await symlink('versions/3.0.0', f.paths.current);
    await symlink('versions/2.0.0', f.paths.previous);
    await mkdir(`${f.paths.quarantine}/0.9.0-r0`);
  });
  afterEach(() => f.cleanup());

  it('makes the trial version current at the fake time, keeps only current and previous', async () => {
    const from = { version: '2.0.0', release: 2, manifest_sha256: v2.digest };
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
    const prev = { version: '1.0.0', release: 1, manifest_sha256: v1.digest };
    const trial = f.record('trial', v3);
    const ctx = await f.context({ previous: prev, update: trial });
    await commit(ctx, trial, v3.m);
    expect((await f.saved()).previous).toEqual(prev);
    expect((await readdir(f.paths.versions)).sort()).toEqual(['1.0.0', '3.0.0']);
  });
});
