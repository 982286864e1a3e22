import type Docker from 'dockerode';
import { HealthError, healthEnv, runHealthCommand, waitHealthy } from '../health.js';
import type { SignedManifest } from '../manifest.js';
import { hasReload, runReloadHooks } from '../reload.js';
import type { UpdateRecord } from '../state.js';
import { runTrial } from '../trial.js';
import { commit } from './committing.js';
import type { UpdateContext } from './context.js';
import { rollback } from './rolling-back.js';
import { Stop, type ApplyResult } from './types.js';

/**
 * State activated (or a resumed trial): reloads the serving process and runs the health checks,
 * then → trial: watches the trial window and commits, or rolls back at the first failure.
 */
export async function healthAndTrial(
  ctx: UpdateContext,
  u: UpdateRecord,
  m: SignedManifest,
): Promise<ApplyResult> {
  const { health, reload } = ctx.opts;
  const dir = ctx.paths.current;
  try {
    if (hasReload(reload)) {
      const done = await runReloadHooks(reload, dockerOf(ctx));
      ctx.log.info({ hooks: done }, 'reload hooks done');
    }
    if (health.command)
      await runHealthCommand(
        health.command,
        health.commandTimeoutMs,
        healthEnv(ctx.opts.name, m.version, dir),
        ctx.deps.spawnFn,
      );
    if (health.url)
      await waitHealthy(
        health.url,
        health.urlTimeoutMs,
        Math.min(1000, health.probeIntervalMs),
        ctx.now,
      );
  } catch (err) {
    const reason = err instanceof HealthError ? err.reason : 'reload_failed';
    return rollback(ctx, u, reason, (err as Error).message);
  }
  const windowMs = trialWindowMs(health.trialWindowMs, m);
  const t = await ctx.transition('healthy', { ...u, trial_deadline: ctx.now() + windowMs });
  if (windowMs > 0)
    ctx.log.info({ version: m.version, seconds: windowMs / 1000 }, 'trial window started');
  await ctx.pause('trial');
  try {
    await runTrial({
      health,
      windowMs,
      events: ctx.deps.events,
      // Without a Docker client the container is still watched through the agent's events.
      docker: ctx.deps.docker,
      log: ctx.log,
      signal: ctx.deps.signal,
    });
  } catch (err) {
    if (ctx.deps.signal?.aborted) {
      // Shutting down: leave the trial state; the next start counts a trial start and resumes it.
      throw new Stop({
        outcome: 'failed',
        model: ctx.opts.name,
        version: m.version,
        release: m.release,
        reason: 'interrupted',
        message: 'interrupted during the trial; resumes on the next start',
      });
    }
    const reason = err instanceof HealthError ? err.reason : 'trial_failed';
    return rollback(ctx, t, reason, (err as Error).message);
  }
  return commit(ctx, t, m);
}

/** The trial window: the configured one, or longer when the manifest asks for more. */
export function trialWindowMs(configuredMs: number, m: SignedManifest): number {
  return Math.max(configuredMs, (m.health?.trial_seconds ?? 0) * 1000);
}

function dockerOf(ctx: UpdateContext): () => Docker {
  const d = ctx.deps.docker;
  if (!d)
    throw new HealthError(
      'docker_unavailable',
      'a container is configured but no Docker client is available',
    );
  return d;
}
