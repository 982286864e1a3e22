import type { SignedManifest } from '../manifest.js';
import type { InstalledRef, UpdateRecord } from '../state.js';
import { iso, type UpdateContext } from './context.js';
import { gc } from './housekeeping.js';
import type { ApplyResult } from './types.js';

/**
 * trial → committed: the version on trial becomes `current` (the one it replaced `previous`),
 * versions other than those two are removed and `model.update_committed` is emitted.
 */
export async function commit(
  ctx: UpdateContext,
  u: UpdateRecord,
  m: SignedManifest,
): Promise<ApplyResult> {
  const ref: InstalledRef = {
    version: m.version,
    release: m.release,
    manifest_sha256: u.manifest_sha256,
    at: iso(ctx.now()),
  };
  const done = await ctx.transition('passed', u, {
    current: ref,
    previous: u.from ?? ctx.state.previous,
  });
  await gc(ctx);
  ctx.emit(
    'model.update_committed',
    'info',
    `${ctx.opts.name} ${m.version} (release ${m.release}) committed`,
    done,
    {
      from: u.from?.version ?? null,
      bytes_downloaded: done.bytes_downloaded,
      bytes_reused: done.bytes_reused,
    },
  );
  return {
    outcome: 'committed',
    model: ctx.opts.name,
    version: m.version,
    release: m.release,
    message: `${m.version} (release ${m.release}) committed`,
    stats: ctx.stats,
  };
}
