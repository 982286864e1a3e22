import { readlink, rm, symlink } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { useUpdateFixture, versions } from '../../../test/helpers/models/update-fixture.js';
import { resume } from './resuming.js';

describe('resuming an interrupted update', () => {
  const t = useUpdateFixture(versions('1.0.0', '2.0.0'), { place: true });

  const from = () => t.f.ref(t.r[0]);
  /** Resumes 2.0.0 (over 1.0.0) interrupted in `state` after `starts` trial starts. */
  const interrupted = async (
    state: 'activated' | 'trial',
    starts: number,
    maxTrialStarts: number,
  ) => {
    const u = t.f.record(state, t.r[1], { from: from(), trial_starts: starts });
    const state0 = { current: from(), highest_release: 2, update: u };
    return resume(await t.f.context(state0, t.f.health({ maxTrialStarts })), u);
  };

  it('counts a trial start, redoes the half-done swap and commits', async () => {
    const { f } = t;
    // Killed between the two renames: previous already moved, current still on 1.0.0.
    await symlink('versions/1.0.0', f.paths.current);
    await symlink('versions/1.0.0', f.paths.previous);
    const result = await interrupted('trial', 1, 3);
    expect(result).toMatchObject({ outcome: 'committed', version: '2.0.0' });
    expect(await readlink(f.paths.current)).toBe('versions/2.0.0');
    expect(f.states).toEqual(['trial', 'trial', 'committed']);
    expect((await f.saved()).update?.trial_starts).toBe(2);
    expect(
      f.logs.some((l) => l.msg === 'resuming an interrupted update' && l.state === 'trial'),
    ).toBe(true);
  });

  it('rolls back once the trial was interrupted more often than maxTrialStarts', async () => {
    const { f } = t;
    await symlink('versions/2.0.0', f.paths.current);
    const result = await interrupted('activated', 2, 2);
    expect(result).toMatchObject({
      outcome: 'rolled_back',
      reason: 'trial_restarts',
      message:
        '2.0.0 rolled back to 1.0.0: the update was interrupted 2 times during its trial (limit 2)',
    });
    expect(f.states).toEqual(['activated', 'rolling_back', 'rolled_back']);
    expect(await readlink(f.paths.current)).toBe('versions/1.0.0');
  });

  it('fails before activation and rolls back after it when the manifest is gone', async () => {
    const { f } = t;
    const [, v2] = t.r;
    await rm(f.paths.manifest('2.0.0'));
    const verified = f.record('verified', v2, { from: from() });
    const before = await resume(await f.context({ update: verified }), verified);
    expect(before).toMatchObject({ outcome: 'failed', reason: 'manifest_lost' });
    expect(f.states).toEqual(['failed']);

    f.states.length = 0;
    await symlink('versions/2.0.0', f.paths.current);
    const trial = f.record('trial', v2, { from: from(), trial_starts: 1 });
    const after = await resume(await f.context({ current: from(), update: trial }), trial);
    expect(after).toMatchObject({ outcome: 'rolled_back', reason: 'manifest_lost' });
    expect(f.states).toEqual(['rolling_back', 'rolled_back']);
    expect(await readlink(f.paths.current)).toBe('versions/1.0.0');
  });

  it('verifies and activates an update killed after assembly', async () => {
    const { f } = t;
    const [, v2] = t.r;
    await rm(f.paths.version('2.0.0'), { recursive: true });
    await f.place(v2, 'partial');
    const u = f.record('assembled', v2);
    const result = await resume(await f.context({ highest_release: 2, update: u }), u);
    expect(result).toMatchObject({ outcome: 'committed', version: '2.0.0' });
    expect(f.states).toEqual(['verified', 'activated', 'trial', 'committed']);
    expect(f.pauses).toEqual(['verified', 'activating', 'activated', 'trial']);
  });
});
