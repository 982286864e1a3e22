import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChunkFetcher, WantedChunk } from './fetcher.js';
import { ManifestError, type ManifestFile, type SignedManifest } from './manifest.js';
import { chunkKey } from './store-layout.js';

// Small chunks make scattered edits cheap, but a chunk list of [hex, length] pairs in the signed
// JSON would cost ~75 bytes per chunk (0.23 % of a model at 32 KiB chunks) and every update would
// download all of it again. So spec-2 manifests name a content-addressed chunk index instead: a
// root object listing groups, each group listing chunks, all as 36-byte binary records (SHA-256 +
// uint32 length) in the store's `chunks/` namespace. Group ends are content-defined (a chunk whose
// hash is 0 mod GROUP_TARGET closes its group), so an edit changes only the groups around it; a
// device keeps the objects of its installed versions and downloads only the root and the groups it
// lacks. Every object is checked against its SHA-256 before use, and the chain starts in the
// signed manifest, so the chunk hashes a device verifies bytes against are still signed.

/** Bytes of one index record: SHA-256 (32) + little-endian uint32 length. */
export const INDEX_RECORD_BYTES = 36;
/** Average chunks per group (content-defined). */
export const GROUP_TARGET = 64;
/** Most chunks in one group (bounds a group object at 9 KiB). */
export const GROUP_MAX = 256;

/** A [sha256 hex, length] pair: one chunk, or one index object. */
export type ChunkRef = [string, number];

/** A manifest file whose chunk list is known (inline in spec 1, resolved from the index in spec 2). */
export type ResolvedFile = Omit<ManifestFile, 'chunks'> & { chunks: ChunkRef[] };
/** A manifest with every file's chunk list resolved. */
export type ResolvedManifest = Omit<SignedManifest, 'files'> & { files: ResolvedFile[] };

/** SHA-256 hex of bytes. */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Encodes refs as 36-byte records. */
export function encodeRecords(refs: readonly ChunkRef[]): Buffer {
  const out = Buffer.allocUnsafe(refs.length * INDEX_RECORD_BYTES);
  refs.forEach(([sha, len], i) => {
    const at = i * INDEX_RECORD_BYTES;
    out.write(sha, at, 32, 'hex');
    out.writeUInt32LE(len, at + 32);
  });
  return out;
}

/** Decodes 36-byte records; throws on a length that is not a whole number of records. */
export function decodeRecords(data: Buffer): ChunkRef[] {
  if (data.length % INDEX_RECORD_BYTES !== 0)
    throw new Error(`index object of ${data.length} bytes is not a whole number of records`);
  const out: ChunkRef[] = [];
  for (let at = 0; at < data.length; at += INDEX_RECORD_BYTES)
    out.push([data.toString('hex', at, at + 32), data.readUInt32LE(at + 32)]);
  return out;
}

/** The objects of one file's chunk index: the root (what the manifest names) and its groups. */
export interface BuiltIndex {
  readonly root: ChunkRef;
  /** Every object by SHA-256 (root and groups). */
  readonly objects: Map<string, Buffer>;
}

/** Groups a chunk list at content-defined ends and encodes the root and group objects. */
export function buildIndex(chunks: readonly ChunkRef[]): BuiltIndex {
  const objects = new Map<string, Buffer>();
  const groups: ChunkRef[] = [];
  let start = 0;
  const close = (end: number) => {
    const data = encodeRecords(chunks.slice(start, end));
    const sha = sha256Hex(data);
    objects.set(sha, data);
    groups.push([sha, data.length]);
    start = end;
  };
  for (let i = 0; i < chunks.length; i++) {
    const boundary = Number.parseInt(chunks[i]![0].slice(0, 8), 16) % GROUP_TARGET === 0;
    if (boundary || i + 1 - start >= GROUP_MAX) close(i + 1);
  }
  if (start < chunks.length) close(chunks.length);
  const root = encodeRecords(groups);
  const rootSha = sha256Hex(root);
  objects.set(rootSha, root);
  return { root: [rootSha, root.length], objects };
}

/** Gets index objects by SHA-256; every returned buffer hashes to its key. */
export type IndexObjectGetter = (wanted: readonly ChunkRef[]) => Promise<Map<string, Buffer>>;

function bad(message: string): never {
  throw new ManifestError('bad_index', message);
}

/**
 * Fills in the chunk list of every file that names an index (root, then all groups in one batch).
 * Throws ManifestError('bad_index') when the objects disagree with the signed sizes.
 */
export async function resolveManifest(
  m: SignedManifest,
  get: IndexObjectGetter,
): Promise<ResolvedManifest> {
  const indexed = m.files.filter((f) => f.index !== undefined);
  const roots = await get(indexed.map((f) => [f.index!.sha256, f.index!.size]));
  const groupsOf = new Map<string, ChunkRef[]>();
  const allGroups = new Map<string, number>();
  for (const f of indexed) {
    const root = roots.get(f.index!.sha256) ?? bad(`index root of ${f.path} is missing`);
    const groups = decodeRecords(root);
    groupsOf.set(f.path, groups);
    for (const [sha, len] of groups) {
      if (len === 0 || len % INDEX_RECORD_BYTES !== 0 || len > GROUP_MAX * INDEX_RECORD_BYTES)
        bad(`index root of ${f.path} lists a group of ${len} bytes`);
      allGroups.set(sha, len);
    }
  }
  const groups = await get([...allGroups]);
  const files = m.files.map((f): ResolvedFile => {
    if (f.chunks) return { ...f, chunks: f.chunks };
    const chunks: ChunkRef[] = [];
    for (const [sha] of groupsOf.get(f.path) ?? [])
      for (const c of decodeRecords(groups.get(sha) ?? bad(`index group ${sha} is missing`)))
        chunks.push(c);
    let sum = 0;
    for (const [, n] of chunks) {
      if (n < 1 || n > f.chunking.max)
        bad(`the index of ${f.path} lists a chunk of ${n} bytes (max ${f.chunking.max})`);
      sum += n;
    }
    if (sum !== f.size)
      bad(`the index of ${f.path} adds up to ${sum} bytes, not the file size ${f.size}`);
    return { ...f, chunks };
  });
  return { ...m, files };
}

