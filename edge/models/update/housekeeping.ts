import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readLocalManifest, type ChunkSource } from '../assemble.js';
import {
  IndexCache,
  indexObjectsOf,
  resolveManifest,
  type ResolvedManifest,
} from '../chunk-index.js';
import { fsyncDir } from '../durable-fs.js';
import type { SignedManifest } from '../manifest.js';
import { WORK_PREFIX } from '../state.js';
import { iso, type UpdateContext } from './context.js';

/** Moves a version's directory (or work directory) into quarantine/<version>-r<release>. */
export async function quarantineDir(
  ctx: UpdateContext,
  dir: string,
  m: { version: string; release: number },
): Promise<void> {
  const dest = join(ctx.paths.quarantine, `${m.version}-r${m.release}`);
  await rm(dest, { recursive: true, force: true });
  await rename(dir, dest).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  });
  await fsyncDir(ctx.paths.quarantine).catch(() => undefined);
}

/** Records a release as quarantined (never retried automatically); keeps the last 20. */
export async function recordQuarantine(
  ctx: UpdateContext,
  m: { version: string; release: number },
  reason: string,
  message: string,
): Promise<void> {
  const rest = ctx.state.quarantined.filter((q) => q.release !== m.release);
  await ctx.saveState({
    quarantined: [
      ...rest,
      {
        version: m.version,
        release: m.release,
        reason: `${reason}: ${message}`.slice(0, 500),
        at: iso(ctx.now()),
      },
    ].slice(-20),
  });
}

/**
 * Removes other versions' work directories and replaced copies. An older build named them
 * `<v>.partial` / `<v>.old-<pid>`: those go too, unless state.json holds a version of that name.
 */
export async function cleanStalePartials(ctx: UpdateContext, keep: string): Promise<void> {
  const installed = new Set(
    [ctx.state.current?.version, ctx.state.previous?.version].filter(Boolean),
  );
  for (const name of await readdir(ctx.paths.versions).catch(() => [] as string[])) {
    const ours = name.startsWith(WORK_PREFIX)
      ? name !== `${WORK_PREFIX}${keep}`
      : name.startsWith('.old-');
    const legacy = /\.(partial|old-\d+)$/.test(name) && !installed.has(name);
    if (ours || legacy) await rm(join(ctx.paths.versions, name), { recursive: true, force: true });
  }
}

/** Keeps current and previous; removes other versions, partials and quarantined copies. */
export async function gc(ctx: UpdateContext): Promise<void> {
  const { paths } = ctx;
  const keep = new Set(
    [ctx.state.current?.version, ctx.state.previous?.version].filter(
      (v): v is string => v !== undefined,
    ),
  );
  for (const name of await readdir(paths.versions).catch(() => [] as string[])) {
    if (!keep.has(name)) await rm(join(paths.versions, name), { recursive: true, force: true });
  }
  for (const name of await readdir(paths.manifests).catch(() => [] as string[])) {
    if (!keep.has(name.replace(/\.json$/, '')))
      await rm(join(paths.manifests, name), { force: true });
  }
  // Chunk-index objects: keep those of the kept versions (they find reusable chunks).
  const objects = new Set<string>();
  for (const version of keep) {
    const manifest = await readLocalManifest(paths.manifest(version));
    if (manifest) for (const sha of await indexObjectsOf(manifest, paths.index)) objects.add(sha);
  }
  await new IndexCache(paths.index).prune(objects);
  for (const name of await readdir(paths.quarantine).catch(() => [] as string[]))
    await rm(join(paths.quarantine, name), { recursive: true, force: true });
}

/** Installed versions with their manifests, current first: where reusable chunks are. */
export async function chunkSources(ctx: UpdateContext, target: string): Promise<ChunkSource[]> {
  const out: ChunkSource[] = [];
  const names = await readdir(ctx.paths.versions).catch(() => [] as string[]);
  // Current first: its pages are the likeliest to be cached.
  const cur = ctx.state.current?.version;
  names.sort((a, b) => (a === cur ? -1 : b === cur ? 1 : 0));
  for (const name of names) {
    // Work directories start with a dot; versions never do.
    if (name.startsWith('.') || name === target) continue;
    const manifest = await localResolved(ctx, name);
    if (manifest) out.push({ dir: ctx.paths.version(name), manifest });
  }
  const same = names.includes(target) ? await localResolved(ctx, target) : undefined;
  if (same) out.push({ dir: ctx.paths.version(target), manifest: same });
  return out;
}

/** An installed version's manifest with its chunk list, from local copies only (else undefined). */
async function localResolved(
  ctx: UpdateContext,
  version: string,
): Promise<ResolvedManifest | undefined> {
  const manifest = await readLocalManifest(ctx.paths.manifest(version));
  if (!manifest) return undefined;
  return resolveManifest(manifest, new IndexCache(ctx.paths.index).get).catch(() => undefined);
}

/** Removes files of a reused directory that the manifest does not list. */
export async function pruneExtras(dir: string, m: SignedManifest): Promise<void> {
  const wanted = new Set(m.files.map((f) => join(dir, f.path)));
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (!wanted.has(p)) await rm(p, { force: true });
    }
  };
  await walk(dir);
}
