import { lstat, readlink, symlink } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createUpdateFixture,
  type Release,
  type UpdateFixture,
} from '../../../test/helpers/models/update-fixture.js';
import { rollback } from './rolling-back.js';

describe('rolling back', () => {
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
    // v3 on trial: current -> v3, previous -> v2 (it was current), v1 was previous.
    await symlink('versions/3.0.0', f.paths.current);
    await symlink('versions/2.0.0', f.paths.previous);
  });
  afterEach(() => f.cleanup());

  const ref = (r: Release) => ({
    version: r.m.version,
    release: r.m.release,
    manifest_sha256: r.digest,
  });

  it('puts current and previous back, quarantines the version and records why, at the fake time', async () => {
    const trial = f.record('trial', v3, { from: ref(v2), from_previous: ref(v1) });
    const ctx = await f.context({
      highest_release: 3,
      current: ref(v3),
      previous: ref(v2),
      update: trial,
    });
    await f.clock.advance(90_000);
    const result = await rollback(ctx, trial, 'probe_failed', 'health probe failed');
    expect(result).toEqual({
      outcome: 'rolled_back',
      model: 'detector',
      version: '3.0.0',
      release: 3,
      reason: 'probe_failed',
      message: '3.0.0 rolled back to 2.0.0: health probe failed',
      stats: undefined,
    });
    expect(await readlink(f.paths.current)).toBe('versions/2.0.0');
    expect(await readlink(f.paths.previous)).toBe('versions/1.0.0');
    expect((await lstat(`${f.paths.quarantine}/3.0.0-r3`)).isDirectory()).toBe(true);
    await expect(lstat(f.paths.version('3.0.0'))).rejects.toThrow(/ENOENT/);
    const saved = await f.saved();
    expect(saved.current).toEqual(ref(v2));
    expect(saved.previous).toEqual(ref(v1));
    expect(saved.update).toMatchObject({ state: 'rolled_back', reason: 'probe_failed' });
    expect(saved.quarantined).toEqual([
      {
        version: '3.0.0',
        release: 3,
        reason: 'probe_failed: health probe failed',
        at: new Date(f.clock.now()).toISOString(),
      },
    ]);
    expect(f.states).toEqual(['rolling_back', 'rolled_back']);
    expect(f.pauses).toEqual(['rolling_back']);
    expect(f.events.list({ type: 'model' })[0]).toMatchObject({
      type: 'model.update_rolled_back',
      severity: 'warning',
      labels: { model: 'detector', version: '3.0.0' },
      data: { reason: 'probe_failed', to: '2.0.0', state: 'rolled_back', release: 3 },
    });
  });

  it('finishes an interrupted rollback without writing rolling_back again, and removes links to nothing', async () => {
    const first = f.record('rolling_back', v1, { reason: 'gpu_xid' });
    const ctx = await f.context({ highest_release: 1, update: first });
    await rollback(ctx, first, 'gpu_xid', 'finishing');
    expect(f.states).toEqual(['rolled_back']);
    // The first version had nothing before it: both links are gone.
    await expect(lstat(f.paths.current)).rejects.toThrow(/ENOENT/);
    await expect(lstat(f.paths.previous)).rejects.toThrow(/ENOENT/);
    const saved = await f.saved();
    expect(saved.current).toBeUndefined();
    expect(saved.quarantined.map((q) => q.release)).toEqual([1]);
  });
});