/** Every index object (roots and groups) a manifest uses, as far as `dir` holds its roots. */
export async function indexObjectsOf(m: SignedManifest, dir: string): Promise<string[]> {
  const out: string[] = [];
  const roots = await new IndexCache(dir).get(
    m.files.flatMap((f): ChunkRef[] => (f.index ? [[f.index.sha256, f.index.size]] : [])),
  );
  for (const [sha, root] of roots) {
    out.push(sha);
    for (const [group] of decodeRecords(root)) out.push(group);
  }
  return out;
}

/** Local index objects read at once (file handles held meanwhile). */
const LOCAL_READS_AT_ONCE = 16;

/**
 * A device's copy of index objects (`MODEL_ROOT/index/<sha256>`): read back only when they still
 * hash right, missing ones fetched from the store as chunk objects and kept.
 */
export class IndexCache {
  /** Bytes of index objects downloaded by this cache. */
  bytesDownloaded = 0;
  objectsDownloaded = 0;

  constructor(
    readonly dir: string,
    private readonly fetcher?: ChunkFetcher,
    private readonly signal?: AbortSignal,
  ) {}

  /** Getter for resolveManifest: local copies first, then (with a fetcher) the store. */
  readonly get: IndexObjectGetter = async (wanted) => {
    const out = new Map<string, Buffer>();
    const missing: WantedChunk[] = [];
    const unique = [...new Map(wanted.map(([sha, length]) => [sha, length]))];
    // Local copies are read a batch at a time: one by one, the ~750 groups of a 1 GiB model cost
    // a file open, read and close each in turn.
    for (let i = 0; i < unique.length; i += LOCAL_READS_AT_ONCE) {
      const batch = unique.slice(i, i + LOCAL_READS_AT_ONCE);
      const got = await Promise.all(batch.map(([sha, length]) => this.read(sha, length)));
      batch.forEach(([sha, length], j) => {
        const local = got[j];
        if (local) out.set(sha, local);
        else missing.push({ sha256: sha, length, blobOffset: 0, blobSha256: sha });
      });
    }
    if (missing.length === 0 || !this.fetcher) return out;
    await mkdir(this.dir, { recursive: true });
    await this.fetcher.fetchAll(
      missing,
      {
        write: async (chunk, data) => {
          const copy = Buffer.from(data.subarray(0, chunk.length));
          out.set(chunk.sha256, copy);
          this.objectsDownloaded++;
          await this.write(chunk.sha256, copy);
        },
        onBytes: (n) => {
          this.bytesDownloaded += n;
        },
        onRetry: () => undefined,
      },
      this.signal,
    );
    return out;
  };

  private async read(sha: string, length: number): Promise<Buffer | undefined> {
    // O_NOFOLLOW: a link planted in the index directory must not make us read another file.
    const handle = await open(join(this.dir, sha), constants.O_RDONLY | constants.O_NOFOLLOW).catch(
      () => undefined,
    );
    if (!handle) return undefined;
    try {
      const buf = Buffer.allocUnsafe(length + 1);
      const { bytesRead } = await handle.read(buf, 0, length + 1, 0);
      const data = buf.subarray(0, bytesRead);
      return bytesRead === length && sha256Hex(data) === sha ? data : undefined;
    } finally {
      await handle.close();
    }
  }

  // No fsync: an object torn by a crash fails its hash on the next read and is fetched again.
  private async write(sha: string, data: Buffer): Promise<void> {
    const tmp = join(this.dir, `.${sha}.${randomBytes(4).toString('hex')}.tmp`);
    await rm(tmp, { force: true });
    const handle = await open(tmp, 'wx', 0o644);
    try {
      await handle.writeFile(data);
    } finally {
      await handle.close();
    }
    await rename(tmp, join(this.dir, sha));
  }

  /** Removes every object (and leftover temp file) not in `keep`. */
  async prune(keep: ReadonlySet<string>): Promise<void> {
    for (const name of await readdir(this.dir).catch(() => [] as string[]))
      if (!keep.has(name)) await rm(join(this.dir, name), { force: true });
  }
}

/** Getter reading index objects from a store directory (publisher side: reports, tests, bench). */
export function storeIndexGetter(modelDir: string): IndexObjectGetter {
  return async (wanted) => {
    const out = new Map<string, Buffer>();
    for (const [sha] of wanted) {
      const data = await readFile(join(modelDir, chunkKey(sha)));
      if (sha256Hex(data) !== sha) throw new Error(`store object ${sha} does not hash right`);
      out.set(sha, data);
    }
    return out;
  };
}
