import { lstat, mkdir } from 'node:fs/promises';
import { readLinkIfExists } from './durable-fs.js';
import { acquireLock } from './lock.js';
import { ModelPaths, readState, TERMINAL_STATES } from './state.js';
import { checkAndUpdate } from './update/checking.js';
import { UpdateContext } from './update/context.js';
import { resume } from './update/resuming.js';
import { Stop, type ApplyDeps, type ApplyOptions, type ApplyResult } from './update/types.js';

// The updater is one module per state under update/ (checking, downloading, verifying,
// activating, trial-window, committing, rolling-back, failing, resuming) with the legal state
// changes in update/transitions.ts; this module is its entry point.
export {
  PAUSE_POINTS,
  type ApplyDeps,
  type ApplyOptions,
  type ApplyOutcome,
  type ApplyResult,
  type PausePoint,
  type UpdateProgress,
} from './update/types.js';
export { downloadLine, downloadPercent, fmtBytes } from './update/progress.js';

/** Applies the latest manifest of a model source to a model root, resuming any interrupted update. */
export async function applyModelUpdate(opts: ApplyOptions, deps: ApplyDeps): Promise<ApplyResult> {
  const paths = new ModelPaths(opts.dir);
  for (const d of [paths.root, paths.versions, paths.manifests, paths.quarantine]) {
    await mkdir(d, { recursive: true });
    // Every write goes below these: a link here would carry them out of the model root.
    const s = await lstat(d);
    if (d !== paths.root && !s.isDirectory())
      throw new Error(
        `refusing to update: ${d} is a symbolic link or not a directory; the updater writes only inside the model root (${paths.root}); make it a plain directory`,
      );
  }
  const release = await acquireLock(paths.lock);
  try {
    const ctx = new UpdateContext(opts, deps, paths, await readState(paths, opts.name));
    try {
      const u = ctx.state.update;
      if (u && !TERMINAL_STATES.has(u.state) && u.state !== 'downloading')
        return await resume(ctx, u);
      return await checkAndUpdate(ctx);
    } catch (err) {
      if (err instanceof Stop) return err.result;
      throw err;
    }
  } finally {
    await release();
  }
}

/** Current `current` link target of a model root (for status). */
export async function currentTarget(dir: string): Promise<string | undefined> {
  return readLinkIfExists(new ModelPaths(dir).current);
}
