import { unlink } from 'node:fs/promises';
import { readLocalManifest } from '../assemble.js';
import { fsyncDir, swapSymlink } from '../durable-fs.js';
import { hasReload, runReloadHooks } from '../reload.js';
import type { UpdateRecord } from '../state.js';
import type { UpdateContext } from './context.js';
import { quarantineDir, recordQuarantine } from './housekeeping.js';
import type { ApplyResult } from './types.js';

/**
 * activated/trial → rolling_back → rolled_back: points `current` and `previous` back where they
 * were before the update, reloads the serving process (best effort), quarantines the refused
 * version and emits `model.update_rolled_back`. Resumes an interrupted rollback as well.
 */
export async function rollback(
  ctx: UpdateContext,
  u: UpdateRecord,
  reason: string,
  message: string,
): Promise<ApplyResult> {
  const { paths } = ctx;
  let r = u;
  if (u.state !== 'rolling_back') r = await ctx.transition('roll_back', { ...u, reason });
  ctx.log.warn(
    { version: u.version, reason, to: u.from?.version },
    `rolling back ${u.version}: ${message}`,
  );
  await ctx.pause('rolling_back');
  if (u.from) await swapSymlink(paths.current, paths.linkTarget(u.from.version));
  else await unlink(paths.current).catch(() => undefined);
  if (u.from_previous) await swapSymlink(paths.previous, paths.linkTarget(u.from_previous.version));
  else await unlink(paths.previous).catch(() => undefined);
  await fsyncDir(paths.root);
  if (hasReload(ctx.opts.reload)) {
    // Best effort: the files are back either way; a failed reload is reported, not fatal.
    await runReloadHooks(ctx.opts.reload, ctx.deps.docker ?? noDocker).catch((err: unknown) =>
      ctx.log.error(
        { err: (err as Error).message },
        'reload after rollback failed; the serving process may still run the refused version',
      ),
    );
  }
  const manifest = await readLocalManifest(paths.manifest(u.version));
  await quarantineDir(
    ctx,
    paths.version(u.version),
    manifest ?? { version: u.version, release: u.release },
  );
  ctx.state = { ...ctx.state, current: u.from, previous: u.from_previous };
  await recordQuarantine(ctx, { version: u.version, release: u.release }, reason, message);
  const done = await ctx.transition('restored', { ...r, reason });
  ctx.emit(
    'model.update_rolled_back',
    'warning',
    `${ctx.opts.name} ${u.version} rolled back to ${u.from?.version ?? 'nothing'}: ${message}`,
    done,
    { reason, to: u.from?.version ?? null },
  );
  return {
    outcome: 'rolled_back',
    model: ctx.opts.name,
    version: u.version,
    release: u.release,
    reason,
    message: `${u.version} rolled back to ${u.from?.version ?? 'no version'}: ${message}`,
    stats: ctx.stats,
  };
}

function noDocker(): never {
  throw new Error('a container hook is configured but no Docker client is available');
}
