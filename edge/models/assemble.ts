import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { fsyncDir } from './durable-fs.js';
import { readExact, writeAll } from '../read-exact.js';
import type { ResolvedManifest } from './chunk-index.js';
import type { ChunkFetcher, FetchSink, WantedChunk } from './fetcher.js';
import { parseEnvelope, parseSignedManifest, type SignedManifest } from './manifest.js';

/** Where a chunk can be copied from on this device. */
interface LocalChunk {
  readonly path: string;
  readonly offset: number;
  readonly length: number;
}

/** Counters of one assembly. */
export interface AssemblyStats {
  bytesTotal: number;
  bytesToDownload: number;
  bytesDownloaded: number;
  bytesReused: number;
  chunksDownloaded: number;
  chunksReused: number;
  /** Chunks already in place in the partial file from an interrupted run. */
  chunksResumed: number;
  retries: number;
  /** Bytes of chunk-index objects downloaded (set by the updater; the chunk lists of spec 2). */
  indexBytesDownloaded: number;
  /** Every assembled file was hashed whole and matched the manifest's SHA-256. */
  verified: boolean;
  /** Reused chunks that no longer hashed right in their installed file, and were fetched instead. */
  chunksReuseFailed: number;
}

/** A version on disk whose chunks may be reused: its directory and its manifest. */
export interface ChunkSource {
  readonly dir: string;
  readonly manifest: ResolvedManifest;
}

/** Reads the locally stored manifest of an installed version (written by us after verification). */
export async function readLocalManifest(path: string): Promise<SignedManifest | undefined> {
  try {
    return parseSignedManifest(parseEnvelope(await readFile(path, 'utf8')).signed);
  } catch {
    return undefined;
  }
}

/** Opening flags: a symbolic link in the last path component fails with ELOOP instead of being followed. */
const READ_NOFOLLOW = constants.O_RDONLY | constants.O_NOFOLLOW;
const WRITE_NOFOLLOW = constants.O_RDWR | constants.O_NOFOLLOW;
const CREATE_NOFOLLOW = WRITE_NOFOLLOW | constants.O_CREAT | constants.O_EXCL;
/** A work directory with more entries than this is not one the updater made. */
const MAX_WORK_ENTRIES = 100_000;

/**
 * A work directory holds what the updater never writes there (a symbolic link, a device or fifo,
 * a file with other hard links): writing on would write wherever those point, outside the root.
 */
export class TaintedWorkDirError extends Error {
  readonly code = 'GPULSE_MODEL_WORKDIR_TAINTED';
  constructor(
    readonly dir: string,
    readonly problems: readonly string[],
  ) {
    super(`${dir} holds what the updater never writes: ${problems.join('; ')}`);
    this.name = 'TaintedWorkDirError';
  }
}

/** What a file-system entry is, in words, for messages. */
function kindOf(s: { isSymbolicLink(): boolean; isDirectory(): boolean; isFile(): boolean }) {
  if (s.isSymbolicLink()) return 'a symbolic link';
  if (s.isDirectory()) return 'a directory';
  return s.isFile() ? 'a file' : 'a special file';
}

/**
 * Lists what in a work directory the updater did not put there: symbolic links, special files,
 * files with other hard links, or the directory itself being a link. Empty when it is clean or
 * absent. Reads entries with lstat: nothing is followed.
 */
export async function workDirProblems(dir: string): Promise<string[]> {
  let top;
  try {
    top = await lstat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  if (!top.isDirectory()) return [`${dir} is ${kindOf(top)}, not a directory`];
  const problems: string[] = [];
  let entries = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (problems.length >= 10) return;
      if (++entries > MAX_WORK_ENTRIES) {
        problems.push(`more than ${MAX_WORK_ENTRIES} entries`);
        return;
      }
      const p = join(d, e.name);
      const rel = relative(dir, p).split(sep).join('/');
      if (e.isDirectory()) await walk(p);
      else if (!e.isFile()) problems.push(`${rel} is ${kindOf(e)}`);
      else if ((await lstat(p)).nlink > 1) problems.push(`${rel} has other hard links`);
    }
  };
  await walk(dir);
  return problems;
}

/**
 * Creates the directories of `rel` under `root` one by one, refusing any that exists as something
 * other than a directory (a symbolic link would carry the writes below it out of the root).
 */
