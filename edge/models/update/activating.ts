import { swapSymlink } from '../durable-fs.js';
import { HealthError, healthEnv, runGoldenCheck } from '../health.js';
import type { SignedManifest } from '../manifest.js';
import type { InstalledRef, UpdateRecord } from '../state.js';
import { containerBaseline } from '../trial.js';
import type { UpdateContext } from './context.js';
import { fail } from './failing.js';
import { quarantineDir, recordQuarantine } from './housekeeping.js';
import { healthAndTrial } from './trial-window.js';
import type { ApplyResult } from './types.js';

/**
 * State verified → activated: runs the manifest's golden-input check, makes sure the serving
 * container is there to watch, then swaps `previous`/`current` and goes on to the health checks.
 * A failure here is a plain `failed`: `current` has not moved.
 */
export async function activate(
  ctx: UpdateContext,
  u: UpdateRecord,
  m: SignedManifest,
): Promise<ApplyResult> {
  const { health } = ctx.opts;
  const dir = ctx.paths.version(m.version);
  const golden = m.health?.golden;
  if (golden && health.goldenCommand) {
    try {
      await runGoldenCheck(
        golden,
        dir,
        health.goldenCommand,
        health.goldenTimeoutMs,
        healthEnv(ctx.opts.name, m.version, dir),
        ctx.deps.spawnFn,
      );
    } catch (err) {
      const reason = err instanceof HealthError ? err.reason : 'golden_failed';
      await quarantineDir(ctx, dir, m);
      await recordQuarantine(ctx, m, reason, (err as Error).message);
      return fail(
        ctx,
        u,
        reason,
        `${m.version} failed the golden-input check before activation: ${(err as Error).message}`,
        false,
      );
    }
  } else if (golden) {
    ctx.log.warn(
      { version: m.version },
      'the manifest names a golden-input check but no goldenCommand is configured; skipped',
    );
  }
  if (health.container && ctx.deps.docker) {
    // A trial cannot watch a container that is not there: fail before touching `current`.
    try {
      await containerBaseline(ctx.deps.docker(), health.container);
    } catch (err) {
      return fail(ctx, u, 'container_missing', (err as Error).message, false);
    }
  }
  await links(ctx, m.version, u.from);
  const next = await ctx.transition('activated', { ...u, trial_starts: 1 });
  ctx.log.info({ version: m.version, from: u.from?.version }, `activated ${m.version}`);
  await ctx.pause('activated');
  return healthAndTrial(ctx, next, m);
}

/** Points previous at the version we came from and current at the new one (idempotent). */
export async function links(
  ctx: UpdateContext,
  version: string,
  from: InstalledRef | undefined,
): Promise<void> {
  if (from) await swapSymlink(ctx.paths.previous, ctx.paths.linkTarget(from.version));
  await ctx.pause('activating');
  await swapSymlink(ctx.paths.current, ctx.paths.linkTarget(version));
}
