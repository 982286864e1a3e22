import { readlink, symlink } from 'node:fs/promises';
import { beforeEach, describe, expect, it } from 'vitest';
import { useUpdateFixture } from '../../../test/helpers/models/update-fixture.js';
import type { HealthSettings } from '../health.js';
import { healthAndTrial, trialWindowMs } from './trial-window.js';
import type { ApplyDeps } from './types.js';
import { Stop } from './types.js';

describe('health checks and the trial window', () => {
  const t = useUpdateFixture(
    [
      ['1.0.0', 1],
      ['2.0.0', 2, { health: { trial_seconds: 120 } }],
    ],
    { place: true },
  );
  beforeEach(async () => {
    const { f } = t;
    await symlink('versions/2.0.0', f.paths.current);
    await symlink('versions/1.0.0', f.paths.previous);
  });

  const from = () => t.f.ref(t.r[0]);
  /** 2.0.0 activated over 1.0.0 (first trial start), checked with these health settings. */
  const activated = async (health: Partial<HealthSettings>, deps: Partial<ApplyDeps> = {}) => {
    const u = t.f.record('activated', t.r[1], { from: from(), trial_starts: 1 });
    return { u, ctx: await t.f.context({ current: from(), update: u }, t.f.health(health), deps) };
  };

  it('takes the longer of the configured window and the one the manifest asks for', () => {
    const [v1, v2] = t.r;
    expect(trialWindowMs(0, v2.m)).toBe(120_000);
    expect(trialWindowMs(600_000, v2.m)).toBe(600_000);
    expect(trialWindowMs(5000, v1.m)).toBe(5000);
  });

  it('rolls back when the health command fails, before any trial starts', async () => {
    const { f } = t;
    const [, v2] = t.r;
    const { u, ctx } = await activated({ command: ['sh', '-c', 'exit 3'] });
    const result = await healthAndTrial(ctx, u, v2.m);
    expect(result).toMatchObject({ outcome: 'rolled_back', version: '2.0.0' });
    expect(result.reason).toBe('command_failed');
    expect(f.states).toEqual(['rolling_back', 'rolled_back']);
    expect(await readlink(f.paths.current)).toBe('versions/1.0.0');
  });

  it('sets the trial deadline from the fake clock and leaves the trial to resume when shut down', async () => {
    const { f } = t;
    const [, v2] = t.r;
    const abort = new AbortController();
    const { u, ctx } = await activated(
      { trialWindowMs: 30_000, command: ['true'] },
      {
        signal: abort.signal,
        pause: (point) => {
          f.pauses.push(point);
          // The agent stops once the trial watches (its listeners are set right after this).
          if (point === 'trial') setImmediate(() => abort.abort(new Error('agent stopping')));
          return Promise.resolve();
        },
      },
    );
    await f.clock.advance(7000);
    const err = await healthAndTrial(ctx, u, v2.m).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Stop);
    expect((err as Stop).result).toMatchObject({ outcome: 'failed', reason: 'interrupted' });
    const saved = await f.saved();
    // The manifest's 120 s beat the configured 30 s.
    expect(saved.update).toMatchObject({ state: 'trial', trial_deadline: f.clock.now() + 120_000 });
    expect(f.states).toEqual(['trial']);
    expect(f.pauses).toEqual(['trial']);
    expect(f.logs.some((l) => l.msg === 'trial window started' && l.seconds === 120)).toBe(true);
  });

  it('commits a version whose health command passes when there is no window', async () => {
    const { f } = t;
    const { u, ctx } = await activated({
      command: ['sh', '-c', 'test -f "$GPULSE_MODEL_DIR/weights.bin"'],
    });
    const v0 = await f.release('2.0.1', 3);
    const result = await healthAndTrial(ctx, u, { ...v0.m, version: '2.0.0', release: 2 });
    expect(result).toMatchObject({ outcome: 'committed', version: '2.0.0', release: 2 });
    expect(f.states).toEqual(['trial', 'committed']);
    expect((await f.saved()).update?.trial_deadline).toBe(f.clock.now());
  });
});