async function mkdirInside(root: string, rel: string): Promise<void> {
  let d = root;
  for (const part of rel.split('/').filter((p) => p !== '' && p !== '.')) {
    d = join(d, part);
    try {
      await mkdir(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const s = await lstat(d);
      if (!s.isDirectory())
        throw new TaintedWorkDirError(root, [`${relative(root, d)} is ${kindOf(s)}`]);
    }
  }
}

/**
 * Opens a file of the work directory for writing without following a link, creating it when
 * absent; refuses anything but a regular file with no other hard link.
 */
async function openTarget(
  root: string,
  path: string,
): Promise<{ handle: FileHandle; existed: boolean; size: number }> {
  const rel = relative(root, path);
  const before = await lstat(path).catch(() => undefined);
  if (before && !before.isFile())
    throw new TaintedWorkDirError(root, [`${rel} is ${kindOf(before)}`]);
  let handle: FileHandle;
  try {
    handle = await open(path, before ? WRITE_NOFOLLOW : CREATE_NOFOLLOW, 0o644);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'EEXIST')
      throw new TaintedWorkDirError(root, [`${rel} is a symbolic link or appeared meanwhile`]);
    throw err;
  }
  const s = await handle.stat();
  if (!s.isFile() || s.nlink !== 1) {
    await handle.close();
    throw new TaintedWorkDirError(root, [
      s.isFile() ? `${rel} has other hard links` : `${rel} is ${kindOf(s)}`,
    ]);
  }
  return { handle, existed: before !== undefined, size: s.size };
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Index of every chunk present in installed versions, by SHA-256. */
export function indexSources(sources: readonly ChunkSource[]): Map<string, LocalChunk> {
  const index = new Map<string, LocalChunk>();
  for (const s of sources) {
    for (const f of s.manifest.files) {
      let offset = 0;
      for (const [sha, length] of f.chunks) {
        if (!index.has(sha)) index.set(sha, { path: join(s.dir, f.path), offset, length });
        offset += length;
      }
    }
  }
  return index;
}

/** Chunks to copy from one installed file: contiguous there and in the target. */
interface ReuseRun {
  readonly path: string;
  readonly srcOffset: number;
  readonly dstOffset: number;
  bytes: number;
  readonly chunks: { sha: string; length: number }[];
  /** The file being assembled, and its SHA-256 (its blob, for chunks that must be fetched). */
  readonly handle: FileHandle;
  readonly fileSha256: string;
}

/** Largest read of one reuse run. */
const REUSE_RUN_BYTES = 8 * 1024 * 1024;

/** Options of one assembly. */
export interface AssembleOptions {
  readonly manifest: ResolvedManifest;
  /** `versions/<v>.partial`; may hold verified chunks from an interrupted run. */
  readonly partialDir: string;
  readonly sources: readonly ChunkSource[];
  readonly fetcher: ChunkFetcher;
  readonly signal?: AbortSignal;
  /** Called after each chunk is placed (bytes downloaded so far, bytes done of the total). */
  readonly onProgress?: (stats: AssemblyStats, doneBytes: number) => void;
  /** Called once when half of the bytes to download are written (crash tests pause there). */
  readonly onHalfway?: () => Promise<void>;
  /** Called with the bytes the download still needs, before any request (disk-space check). */
  readonly beforeDownload?: (stats: AssemblyStats) => Promise<void>;
}

/**
 * Builds every file of a manifest in the partial directory: chunks already in place (resume) are
 * kept, chunks missing from installed versions are downloaded and hashed before they are written,
 * then each file is copied from installed versions and hashed whole in one pass. When a file does
 * not match the manifest, the chunks copied into it are hashed one by one and those that no longer
 * match (an installed file changed behind our back) are downloaded instead. Ends with every file
 * fsynced.
 */
export async function assemble(opts: AssembleOptions): Promise<AssemblyStats> {
  const { manifest, partialDir } = opts;
  const stats: AssemblyStats = {
    bytesTotal: manifest.files.reduce((n, f) => n + f.size, 0),
    bytesToDownload: 0,
    bytesDownloaded: 0,
    bytesReused: 0,
    chunksDownloaded: 0,
    chunksReused: 0,
    chunksResumed: 0,
    retries: 0,
    indexBytesDownloaded: 0,
    verified: false,
    chunksReuseFailed: 0,
  };
  let done = 0;
  const index = indexSources(opts.sources);
  const sourceHandles = new Map<string, FileHandle | null>();
  const sourceHandle = async (path: string): Promise<FileHandle | undefined> => {
    if (!sourceHandles.has(path))
      sourceHandles.set(path, await open(path, READ_NOFOLLOW).catch(() => null));
    return sourceHandles.get(path) ?? undefined;
  };
  const targets = new Map<string, FileHandle>();
  const wanted: WantedChunk[] = [];
  const placement = new Map<WantedChunk, { handle: FileHandle; offset: number }>();
  // Resumed work is used only when it holds nothing but what this code writes: no link is followed.
  const problems = await workDirProblems(partialDir);
  if (problems.length > 0) throw new TaintedWorkDirError(partialDir, problems);
  const want = (sha: string, length: number, here: number, handle: FileHandle, blob: string) => {
    const w: WantedChunk = { sha256: sha, length, blobOffset: here, blobSha256: blob };
    wanted.push(w);
    placement.set(w, { handle, offset: here });
    stats.bytesToDownload += length;
  };
  await mkdir(partialDir, { recursive: true });
  try {
    const runs: ReuseRun[] = [];
    const fileOrder = new Map<string, number>();
    for (const file of manifest.files) {
      if (!fileOrder.has(file.sha256)) fileOrder.set(file.sha256, fileOrder.size);
      const path = join(partialDir, file.path);
      await mkdirInside(partialDir, dirname(file.path));
      const { handle, existed, size } = await openTarget(partialDir, path);
      targets.set(file.path, handle);
      if (!existed || size !== file.size) await handle.truncate(file.size);
      const resumable = existed && size > 0;
      // Reused chunks that lie back to back in one installed file are copied as one read and one
      // write: per-chunk I/O would dominate with ~20 KiB chunks.
      let run: ReuseRun | undefined;
      let offset = 0;
      for (const [sha, length] of file.chunks) {
        const here = offset;
        offset += length;
        if (resumable && here + length <= size) {
          const inPlace = await readExact(handle, here, length);
          if (inPlace && sha256(inPlace) === sha) {
            run = undefined;
            stats.chunksResumed++;
            done += length;
            continue;
          }
        }
        const local = index.get(sha);
        if (local) {
          const extends_ =
            run !== undefined &&
            run.path === local.path &&
            run.srcOffset + run.bytes === local.offset &&
            run.dstOffset + run.bytes === here &&
            run.bytes + length <= REUSE_RUN_BYTES;
          if (!extends_) {
            run = {
              path: local.path,
              srcOffset: local.offset,
              dstOffset: here,
              bytes: 0,
              chunks: [],
              handle,
              fileSha256: file.sha256,
            };
            runs.push(run);
          }
          run!.chunks.push({ sha, length });
          run!.bytes += length;
          continue;
        }
        run = undefined;
        want(sha, length, here, handle, file.sha256);
      }
    }
    // Runs whose installed file cannot be opened (gone, replaced by a link) are fetched instead.
    const copies = new Map<FileHandle, ReuseRun[]>();
    const wantRun = (r: ReuseRun) => {
      let at = r.dstOffset;
      for (const c of r.chunks) {
        want(c.sha, c.length, at, r.handle, r.fileSha256);
        at += c.length;
      }
    };
    for (const r of runs) {
      if (!(await sourceHandle(r.path))) wantRun(r);
      else if (copies.has(r.handle)) copies.get(r.handle)!.push(r);
      else copies.set(r.handle, [r]);
    }
    // Chunks that failed reuse joined the list late: back into file order, so ranges coalesce.
    const inFileOrder = (x: WantedChunk, y: WantedChunk) =>
      (fileOrder.get(x.blobSha256) ?? 0) - (fileOrder.get(y.blobSha256) ?? 0) ||
      x.blobOffset - y.blobOffset;
    wanted.sort(inFileOrder);
    opts.onProgress?.(stats, done);
    await opts.beforeDownload?.(stats);
    let halfway = stats.bytesToDownload === 0;
    let written = 0;
    const sink: FetchSink = {
      write: async (chunk, data) => {
        const p = placement.get(chunk);
        if (!p) throw new Error('internal: chunk without a placement');
        await writeAll(p.handle, data.subarray(0, chunk.length), p.offset);
        stats.chunksDownloaded++;
        done += chunk.length;
        written += chunk.length;
        opts.onProgress?.(stats, done);
        if (!halfway && written * 2 >= stats.bytesToDownload) {
          halfway = true;
          await opts.onHalfway?.();
        }
      },
      onBytes: (n) => {
        stats.bytesDownloaded += n;
      },
      onRetry: () => {
        stats.retries++;
      },
    };
    await opts.fetcher.fetchAll(wanted, sink, opts.signal);
    const fetched = wanted.length;
    // Downloads first, then each file in one pass in file order: runs are copied from installed
    // files and everything is hashed whole as it goes by. Copies are not hashed chunk by chunk
    // (one hash pass instead of two), and the copy and the hash overlap.
    const copied: ReuseRun[] = [];
    let mismatched = new Set<FileHandle>();
    const bufs = readBuffers();
    for (const file of manifest.files) {
      const handle = targets.get(file.path)!;
      const runsOf = copies.get(handle) ?? [];
      const digest = await copyAndHash(handle, file.size, runsOf, bufs, sourceHandle, {
        copied: (r) => {
          stats.bytesReused += r.bytes;
          stats.chunksReused += r.chunks.length;
          done += r.bytes;
          copied.push(r);
        },
        // The installed file is shorter than its manifest says: fetch these chunks.
        lost: wantRun,
      });
      if (digest !== file.sha256) mismatched.add(handle);
    }
    opts.onProgress?.(stats, done);
    if (mismatched.size > 0) {
      // Installed files could have been changed behind our back: keep only the copied chunks that
      // still hash right and fetch the others, then hash the files whole again.
      for (const r of copied.filter((c) => mismatched.has(c.handle))) {
        const data = await readExact(r.handle, r.dstOffset, r.bytes);
        let at = 0;
        for (const c of r.chunks) {
          if (!data || sha256(data.subarray(at, at + c.length)) !== c.sha) {
            want(c.sha, c.length, r.dstOffset + at, r.handle, r.fileSha256);
            stats.bytesReused -= c.length;
            stats.chunksReused--;
            stats.chunksReuseFailed++;
            done -= c.length;
          }
          at += c.length;
        }
      }
      const refetch = wanted.slice(fetched).sort(inFileOrder);
      if (refetch.length > 0) {
        await opts.fetcher.fetchAll(refetch, sink, opts.signal);
        mismatched = await filesNotMatching(manifest, targets);
      }
    }
    // A file that still does not match fails the verification that follows, with its reason.
    stats.verified = mismatched.size === 0;
    for (const handle of targets.values()) await handle.sync();
  } finally {
    for (const h of targets.values()) await h.close().catch(() => undefined);
    for (const h of sourceHandles.values()) await h?.close().catch(() => undefined);
  }
  await syncTree(partialDir, manifest);
  opts.onProgress?.(stats, done);
  return stats;
}

/**
 * Bytes read, hashed and written at a time when a file is copied and hashed. Small on purpose:
 * two buffers of 8 MiB made the pass 3–4× slower on the build VM, most of it first-touch page
 * faults on fresh memory, and an edge agent should not hold large buffers anyway.
 */
const PASS_BYTES = 1024 * 1024;

/** A stretch of a target file: part of a run copied from an installed file, or already there. */
interface Segment {
  readonly offset: number;
  readonly length: number;
  readonly run?: ReuseRun;
  /** Where the bytes are read: in the run's installed file, else in the target itself. */
  readonly from: number;
  /** The run's last segment. */
  readonly last?: boolean;
}

/** A file of `size` bytes cut into segments in order: the runs, and the stretches between them. */
function segmentsOf(size: number, runs: readonly ReuseRun[]): Segment[] {
  const out: Segment[] = [];
  let at = 0;
  const gap = (end: number) => {
    while (at < end) {
      const length = Math.min(PASS_BYTES, end - at);
      out.push({ offset: at, length, from: at });
      at += length;
    }
  };
  for (const run of [...runs].sort((a, b) => a.dstOffset - b.dstOffset)) {
    gap(run.dstOffset);
    for (let done = 0; done < run.bytes; done += PASS_BYTES) {
      const length = Math.min(PASS_BYTES, run.bytes - done);
      const last = done + length === run.bytes;
      out.push({ offset: run.dstOffset + done, length, run, from: run.srcOffset + done, last });
    }
    at = run.dstOffset + run.bytes;
  }
  gap(size);
  return out;
}

/**
 * Copies `runs` into `target` and hashes the whole file in the same pass, in order, with the next
 * read in flight while the current segment is hashed and written. Returns the SHA-256 (hex), or
 * undefined when a run could not be read whole (reported through `lost`, and fetched later).
 */
async function copyAndHash(
  target: FileHandle,
  size: number,
  runs: readonly ReuseRun[],
  bufs: [Buffer, Buffer],
  source: (path: string) => Promise<FileHandle | undefined>,
  report: { copied: (run: ReuseRun) => void; lost: (run: ReuseRun) => void },
): Promise<string | undefined> {
  const segments = segmentsOf(size, runs);
  const h = createHash('sha256');
  const lost = new Set<ReuseRun>();
  let whole = true;
  const load = async (s: Segment, buf: Buffer): Promise<Buffer | undefined> => {
    const file = s.run ? await source(s.run.path) : target;
    if (!file) return undefined;
    const { bytesRead } = await file.read(buf, 0, s.length, s.from);
    return bytesRead === s.length ? buf.subarray(0, s.length) : undefined;
  };
  let next = segments[0] ? load(segments[0], bufs[0]) : undefined;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    const data = await next;
    // The other buffer: its segment was hashed and written in the turn before.
    next = segments[i + 1] ? load(segments[i + 1]!, bufs[(i + 1) % 2]!) : undefined;
    if (s.run && lost.has(s.run)) continue;
    if (!data) {
      // The hash can no longer be whole; a lost run's chunks are fetched, the hash taken again.
      whole = false;
      if (s.run) {
        lost.add(s.run);
        report.lost(s.run);
      }
      continue;
    }
    // The write runs on libuv's pool while this thread hashes the same (unchanging) buffer. The
    // hash is of the bytes in memory, so the write must be checked whole: see writeAll.
    const writing = s.run ? writeAll(target, data, s.offset) : undefined;
    h.update(data);
    await writing;
    if (s.run && s.last) report.copied(s.run);
  }
  return whole ? h.digest('hex') : undefined;
}

