import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkDelta, createHarness, type Harness } from '../../test/helpers/models/harness.js';
import { writeModel } from '../../test/helpers/models/model-gen.js';
import {
  buildIndex,
  decodeRecords,
  encodeRecords,
  GROUP_MAX,
  IndexCache,
  INDEX_RECORD_BYTES,
  resolveManifest,
  sha256Hex,
  type ChunkRef,
} from './chunk-index.js';
import { verifyTree, VerifyError } from './assemble.js';
import { chunkingFor, INDEXED_CHUNKING } from './gear-cdc.js';
import {
  ManifestError,
  parseEnvelope,
  parseSignedManifest,
  type SignedManifest,
} from './manifest.js';
import { chunkKey } from './store-layout.js';

/** Deterministic pseudo-random bytes (SHA-256 in counter mode): fixed chunk boundaries. */
function pseudoRandom(seed: string, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let i = 0, at = 0; at < size; i++, at += 32)
    createHash('sha256').update(`${seed}:${i}`).digest().copy(out, at);
  return out;
}

const ref = (i: number, len: number): ChunkRef => [sha256Hex(Buffer.from(`chunk ${i}`)), len];

describe('chunk index encoding', () => {
  it('round-trips 36-byte records', () => {
    const refs = [ref(1, 1), ref(2, 65536), ref(3, 2 ** 32 - 1)];
    const data = encodeRecords(refs);
    expect(data.length).toBe(3 * INDEX_RECORD_BYTES);
    expect(data.subarray(32, 36)).toEqual(Buffer.from([1, 0, 0, 0]));
    expect(decodeRecords(data)).toEqual(refs);
    expect(() => decodeRecords(data.subarray(1))).toThrow(/not a whole number of records/);
  });

  it('groups at content-defined ends, so an insertion changes only the groups around it', () => {
    const chunks = Array.from({ length: 2000 }, (_, i) => ref(i, 1000));
    const a = buildIndex(chunks);
    const groupsA = decodeRecords(a.objects.get(a.root[0])!);
    expect(a.root[1]).toBe(groupsA.length * INDEX_RECORD_BYTES);
    expect(groupsA.length).toBe(21);
    const flat = groupsA.flatMap(([sha]) => decodeRecords(a.objects.get(sha)!));
    expect(flat).toEqual(chunks);
    expect(Math.max(...groupsA.map(([, n]) => n / INDEX_RECORD_BYTES))).toBeLessThanOrEqual(
      GROUP_MAX,
    );
    const edited = [...chunks.slice(0, 1000), ref(-1, 5), ...chunks.slice(1000)];
    const b = buildIndex(edited);
    const groupsB = decodeRecords(b.objects.get(b.root[0])!);
    const fresh = groupsB.filter(([sha]) => !a.objects.has(sha));
    expect(fresh.length).toBe(1);
    expect(groupsB.length).toBe(groupsA.length);
  });
});

