import { lstat, mkdir, readdir, symlink } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { useUpdateFixture } from '../../../test/helpers/models/update-fixture.js';
import { TaintedWorkDirError } from '../assemble.js';
import { fail, taintedWorkDir } from './failing.js';
import { Stop } from './types.js';

describe('failing', () => {
  const t = useUpdateFixture([['1.0.0', 1]]);

  it('records the reason, emits model.update_failed and returns or throws the result', async () => {
    const { f } = t;
    const [r] = t.r;
    const u = f.record('downloading', r);
    const ctx = await f.context({ update: u });
    await f.clock.advance(5000);
    const result = await fail(ctx, u, 'network', 'the store went away', false);
    expect(result).toEqual({
      outcome: 'failed',
      model: 'detector',
      version: '1.0.0',
      release: 1,
      reason: 'network',
      message: 'the store went away',
      stats: undefined,
    });
    expect((await f.saved()).update).toMatchObject({
      state: 'failed',
      reason: 'network',
      updated_at: new Date(f.clock.now()).toISOString(),
    });
    expect(f.events.list({ type: 'model' })[0]).toMatchObject({
      type: 'model.update_failed',
      message: 'detector update to 1.0.0 failed: the store went away',
      data: { reason: 'network' },
    });

    const again = await f.context({ update: f.record('verified', r) });
    const thrown = await fail(again, u, 'golden_mismatch', 'differs', true).catch(
      (e: unknown) => e,
    );
    expect(thrown).toBeInstanceOf(Stop);
    expect((thrown as Stop).result).toMatchObject({ outcome: 'failed', reason: 'golden_mismatch' });
  });

  it('moves a tainted work directory aside under a name with the fake time, untouched', async () => {
    const { f } = t;
    const [r] = t.r;
    const u = f.record('downloading', r);
    const ctx = await f.context({ update: u });
    const partial = f.paths.partial('1.0.0');
    await mkdir(partial, { recursive: true });
    await symlink('/etc/passwd', `${partial}/weights.bin`);
    const result = await taintedWorkDir(
      ctx,
      u,
      new TaintedWorkDirError(partial, ['weights.bin is a symbolic link']),
      false,
    );
    const moved = `.workdir-1.0.0-${f.clock.now()}`;
    expect(await readdir(f.paths.quarantine)).toEqual([moved]);
    expect((await lstat(`${f.paths.quarantine}/${moved}/weights.bin`)).isSymbolicLink()).toBe(true);
    await expect(lstat(partial)).rejects.toThrow(/ENOENT/);
    expect(result).toMatchObject({ outcome: 'failed', reason: 'workdir_tainted' });
    expect(result.message).toContain('weights.bin is a symbolic link');
    expect(f.states).toEqual(['failed']);
  });
});