/** The target files whose contents do not hash to the manifest's SHA-256. */
async function filesNotMatching(
  manifest: ResolvedManifest,
  targets: ReadonlyMap<string, FileHandle>,
): Promise<Set<FileHandle>> {
  const bad = new Set<FileHandle>();
  const buffers = readBuffers();
  for (const f of manifest.files) {
    const handle = targets.get(f.path);
    if (handle && (await sha256OfFile(handle, buffers)) !== f.sha256) bad.add(handle);
  }
  return bad;
}

/** Two buffers of {@link PASS_BYTES}: the next read is in flight while the current one is hashed. */
function readBuffers(): [Buffer, Buffer] {
  return [Buffer.allocUnsafe(PASS_BYTES), Buffer.allocUnsafe(PASS_BYTES)];
}

/** SHA-256 (hex) of an open file's contents, read with two alternating buffers. */
async function sha256OfFile(handle: FileHandle, bufs: [Buffer, Buffer]): Promise<string> {
  const h = createHash('sha256');
  let turn = 0;
  let pos = 0;
  const readNext = () => {
    const buf = bufs[turn++ % 2]!;
    const at = pos;
    pos += buf.length;
    return handle.read(buf, 0, buf.length, at);
  };
  let next = readNext();
  for (;;) {
    const { bytesRead, buffer } = await next;
    if (bytesRead === 0) break;
    next = readNext();
    h.update(buffer.subarray(0, bytesRead));
  }
  // A read past the end may still be in flight: let it settle before the handle is closed.
  await next;
  return h.digest('hex');
}

