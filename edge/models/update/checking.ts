import { readLocalManifest } from '../assemble.js';
import { writeFileDurable } from '../durable-fs.js';
import { ChunkFetcher, FetchError } from '../fetcher.js';
import { manifestDigest, manifestSize, ManifestError, type SignedManifest } from '../manifest.js';
import { verifyManifest } from '../signing.js';
import type { InstalledRef } from '../state.js';
import { sourceUrls } from '../store-layout.js';
import { iso, type UpdateContext } from './context.js';
import { download } from './downloading.js';
import type { ApplyResult } from './types.js';

/**
 * State idle (or after a finished update): fetches the source's signed manifest and decides.
 * Refused (unwound as Stop, nothing written): unreachable, unsigned, wrong model, expired, too
 * large, quarantined, not newer than the highest release seen, a reused version name. Up to date:
 * nothing to do. Same files re-signed: refreshed in place. Anything else is downloaded (resumed
 * when the interrupted or failed attempt was the same manifest).
 */
export async function checkAndUpdate(ctx: UpdateContext): Promise<ApplyResult> {
  const { opts } = ctx;
  const { base, manifest: manifestUrl } = sourceUrls(opts.source);
  const fetcher = new ChunkFetcher(base, opts.fetch, ctx.log);
  let text: string;
  try {
    text = await fetcher.getText(manifestUrl, opts.maxManifestBytes, ctx.deps.signal);
  } catch (err) {
    const reason = err instanceof FetchError ? `manifest_${err.reason}` : 'manifest_unreachable';
    ctx.refuse(reason, `cannot fetch ${manifestUrl.href}: ${(err as Error).message}`);
  }
  let m: SignedManifest;
  try {
    m = verifyManifest(text, opts.trust).signed;
  } catch (err) {
    if (err instanceof ManifestError) ctx.refuse(err.reason, err.message);
    throw err;
  }
  const digest = manifestDigest(m);
  const now = ctx.now();
  if (m.model !== opts.name)
    ctx.refuse('wrong_model', `the manifest is for model ${m.model}, not ${opts.name}`, m);
  if (Date.parse(m.expires) + opts.clockSkewMs <= now)
    ctx.refuse(
      'expired',
      `manifest release ${m.release} expired at ${m.expires}: the store is stale or frozen; the publisher must publish a new release`,
      m,
    );
  const size = manifestSize(m);
  if (size > opts.maxBytes)
    ctx.refuse(
      'too_large',
      `the model is ${size} bytes, above the limit of ${opts.maxBytes} (maxBytes)`,
      m,
    );
  const { state } = ctx;
  const cur = state.current;
  if (cur && cur.manifest_sha256 === digest) {
    return {
      outcome: 'up_to_date',
      model: opts.name,
      version: m.version,
      release: m.release,
      message: `${m.version} (release ${m.release}) is already current`,
    };
  }
  if (state.quarantined.some((q) => q.release === m.release))
    ctx.refuse(
      'quarantined',
      `release ${m.release} (${m.version}) was quarantined earlier; publish a new release`,
      m,
    );
  const u = state.update;
  const retry =
    u !== undefined &&
    u.manifest_sha256 === digest &&
    (u.state === 'downloading' || u.state === 'failed');
  if (m.release < state.highest_release || (m.release === state.highest_release && !retry)) {
    ctx.refuse(
      'release_not_newer',
      `manifest release ${m.release} is not above the highest release installed here (${state.highest_release}): refused as a rollback attack; a downgrade must be published as a new release`,
      m,
    );
  }
  if (cur && m.version === cur.version) {
    const installed = await readLocalManifest(ctx.paths.manifest(cur.version));
    if (installed && sameFiles(installed, m)) return refresh(ctx, m, digest, text);
    ctx.refuse(
      'version_reused',
      `version ${m.version} is installed with different content; publish changed files under a new version`,
      m,
    );
  }
  return download(ctx, m, digest, text, fetcher, retry ? u : undefined);
}

/** Same files, newer release (re-signed to extend expiry): record it, nothing to swap. */
export async function refresh(
  ctx: UpdateContext,
  m: SignedManifest,
  digest: string,
  text: string,
): Promise<ApplyResult> {
  await writeFileDurable(ctx.paths.manifest(m.version), text);
  const ref: InstalledRef = {
    version: m.version,
    release: m.release,
    manifest_sha256: digest,
    at: iso(ctx.now()),
  };
  await ctx.saveState({
    highest_release: Math.max(ctx.state.highest_release, m.release),
    current: ref,
  });
  ctx.log.info(
    { version: m.version, release: m.release, expires: m.expires },
    'manifest refreshed (same files, new release)',
  );
  return {
    outcome: 'committed',
    model: ctx.opts.name,
    version: m.version,
    release: m.release,
    message: `${m.version} refreshed to release ${m.release}`,
  };
}

/** True when two manifests list the same files (path, size, digest) in the same order. */
export function sameFiles(a: SignedManifest, b: SignedManifest): boolean {
  if (a.files.length !== b.files.length) return false;
  return a.files.every((f, i) => {
    const g = b.files[i];
    return g !== undefined && g.path === f.path && g.size === f.size && g.sha256 === f.sha256;
  });
}
