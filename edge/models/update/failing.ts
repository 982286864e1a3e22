import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { TaintedWorkDirError } from '../assemble.js';
import { fsyncDir } from '../durable-fs.js';
import type { UpdateRecord } from '../state.js';
import type { UpdateContext } from './context.js';
import { Stop, type ApplyResult } from './types.js';

/**
 * State `failed` (from downloading, assembled or verified: `current` never moved): records the
 * reason, emits `model.update_failed` and returns the result, or throws it as Stop when `stop`.
 */
export async function fail(
  ctx: UpdateContext,
  u: UpdateRecord,
  reason: string,
  message: string,
  stop: true,
): Promise<never>;
export async function fail(
  ctx: UpdateContext,
  u: UpdateRecord,
  reason: string,
  message: string,
  stop: false,
): Promise<ApplyResult>;
export async function fail(
  ctx: UpdateContext,
  u: UpdateRecord,
  reason: string,
  message: string,
  stop: boolean,
): Promise<ApplyResult> {
  const done = await ctx.transition('fail', { ...u, reason });
  ctx.emit(
    'model.update_failed',
    'warning',
    `${ctx.opts.name} update to ${u.version} failed: ${message}`,
    done,
    { reason },
  );
  const result: ApplyResult = {
    outcome: 'failed',
    model: ctx.opts.name,
    version: u.version,
    release: u.release,
    reason,
    message,
    stats: ctx.stats,
  };
  if (stop) throw new Stop(result);
  return result;
}

/**
 * The work directory holds links or files the updater never writes (planted, or another tool
 * writing under the model root): it is moved aside into quarantine/ untouched and this attempt
 * fails; the next one starts a fresh work directory. Nothing is written through it.
 */
export async function taintedWorkDir(
  ctx: UpdateContext,
  u: UpdateRecord,
  err: TaintedWorkDirError,
  stop: boolean,
): Promise<ApplyResult> {
  const dest = join(ctx.paths.quarantine, `.workdir-${u.version}-${ctx.now()}`);
  await rename(err.dir, dest).catch((e: unknown) => {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  });
  await fsyncDir(ctx.paths.quarantine).catch(() => undefined);
  ctx.log.error(
    { version: u.version, problems: err.problems, moved_to: dest },
    'the work directory held links or files the updater never writes; moved to quarantine, nothing written through it',
  );
  const message = `the work directory of ${u.version} held what the updater never writes (${err.problems.join('; ')}); it was moved to ${dest} unused and the next attempt starts afresh; check what else writes under ${ctx.paths.root}`;
  if (stop) return fail(ctx, u, 'workdir_tainted', message, true);
  return fail(ctx, u, 'workdir_tainted', message, false);
}
