import { lstat, rename, rm, stat } from 'node:fs/promises';
import { TaintedWorkDirError, verifyTree, VerifyError, workDirProblems } from '../assemble.js';
import { fsyncDir } from '../durable-fs.js';
import type { SignedManifest } from '../manifest.js';
import type { UpdateRecord } from '../state.js';
import type { UpdateContext } from './context.js';
import { fail, taintedWorkDir } from './failing.js';
import { pruneExtras, quarantineDir, recordQuarantine } from './housekeeping.js';

const exists = (path: string, how: typeof lstat | typeof stat): Promise<boolean> =>
  how(path).then(
    () => true,
    () => false,
  );

/**
 * State assembled → verified: checks every assembled file against the signed manifest (unless the
 * assembly of this run just did) and moves the work directory into versions/<v>. A file that does
 * not match quarantines the whole version and fails the update (thrown as Stop); a tainted work
 * directory is moved aside the same way.
 */
export async function install(
  ctx: UpdateContext,
  u: UpdateRecord,
  m: SignedManifest,
): Promise<void> {
  const { paths } = ctx;
  const partial = paths.partial(m.version);
  const final = paths.version(m.version);
  const partialExists = await exists(partial, lstat);
  if (partialExists) {
    const problems = await workDirProblems(partial);
    if (problems.length > 0)
      await taintedWorkDir(ctx, u, new TaintedWorkDirError(partial, problems), true);
  }
  try {
    // The assembly of this run has just hashed every file whole; a resumed update has not.
    const verified = partialExists && ctx.stats?.verified === true;
    if (!verified) await verifyTree(partialExists ? partial : final, m);
  } catch (err) {
    if (!(err instanceof VerifyError) && (err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw err;
    await quarantineDir(ctx, partialExists ? partial : final, m);
    await recordQuarantine(ctx, m, 'verify_failed', (err as Error).message);
    await fail(
      ctx,
      u,
      'verify_failed',
      `${m.version} failed verification: ${(err as Error).message}`,
      true,
    );
  }
  if (partialExists) {
    await pruneExtras(partial, m);
    if (await exists(final, stat)) {
      // Same version name installed before (a re-released old version): replace it whole.
      const old = paths.oldCopy(m.version);
      await rename(final, old);
      await rename(partial, final);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(partial, final);
    }
    await fsyncDir(paths.versions);
  }
  await ctx.transition('verified', u);
  await ctx.pause('verified');
}
