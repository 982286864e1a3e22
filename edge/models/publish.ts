import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { buildIndex } from './chunk-index.js';
import { writeFileDurable } from './durable-fs.js';
import { chunkingFor, GearChunker, type ChunkingParams } from './gear-cdc.js';
import {
  canonicalBytes,
  MANIFEST_SPEC,
  MANIFEST_TYPE,
  nameProblem,
  parseEnvelope,
  parseSignedManifest,
  type ManifestFile,
  type ManifestHealth,
  type SignedManifest,
} from './manifest.js';
import { readPrivateKey, signManifest } from './signing.js';
import {
  blobKey,
  chunkKey,
  LATEST_MANIFEST,
  releaseManifestKey,
  storeModelDir,
} from './store-layout.js';

/** What `gpulse model publish` needs. */
export interface PublishOptions {
  readonly name: string;
  readonly version: string;
  readonly release: number;
  readonly from: string;
  readonly store: string;
  readonly keyPath: string;
  /** Validity from now, in ms. */
  readonly expiresInMs: number;
  readonly health?: ManifestHealth;
  /** Opaque drift reference profile (any JSON). */
  readonly driftReference?: unknown;
  /** Chunking parameters for every file; default depends on each file's size. */
  readonly chunking?: ChunkingParams;
  /** Also write whole-file blobs for HTTP range requests (default true). */
  readonly blobs?: boolean;
  readonly now?: () => number;
}

/** Summary of a publish. */
export interface PublishResult {
  readonly manifestPath: string;
  readonly files: number;
  readonly bytes: number;
  readonly chunks: number;
  readonly newChunks: number;
  readonly newChunkBytes: number;
  /** Bytes of new index objects written (the chunk lists, outside the signed manifest). */
  readonly newIndexBytes: number;
}

const READ_SIZE = 8 * 1024 * 1024;

async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const path = join(dir, e.name);
      if (e.isDirectory()) await walk(path);
      else if (e.isFile()) out.push(path);
      else
        throw new Error(`${path} is not a regular file or directory (symlinks are not published)`);
    }
  };
  await walk(root);
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs up to `limit` object writes at once, one per SHA-256: the fsync of each chunk object is the
 * publisher's bottleneck (12k objects for 256 MiB took 38 s one at a time). Not a library: the
 * one-per-key rule and first-error propagation are the whole of it.
 */
class WritePool {
  private readonly pending = new Map<string, Promise<void>>();
  private failure: Error | undefined;

  constructor(private readonly limit: number) {}

  async add(key: string, task: () => Promise<void>): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.pending.has(key)) return;
    while (this.pending.size >= this.limit) await Promise.race(this.pending.values());
    const p = task()
      .catch((err: unknown) => {
        this.failure ??= err instanceof Error ? err : new Error(String(err));
      })
      .finally(() => this.pending.delete(key));
    this.pending.set(key, p);
  }

  async drain(): Promise<void> {
    await Promise.all(this.pending.values());
    if (this.failure !== undefined) throw this.failure;
  }
}

