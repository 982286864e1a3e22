import { readdir, readlink } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { useUpdateFixture } from '../../../test/helpers/models/update-fixture.js';
import { activate } from './activating.js';

const golden = {
  golden: {
    input: 'config.json',
    expected: 'config.json',
    compare: 'exact' as const,
    abs_tolerance: 0,
  },
};

describe('activating', () => {
  const t = useUpdateFixture(
    [
      ['1.0.0', 1],
      ['2.0.0', 2, { health: golden }],
    ],
    { place: true },
  );

  const from = () => t.f.ref(t.r[0]);
  /** 2.0.0 verified over 1.0.0, with this golden-input runner. */
  const verified = async (goldenCommand: string[]) => {
    const u = t.f.record('verified', t.r[1], { from: from() });
    return {
      u,
      ctx: await t.f.context({ current: from(), update: u }, t.f.health({ goldenCommand })),
    };
  };

  it('passes the golden check, swaps previous then current, and starts the first trial', async () => {
    const { f } = t;
    const [, v2] = t.r;
    const { u, ctx } = await verified(['cat']);
    const result = await activate(ctx, u, v2.m);
    expect(result).toMatchObject({ outcome: 'committed', version: '2.0.0' });
    expect(await readlink(f.paths.current)).toBe('versions/2.0.0');
    expect(await readlink(f.paths.previous)).toBe('versions/1.0.0');
    expect(f.states).toEqual(['activated', 'trial', 'committed']);
    expect(f.pauses).toEqual(['activating', 'activated', 'trial']);
    // Activation counted the first trial start.
    expect((await f.saved()).update?.trial_starts).toBe(1);
    expect(f.logs.some((l) => l.msg === 'activated 2.0.0' && l.from === '1.0.0')).toBe(true);
  });

  it('never moves current when the golden output differs: quarantined and failed', async () => {
    const { f } = t;
    const [, v2] = t.r;
    const { u, ctx } = await verified(['sh', '-c', 'echo something else']);
    await f.clock.advance(1500);
    const result = await activate(ctx, u, v2.m);
    expect(result).toMatchObject({
      outcome: 'failed',
      reason: 'golden_mismatch',
      version: '2.0.0',
    });
    expect(result.message).toMatch(/^2\.0\.0 failed the golden-input check before activation/);
    await expect(readlink(f.paths.current)).rejects.toThrow(/ENOENT/);
    expect(await readdir(f.paths.quarantine)).toEqual(['2.0.0-r2']);
    const saved = await f.saved();
    expect(saved.quarantined[0]).toMatchObject({
      release: 2,
      at: new Date(f.clock.now()).toISOString(),
    });
    expect(f.states).toEqual(['failed']);
    expect(f.pauses).toEqual([]);
  });

  it('skips a golden check no goldenCommand can run, with a warning', async () => {
    const { f } = t;
    const [, v2] = t.r;
    const u = f.record('verified', v2);
    const ctx = await f.context({ update: u });
    await activate(ctx, u, v2.m);
    expect(f.logs.some((l) => String(l.msg).includes('no goldenCommand is configured'))).toBe(true);
    expect(f.states).toEqual(['activated', 'trial', 'committed']);
    // Nothing came before: previous was not created.
    await expect(readlink(f.paths.previous)).rejects.toThrow(/ENOENT/);
  });
});
