import { describe, expect, it } from 'vitest';
import {
  UPDATE_PATH,
  useUpdateFixture,
  type UpdateFixture,
} from '../../../test/helpers/models/update-fixture.js';
import { checkAndUpdate, sameFiles } from './checking.js';
import { Stop, type ApplyResult } from './types.js';

/** Runs the check and returns its result, refused ones included (they unwind as Stop). */
async function check(f: UpdateFixture, ...args: Parameters<UpdateFixture['context']>) {
  const ctx = await f.context(...args);
  try {
    return { result: await checkAndUpdate(ctx), ctx };
  } catch (err) {
    if (err instanceof Stop) return { result: err.result, ctx };
    throw err;
  }
}

describe('checking: what a fetched manifest leads to', () => {
  const t = useUpdateFixture([['1.0.0', 5]]);

  const refused = (result: ApplyResult, reason: string) =>
    expect(result).toMatchObject({ outcome: 'refused', model: 'detector', reason });

  it('refuses an expired manifest by the fake clock, tolerating the configured skew', async () => {
    const { f } = t;
    const [r] = t.r;
    await f.clock.advance(86_400_000);
    const { result } = await check(f);
    refused(result, 'expired');
    expect(result.message).toContain(`expired at ${r.m.expires}`);
    // One second of tolerated skew makes the same manifest valid again at that instant.
    const skewed = await check(f, {}, { clockSkewMs: 1000, maxBytes: 1 });
    refused(skewed.result, 'too_large');
    expect(f.states).toEqual([]);
  });

  it('refuses a manifest of another model, and a model above maxBytes', async () => {
    const { f } = t;
    const [r] = t.r;
    const other = (await check(f, {}, { name: 'other' })).result;
    expect(other).toMatchObject({ outcome: 'refused', model: 'other', reason: 'wrong_model' });
    expect(other.message).toBe('the manifest is for model detector, not other');
    const big = await check(f, {}, { maxBytes: r.m.files[0]!.size });
    refused(big.result, 'too_large');
    expect(big.result.message).toContain(`above the limit of ${r.m.files[0]!.size}`);
  });

  it('refuses a release not above the highest one, and a quarantined release', async () => {
    const { f } = t;
    const old = await check(f, { highest_release: 5 });
    refused(old.result, 'release_not_newer');
    expect(old.result.message).toContain('highest release installed here (5)');
    const q = await check(f, {
      quarantined: [{ version: '1.0.0', release: 5, reason: 'x', at: 'y' }],
    });
    refused(q.result, 'quarantined');
    // Nothing was written: state.json is still what the context started with.
    expect((await f.saved()).update).toBeUndefined();
  });

  it('retries the same manifest after a failed download although its release is the highest', async () => {
    const { f } = t;
    const [r] = t.r;
    const failed = f.record('failed', r, { started_at: '2026-01-01T00:00:00.000Z' });
    const { result, ctx } = await check(f, { highest_release: 5, update: failed });
    expect(result).toMatchObject({ outcome: 'committed', version: '1.0.0', release: 5 });
    // The retry keeps the first attempt's start.
    expect(ctx.state.update?.started_at).toBe('2026-01-01T00:00:00.000Z');
    expect(f.states).toEqual(UPDATE_PATH);
  });

  it('is up to date when the current version has this manifest, and refreshes a re-signed one', async () => {
    const { f } = t;
    const [r] = t.r;
    const current = { version: '1.0.0', release: 5, manifest_sha256: r.digest };
    const same = await check(f, { highest_release: 5, current });
    expect(same.result).toMatchObject({ outcome: 'up_to_date', version: '1.0.0', release: 5 });

    await f.place(r);
    const again = await f.release('1.0.0', 6);
    expect(sameFiles(r.m, again.m)).toBe(true);
    await f.clock.advance(30_000);
    const { result } = await check(f, { highest_release: 5, current });
    expect(result).toMatchObject({
      outcome: 'committed',
      message: '1.0.0 refreshed to release 6',
    });
    const saved = await f.saved();
    expect(saved.highest_release).toBe(6);
    expect(saved.current).toEqual({
      version: '1.0.0',
      release: 6,
      manifest_sha256: again.digest,
      at: new Date(f.clock.now()).toISOString(),
    });
    // A refresh swaps nothing: no update state was written.
    expect(saved.update).toBeUndefined();
    expect(f.states).toEqual([]);
  });

  it('refuses a reused version name with other files', async () => {
    const { f } = t;
    const [r] = t.r;
    await f.place(r);
    const current = { version: '1.0.0', release: 5, manifest_sha256: 'f'.repeat(64) };
    const other = await f.release('1.0.0', 7, {
      from: (await f.release('2.0.0', 6)).from,
    });
    expect(sameFiles(r.m, other.m)).toBe(false);
    refused((await check(f, { highest_release: 6, current })).result, 'version_reused');
  });
});