/** Writes a content-addressed object once (temp + fsync + rename); false when it already existed. */
async function putObject(path: string, data: Uint8Array): Promise<boolean> {
  if (await exists(path)) return false;
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(tmp, 'w', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  return true;
}

async function chunkFile(
  path: string,
  params: ChunkingParams,
  onChunk: (sha256: string, data: Buffer) => Promise<void>,
): Promise<{ size: number; sha256: string; chunks: [string, number][] }> {
  const chunker = new GearChunker(params);
  const whole = createHash('sha256');
  const chunks: [string, number][] = [];
  let carry: Buffer[] = [];
  let carryLen = 0;
  let size = 0;
  const emit = async (parts: Buffer[]) => {
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    const sha = createHash('sha256').update(data).digest('hex');
    chunks.push([sha, data.length]);
    await onChunk(sha, data);
  };
  const handle = await open(path, 'r');
  try {
    for (;;) {
      const buf = Buffer.allocUnsafe(READ_SIZE);
      const { bytesRead } = await handle.read(buf, 0, READ_SIZE, null);
      if (bytesRead === 0) break;
      const data = buf.subarray(0, bytesRead);
      whole.update(data);
      size += bytesRead;
      let off = 0;
      for (const len of chunker.push(data)) {
        const need = len - carryLen;
        await emit([...carry, data.subarray(off, off + need)]);
        off += need;
        carry = [];
        carryLen = 0;
      }
      if (off < data.length) {
        carry.push(data.subarray(off));
        carryLen += data.length - off;
      }
    }
  } finally {
    await handle.close();
  }
  if (chunker.finish() > 0) await emit(carry);
  return { size, sha256: whole.digest('hex'), chunks };
}

async function latestRelease(modelDir: string): Promise<number | undefined> {
  try {
    const env = parseEnvelope(await readFile(join(modelDir, LATEST_MANIFEST), 'utf8'));
    return parseSignedManifest(env.signed).release;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(
      `the store's ${LATEST_MANIFEST} is unreadable (${(err as Error).message}); fix or remove it`,
      { cause: err },
    );
  }
}

/**
 * Splits every file of a model directory into content-defined chunks, writes new chunks (and
 * whole-file blobs) into the store, then writes the signed manifest last, so a reader never sees a
 * manifest whose chunks are missing.
 */
export async function publishModel(opts: PublishOptions): Promise<PublishResult> {
  const nameWhy = nameProblem(opts.name);
  if (nameWhy) throw new Error(`model name ${JSON.stringify(opts.name)}: ${nameWhy}`);
  const versionWhy = nameProblem(opts.version);
  if (versionWhy) throw new Error(`version ${JSON.stringify(opts.version)}: ${versionWhy}`);
  if (!Number.isSafeInteger(opts.release) || opts.release < 1)
    throw new Error(`release must be a positive integer, got ${opts.release}`);
  const key = await readPrivateKey(opts.keyPath);
  const modelDir = storeModelDir(opts.store, opts.name);
  const latest = await latestRelease(modelDir);
  if (latest !== undefined && latest >= opts.release) {
    throw new Error(
      `release ${opts.release} is not above the store's latest release ${latest}: devices would refuse it; use --release ${latest + 1}`,
    );
  }
  const paths = await listFiles(opts.from);
  if (paths.length === 0) throw new Error(`${opts.from} has no files to publish`);
  const files: ManifestFile[] = [];
  let newChunks = 0;
  let newChunkBytes = 0;
  let chunkCount = 0;
  let indexBytes = 0;
  const pool = new WritePool(16);
  for (const path of paths) {
    const rel = relative(opts.from, path).split(sep).join('/');
    const size = (await stat(path)).size;
    const params = opts.chunking ?? chunkingFor(size);
    const result = await chunkFile(path, params, (sha, data) =>
      pool.add(sha, async () => {
        if (await putObject(join(modelDir, chunkKey(sha)), data)) {
          newChunks++;
          newChunkBytes += data.length;
        }
      }),
    );
    await pool.drain();
    chunkCount += result.chunks.length;
    // The chunk index goes into the store beside the chunks, before the manifest that names it.
    const index = buildIndex(result.chunks);
    for (const [sha, data] of index.objects) {
      if (await putObject(join(modelDir, chunkKey(sha)), data)) indexBytes += data.length;
    }
    if (opts.blobs !== false) {
      const blob = join(modelDir, blobKey(result.sha256));
      if (!(await exists(blob))) {
        await mkdir(dirname(blob), { recursive: true });
        const tmp = `${blob}.${process.pid}.tmp`;
        await copyFile(path, tmp);
        const h = await open(tmp, 'r+');
        await h.sync();
        await h.close();
        await rename(tmp, blob).catch(async (err: unknown) => {
          await rm(tmp, { force: true });
          throw err;
        });
      }
    }
    files.push({
      path: rel,
      size: result.size,
      sha256: result.sha256,
      chunking: { ...params },
      index: { sha256: index.root[0], size: index.root[1] },
    });
  }
  const now = (opts.now ?? Date.now)();
  const signed: SignedManifest = {
    _type: MANIFEST_TYPE,
    spec: MANIFEST_SPEC,
    model: opts.name,
    version: opts.version,
    release: opts.release,
    created: new Date(now).toISOString(),
    expires: new Date(now + opts.expiresInMs).toISOString(),
    files,
    ...(opts.health ? { health: opts.health } : {}),
    ...(opts.driftReference !== undefined ? { drift_reference: opts.driftReference } : {}),
  };
  // Validate what we are about to sign exactly as a device will.
  parseSignedManifest(JSON.parse(canonicalBytes(signed).toString('utf8')));
  const envelope = signManifest(signed, key);
  const text = `${JSON.stringify(envelope)}\n`;
  await mkdir(join(modelDir, 'manifests'), { recursive: true });
  const releasePath = join(modelDir, releaseManifestKey(opts.release));
  await writeFileDurable(releasePath, text);
  await writeFileDurable(join(modelDir, LATEST_MANIFEST), text);
  return {
    manifestPath: join(modelDir, LATEST_MANIFEST),
    files: files.length,
    bytes: files.reduce((n, f) => n + f.size, 0),
    chunks: chunkCount,
    newChunks,
    newChunkBytes,
    newIndexBytes: indexBytes,
  };
}
