import { lstat, readlink } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { useUpdateFixture, versions } from '../../../test/helpers/models/update-fixture.js';
import { rollback } from './rolling-back.js';

describe('rolling back', () => {
  // 3.0.0 on trial: current -> 3.0.0, previous -> 2.0.0 (it was current), 1.0.0 was previous.
  const t = useUpdateFixture(versions('1.0.0', '2.0.0', '3.0.0'), {
    place: true,
    links: { current: '3.0.0', previous: '2.0.0' },
  });

  it('puts current and previous back, quarantines the version and records why, at the fake time', async () => {
    const { f } = t;
    const [v1, v2, v3] = t.r;
    const trial = f.record('trial', v3, { from: f.ref(v2), from_previous: f.ref(v1) });
    const ctx = await f.context({
      highest_release: 3,
      current: f.ref(v3),
      previous: f.ref(v2),
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
    expect(saved.current).toEqual(f.ref(v2));
    expect(saved.previous).toEqual(f.ref(v1));
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
    const { f } = t;
    const [v1] = t.r;
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
