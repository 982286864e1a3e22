import { lstat, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { assemble, TaintedWorkDirError, workDirProblems, type AssemblyStats } from '../assemble.js';
import { IndexCache, resolveManifest } from '../chunk-index.js';
import { isDiskFull, writeFileDurable } from '../durable-fs.js';
import { ChunkFetcher, FetchError } from '../fetcher.js';
import { manifestSize, ManifestError, type SignedManifest } from '../manifest.js';
import type { UpdateRecord } from '../state.js';
import { activate } from './activating.js';
import { iso, type UpdateContext } from './context.js';
import { fail, taintedWorkDir } from './failing.js';
import { chunkSources, cleanStalePartials } from './housekeeping.js';
import { fmtBytes } from './progress.js';
import type { ApplyResult } from './types.js';
import { install } from './verifying.js';

/**
 * → downloading → assembled: prepares the work directory (resumed when `previousAttempt` is the
 * same manifest), assembles the files from reused and downloaded chunks, then verifies and
 * activates them. A download that fails is `failed` and resumes on the next check.
 */
export async function download(
  ctx: UpdateContext,
  m: SignedManifest,
  digest: string,
  text: string,
  fetcher: ChunkFetcher,
  previousAttempt: UpdateRecord | undefined,
): Promise<ApplyResult> {
  const { paths } = ctx;
  const partial = paths.partial(m.version);
  await cleanStalePartials(ctx, m.version);
  if (!previousAttempt) await rm(partial, { recursive: true, force: true });
  await checkSpace(ctx, m, partial);
  await writeFileDurable(paths.manifest(m.version), text);
  const now = iso(ctx.now());
  let u: UpdateRecord = {
    state: 'downloading',
    version: m.version,
    release: m.release,
    manifest_sha256: digest,
    from: ctx.state.current,
    from_previous: ctx.state.previous,
    started_at: previousAttempt?.started_at ?? now,
    updated_at: now,
    trial_starts: 0,
    bytes_total: manifestSize(m),
    bytes_to_download: 0,
    bytes_downloaded: 0,
    bytes_reused: 0,
    chunks_downloaded: 0,
    chunks_reused: 0,
  };
  u = await ctx.transition('download', u, {
    highest_release: Math.max(ctx.state.highest_release, m.release),
  });
  ctx.emit(
    'model.update_started',
    'info',
    `updating ${ctx.opts.name} to ${m.version} (release ${m.release})`,
    u,
    { from: u.from?.version ?? null, resumed: previousAttempt !== undefined },
  );
  ctx.downloadStart = ctx.now();
  let stats: AssemblyStats;
  const indexCache = new IndexCache(
    paths.index,
    new ChunkFetcher(fetcher.base, { ...ctx.opts.fetch, transport: 'chunks' }, ctx.log),
    ctx.deps.signal,
  );
  try {
    if (previousAttempt) {
      const problems = await workDirProblems(partial);
      if (problems.length > 0) throw new TaintedWorkDirError(partial, problems);
    }
    const resolved = await resolveManifest(m, indexCache.get);
    stats = await assemble({
      manifest: resolved,
      partialDir: partial,
      sources: await chunkSources(ctx, m.version),
      fetcher,
      signal: ctx.deps.signal,
      onProgress: (s, done) => {
        void ctx.progress(u, s, done);
      },
      onHalfway: () => ctx.pause('downloading'),
    });
  } catch (err) {
    if (err instanceof TaintedWorkDirError) return taintedWorkDir(ctx, u, err, false);
    if (isDiskFull(err)) {
      await rm(partial, { recursive: true, force: true });
      return fail(
        ctx,
        u,
        'disk_full',
        `no space left on ${paths.root} while assembling ${m.version}; free space and retry (needs about ${manifestSize(m)} bytes)`,
        false,
      );
    }
    if (err instanceof FetchError)
      return fail(
        ctx,
        u,
        err.reason,
        `download of ${m.version} failed: ${err.message}; the next attempt resumes where this one stopped`,
        false,
      );
    if (err instanceof ManifestError)
      return fail(
        ctx,
        u,
        err.reason,
        `the chunk index of ${m.version} is inconsistent: ${err.message}; the publisher must re-publish`,
        false,
      );
    throw err;
  }
  stats.indexBytesDownloaded = indexCache.bytesDownloaded;
  stats.bytesDownloaded += indexCache.bytesDownloaded;
  ctx.stats = stats;
  try {
    u = await ctx.transition('assembled', {
      ...u,
      bytes_to_download: stats.bytesToDownload,
      bytes_downloaded: stats.bytesDownloaded,
      bytes_reused: stats.bytesReused,
      chunks_downloaded: stats.chunksDownloaded,
      chunks_reused: stats.chunksReused,
    });
  } catch (err) {
    if (!isDiskFull(err)) throw err;
    await rm(partial, { recursive: true, force: true });
    return fail(
      ctx,
      u,
      'disk_full',
      `no space left on ${paths.root} for the state journal; free space and retry`,
      false,
    );
  }
  ctx.log.info(
    {
      version: m.version,
      bytes_total: stats.bytesTotal,
      bytes_downloaded: stats.bytesDownloaded,
      bytes_reused: stats.bytesReused,
      chunks_resumed: stats.chunksResumed,
      retries: stats.retries,
      fallback_to_chunks: fetcher.usedFallback,
      seconds: (ctx.now() - ctx.downloadStart) / 1000,
    },
    `assembled ${m.version}: downloaded ${fmtBytes(stats.bytesDownloaded)}, reused ${fmtBytes(stats.bytesReused)} of ${fmtBytes(stats.bytesTotal)}`,
  );
  await ctx.pause('assembled');
  await install(ctx, u, m);
  return activate(ctx, u, m);
}

/**
 * Refuses the update before anything is written when the model root lacks the space the files
 * still missing from the work directory need, plus a margin for metadata and the state journal.
 */
export async function checkSpace(
  ctx: UpdateContext,
  m: SignedManifest,
  partial: string,
): Promise<void> {
  let present = 0;
  for (const f of m.files)
    present += (await lstat(join(partial, f.path)).catch(() => undefined))?.size ?? 0;
  const need = Math.max(0, manifestSize(m) - present);
  const fs = await statfs(ctx.paths.root);
  const free = fs.bavail * fs.bsize;
  if (free < need + Math.max(1024 * 1024, need * 0.02)) {
    ctx.refuse(
      'disk_full',
      `not enough space on ${ctx.paths.root}: ${m.version} needs ${fmtBytes(need)} more, ${fmtBytes(free)} free; free space or remove old versions`,
      m,
    );
  }
}
