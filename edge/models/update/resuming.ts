import { readLocalManifest } from '../assemble.js';
import { manifestDigest } from '../manifest.js';
import type { UpdateRecord } from '../state.js';
import { activate, links } from './activating.js';
import { checkAndUpdate } from './checking.js';
import type { UpdateContext } from './context.js';
import { fail } from './failing.js';
import { rollback } from './rolling-back.js';
import { healthAndTrial } from './trial-window.js';
import type { ApplyResult } from './types.js';
import { install } from './verifying.js';

/**
 * Picks an interrupted update up where the crash left it: the state in state.json says which step
 * comes next. A trial interrupted more often than `maxTrialStarts` is rolled back (a crash loop),
 * and a lost manifest fails (before activation) or rolls back (after).
 */
export async function resume(ctx: UpdateContext, u: UpdateRecord): Promise<ApplyResult> {
  ctx.log.info(
    { state: u.state, version: u.version, release: u.release },
    'resuming an interrupted update',
  );
  const manifest = await readLocalManifest(ctx.paths.manifest(u.version));
  if (!manifest || manifestDigest(manifest) !== u.manifest_sha256) {
    if (u.state === 'rolling_back' || u.state === 'activated' || u.state === 'trial')
      return rollback(ctx, u, 'manifest_lost', 'the manifest of the version on trial is missing');
    return fail(
      ctx,
      u,
      'manifest_lost',
      'the manifest of the interrupted update is missing; it will be fetched again',
      false,
    );
  }
  switch (u.state) {
    case 'assembled':
      await install(ctx, u, manifest);
      return activate(ctx, u, manifest);
    case 'verified':
      return activate(ctx, u, manifest);
    case 'activated':
    case 'trial': {
      const next = await ctx.transition('restarted', { ...u, trial_starts: u.trial_starts + 1 });
      const limit = ctx.opts.health.maxTrialStarts;
      if (next.trial_starts > limit) {
        return rollback(
          ctx,
          next,
          'trial_restarts',
          `the update was interrupted ${next.trial_starts - 1} times during its trial (limit ${limit})`,
        );
      }
      // Redo the swap: the crash may have happened between the two renames.
      await links(ctx, u.version, u.from);
      return healthAndTrial(ctx, next, manifest);
    }
    case 'rolling_back':
      return rollback(ctx, u, u.reason ?? 'health_failed', 'finishing an interrupted rollback');
    case 'idle':
    case 'downloading':
    case 'committed':
    case 'rolled_back':
    case 'failed':
      return checkAndUpdate(ctx);
  }
}