describe('resolving a manifest', () => {
  const chunks = Array.from({ length: 300 }, (_, i) => ref(i, 1000));
  const built = buildIndex(chunks);
  const manifest = (size: number, root = built.root): SignedManifest => ({
    _type: 'gpulse.model-manifest',
    spec: 2,
    model: 'm',
    version: '1',
    release: 1,
    created: '2026-01-01T00:00:00.000Z',
    expires: '2027-01-01T00:00:00.000Z',
    files: [
      {
        path: 'w.bin',
        size,
        sha256: 'a'.repeat(64),
        chunking: { ...INDEXED_CHUNKING },
        index: { sha256: root[0], size: root[1] },
      },
    ],
  });
  const get = (objects: Map<string, Buffer>) => (wanted: readonly ChunkRef[]) =>
    Promise.resolve(
      new Map(
        wanted.flatMap(([sha]) => (objects.has(sha) ? [[sha, objects.get(sha)!] as const] : [])),
      ),
    );

  it('fills in every chunk from the root and its groups', async () => {
    const r = await resolveManifest(manifest(300_000), get(built.objects));
    expect(r.files[0]!.chunks).toEqual(chunks);
  });

  it('refuses an index whose chunks do not add up to the signed size', async () => {
    const err = await resolveManifest(manifest(300_001), get(built.objects)).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ManifestError);
    expect((err as ManifestError).reason).toBe('bad_index');
    expect((err as Error).message).toMatch(/adds up to 300000 bytes, not the file size 300001/);
  });

  it('refuses a missing group and a chunk above chunking.max', async () => {
    const partial = new Map([[built.root[0], built.objects.get(built.root[0])!]]);
    await expect(resolveManifest(manifest(300_000), get(partial))).rejects.toThrow(/is missing/);
    const big = buildIndex([ref(0, INDEXED_CHUNKING.max + 1)]);
    await expect(
      resolveManifest(manifest(INDEXED_CHUNKING.max + 1, big.root), get(big.objects)),
    ).rejects.toThrow(/lists a chunk of 65537 bytes/);
  });

  it('schema: a file names exactly one of chunks and index; spec 1 cannot name an index', () => {
    const m = manifest(300_000);
    expect(() => parseSignedManifest({ ...m, spec: 1 })).toThrow(/spec 1 manifest cannot name/);
    const f = m.files[0]!;
    expect(() =>
      parseSignedManifest({ ...m, files: [{ ...f, chunks: [[ref(0, 1)[0], 300_000]] }] }),
    ).toThrow(/exactly one of chunks and index/);
    expect(() =>
      parseSignedManifest({
        ...m,
        files: [{ ...f, index: { sha256: f.index!.sha256, size: 37 } }],
      }),
    ).toThrow(/multiple of 36/);
    expect(parseSignedManifest(m).files[0]!.index).toEqual(f.index);
  });
});

describe('IndexCache', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h.cleanup();
  });

  it('uses only local objects that hash right, and never follows a symlink', async () => {
    const dir = join(h.tmp, 'cache');
    await mkdir(dir);
    const good = Buffer.from('good object');
    const flipped = Buffer.from('flipped object');
    const linked = Buffer.from('linked object');
    await writeFile(join(dir, sha256Hex(good)), good);
    const bad = Buffer.from(flipped);
    bad[0]! ^= 1;
    await writeFile(join(dir, sha256Hex(flipped)), bad);
    await writeFile(join(h.tmp, 'elsewhere'), linked);
    await symlink(join(h.tmp, 'elsewhere'), join(dir, sha256Hex(linked)));
    const got = await new IndexCache(dir).get([
      [sha256Hex(good), good.length],
      [sha256Hex(flipped), flipped.length],
      [sha256Hex(linked), linked.length],
    ]);
    expect([...got.keys()]).toEqual([sha256Hex(good)]);
    await new IndexCache(dir).prune(new Set([sha256Hex(good)]));
    expect(await readdir(dir)).toEqual([sha256Hex(good)]);
  });
});