async function syncTree(root: string, manifest: ResolvedManifest): Promise<void> {
  const dirs = new Set<string>([root]);
  for (const f of manifest.files) dirs.add(dirname(join(root, f.path)));
  for (const d of dirs) await fsyncDir(d);
}

/** A whole-file mismatch after assembly. */
export class VerifyError extends Error {
  readonly code = 'GPULSE_MODEL_VERIFY';
}

/** Re-reads every file from disk and checks its size and SHA-256 against the manifest. */
export async function verifyTree(dir: string, manifest: SignedManifest): Promise<void> {
  const bufs = readBuffers();
  for (const f of manifest.files) {
    const path = join(dir, f.path);
    let handle: FileHandle;
    try {
      handle = await open(path, READ_NOFOLLOW);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOOP')
        throw new VerifyError(`${f.path} is a symbolic link, not a file of the version`);
      throw err;
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new VerifyError(`${f.path} is ${kindOf(st)}, not a file`);
      const size = st.size;
      if (size !== f.size)
        throw new VerifyError(`${f.path}: size ${size}, manifest says ${f.size}`);
      const got = await sha256OfFile(handle, bufs);
      if (got !== f.sha256)
        throw new VerifyError(
          `${f.path}: SHA-256 ${got.slice(0, 16)}… does not match the manifest's ${f.sha256.slice(0, 16)}… (the published manifest is inconsistent with its chunks)`,
        );
    } finally {
      await handle.close();
    }
  }
}
