import { readdir, readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { useUpdateFixture } from '../../../test/helpers/models/update-fixture.js';
import { install } from './verifying.js';
import { Stop } from './types.js';

describe('verifying', () => {
  const t = useUpdateFixture([['1.0.0', 1]]);

  it('moves verified files into versions/<v> without the extras, then pauses at verified', async () => {
    const { f } = t;
    const [r] = t.r;
    await f.place(r, 'partial');
    await writeFile(`${f.paths.partial('1.0.0')}/stray.tmp`, 'x');
    const u = f.record('assembled', r);
    const ctx = await f.context({ update: u });
    await install(ctx, u, r.m);
    expect((await readdir(f.paths.version('1.0.0'))).sort()).toEqual([
      'config.json',
      'weights.bin',
    ]);
    expect(await readdir(f.paths.versions)).toEqual(['1.0.0']);
    expect(f.states).toEqual(['verified']);
    expect(f.pauses).toEqual(['verified']);
  });

  it('quarantines a version whose file does not match and fails with verify_failed', async () => {
    const { f } = t;
    const [r] = t.r;
    await f.place(r, 'partial');
    const weights = `${f.paths.partial('1.0.0')}/weights.bin`;
    const bytes = await readFile(weights);
    bytes[100] = bytes[100]! ^ 0xff;
    await writeFile(weights, bytes);
    const u = f.record('assembled', r);
    const ctx = await f.context({ update: u });
    await f.clock.advance(2000);
    const err = await install(ctx, u, r.m).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Stop);
    expect((err as Stop).result).toMatchObject({ outcome: 'failed', reason: 'verify_failed' });
    expect(await readdir(f.paths.quarantine)).toEqual(['1.0.0-r1']);
    const saved = await f.saved();
    expect(saved.update?.state).toBe('failed');
    expect(saved.quarantined).toHaveLength(1);
    expect(saved.quarantined[0]).toMatchObject({
      release: 1,
      at: new Date(f.clock.now()).toISOString(),
    });
    expect(saved.quarantined[0]!.reason).toMatch(/^verify_failed: .*weights\.bin/);
    expect(f.states).toEqual(['failed']);
  });
});