describe('updates of an 8 MiB model with a known edit', () => {
  let h: Harness;
  const SIZE = 8 * 1024 * 1024;
  const v1 = pseudoRandom('v1', SIZE);
  // Three 64 KiB regions rewritten: what a small fine-tune of three tensors looks like.
  const v2 = Buffer.from(v1);
  for (const at of [1_000_000, 4_000_000, 7_000_000])
    pseudoRandom(`v2:${at}`, 64 * 1024).copy(v2, at);

  beforeAll(async () => {
    h = await createHarness();
    await h.serve();
    await writeModel(join(h.tmp, 'm1'), v1);
    await writeModel(join(h.tmp, 'm2'), v2);
    await h.publish(join(h.tmp, 'm1'), '1.0.0', 1);
    expect((await h.apply()).outcome).toBe('committed');
    await h.publish(join(h.tmp, 'm2'), '1.1.0', 2);
  }, 120_000);
  afterAll(async () => {
    await h.cleanup();
  });

  it('signs a manifest of a few hundred bytes and keeps the index under 0.2 % of the model', async () => {
    const text = await readFile(join(h.store, 'detector', 'manifests', '2.json'), 'utf8');
    expect(text.length).toBe(1024);
    const m = parseSignedManifest(parseEnvelope(text).signed);
    expect(m.spec).toBe(2);
    const weights = m.files.find((f) => f.path === 'weights.bin')!;
    expect(weights.chunking).toEqual(chunkingFor(SIZE));
    expect(weights.chunks).toBeUndefined();
    const root = await readFile(join(h.store, 'detector', chunkKey(weights.index!.sha256)));
    let indexBytes = root.length;
    for (const [sha] of decodeRecords(root))
      indexBytes += (await stat(join(h.store, 'detector', chunkKey(sha)))).size;
    expect(indexBytes).toBe(13_968);
    expect((indexBytes + text.length) / SIZE).toBeLessThan(0.002);
  });

  it('downloads exactly the new chunks and index objects of the edit', async () => {
    const before = h.server.bytesSent;
    const r = await h.apply();
    expect(r.outcome).toBe('committed');
    const { bytes, chunks, indexBytes } = await chunkDelta(h.store, 1, 2);
    expect({ bytes, chunks, indexBytes }).toEqual({
      bytes: 306_280,
      chunks: 11,
      indexBytes: 10_584,
    });
    expect(r.stats).toMatchObject({
      bytesDownloaded: bytes + indexBytes,
      indexBytesDownloaded: indexBytes,
      chunksDownloaded: chunks,
      bytesReused: r.stats!.bytesTotal - bytes,
    });
    // 3 × 64 KiB rewritten: the device fetched 1.62× that (chunks, index and manifest); regions
    // this small cost about one ~22 KiB chunk each beyond their own bytes.
    expect(h.server.bytesSent - before).toBe(bytes + indexBytes + 1024);
    expect(await h.current()).toEqual({ version: '1.1.0', verified: true });
    // Only the index objects of the kept versions stay on the device.
    expect((await readdir(join(h.root, 'index'))).length).toBeGreaterThan(0);
  });

  it('refuses a store whose index group has one flipped byte, and keeps the installed version', async () => {
    await writeModel(join(h.tmp, 'm3'), Buffer.concat([v2, pseudoRandom('v3', 100_000)]));
    await h.publish(join(h.tmp, 'm3'), '1.2.0', 3);
    const text = await readFile(join(h.store, 'detector', 'manifests', '3.json'), 'utf8');
    const weights = parseSignedManifest(parseEnvelope(text).signed).files.find(
      (f) => f.path === 'weights.bin',
    )!;
    const root = await readFile(join(h.store, 'detector', chunkKey(weights.index!.sha256)));
    const lastGroup = decodeRecords(root).at(-1)![0];
    const path = join(h.store, 'detector', chunkKey(lastGroup));
    const data = await readFile(path);
    data[40]! ^= 0x01;
    await writeFile(path, data);
    const r = await h.apply();
    expect(r).toMatchObject({ outcome: 'failed', reason: 'chunk_verify_failed' });
    expect(await h.current()).toEqual({ version: '1.1.0', verified: true });
  });
});

describe('verifyTree', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h.cleanup();
  });

  it('hashes every byte of a file longer than its two 8 MiB read buffers', async () => {
    const data = pseudoRandom('verify', 17 * 1024 * 1024 + 3);
    const dir = join(h.tmp, 'tree');
    await mkdir(dir);
    await writeFile(join(dir, 'w.bin'), data);
    const m = {
      files: [{ path: 'w.bin', size: data.length, sha256: sha256Hex(data) }],
    } as unknown as SignedManifest;
    await expect(verifyTree(dir, m)).resolves.toBeUndefined();
    for (const at of [0, 8 * 1024 * 1024 + 5, data.length - 1]) {
      const flipped = Buffer.from(data);
      flipped[at]! ^= 0x80;
      await writeFile(join(dir, 'w.bin'), flipped);
      await expect(verifyTree(dir, m)).rejects.toThrow(VerifyError);
    }
    await writeFile(join(dir, 'w.bin'), data.subarray(1));
    await expect(verifyTree(dir, m)).rejects.toThrow(/size 17825794, manifest says 17825795/);
  });
});
