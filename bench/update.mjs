// Bench: bytes a device downloads for a v1→v2 model update against xdelta3 and `zstd --patch-from`
// deltas of the same two files (made in the same run), over a grid of model sizes × edits; the
// metadata (signed manifest + chunk index) as a share of the model; apply throughput of the delta
// update against `sha256sum` of the same file (the hashing limit).
// `npm run bench:update` (builds first). BENCH_SIZES=16,256,1024 (MiB), BENCH_RUNS=3 (runs per cell
// for throughput; cells of 1 GiB and more use BENCH_BIG_RUNS=1). Bytes do not vary between runs.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { resolveManifest, storeIndexGetter } from '../dist/edge/models/chunk-index.js';
import { parseEnvelope, parseSignedManifest } from '../dist/edge/models/manifest.js';
import { publishModel } from '../dist/edge/models/publish.js';
import { generateKeyPair, readTrustedKeys } from '../dist/edge/models/signing.js';
import { applyModelUpdate } from '../dist/edge/models/updater.js';
import { DEFAULT_FETCH } from '../dist/edge/models/fetcher.js';
import { DEFAULT_HEALTH } from '../dist/edge/models/health.js';
import { DEFAULT_RELOAD } from '../dist/edge/models/reload.js';
import { blobKey } from '../dist/edge/models/store-layout.js';
import { median, table } from './lib.mjs';

const MiB = 1024 * 1024;
const SIZES = (process.env.BENCH_SIZES ?? '16,256,1024').split(',').map(Number);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BIG_RUNS = Number(process.env.BENCH_BIG_RUNS ?? 1);
const SMALL_REGION = 128 * 1024;

const fmt = (n) =>
  n >= MiB ? `${(n / MiB).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
const seconds = (fn) => {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
};

/** `share` of the bytes rewritten in `regions` places spread evenly, plus `insert` bytes at 37 %. */
function rewrite(v1, share, regions, insert) {
  const v2 = Buffer.from(v1);
  const per = Math.floor((v1.length * share) / regions);
  for (let r = 0; r < regions; r++)
    randomBytes(per).copy(v2, Math.floor(((r + 0.5) * v1.length) / regions) - Math.floor(per / 2));
  if (insert === 0) return v2;
  const mid = Math.floor(v1.length * 0.37);
  return Buffer.concat([v2.subarray(0, mid), randomBytes(insert), v2.subarray(mid)]);
}

/** The edits of the grid: name, description, v1 → v2. */
const EDITS = [
  [
    'few large regions',
    '5 % rewritten in 4 regions + 64 KiB inserted',
    (v1) => rewrite(v1, 0.05, 4, 64 * 1024),
  ],
  [
    'many small regions',
    `5 % rewritten in regions of ${SMALL_REGION / 1024} KiB + 64 KiB inserted`,
    (v1) =>
      rewrite(v1, 0.05, Math.max(1, Math.round((v1.length * 0.05) / SMALL_REGION)), 64 * 1024),
  ],
  [
    'one tensor replaced',
    '1/32 of the model rewritten in one place (same size)',
    (v1) => {
      const v2 = Buffer.from(v1);
      randomBytes(v1.length / 32).copy(v2, Math.floor(v1.length * 0.6));
      return v2;
    },
  ],
  [
    'tensor appended',
    '1/32 of the model appended',
    (v1) => Buffer.concat([v1, randomBytes(v1.length / 32)]),
  ],
  ['nothing changed', 'same bytes, new version', (v1) => v1],
];

/** Minimal static server with single-range support, counting body bytes sent. */
function serve(root) {
  let sent = 0;
  const server = createServer(async (req, res) => {
    const path = join(root, decodeURIComponent(new URL(req.url, 'http://x').pathname));
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) return res.writeHead(404).end();
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const end = m ? Math.min(Number(m[2]), st.size - 1) : st.size - 1;
    const headers = { 'content-length': end - start + 1 };
    if (m) headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
    res.writeHead(m ? 206 : 200, headers);
    createReadStream(path, { start, end })
      .on('data', (d) => (sent += d.length))
      .pipe(res);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}/`,
        sent: () => sent,
        close: () => server.close(),
      }),
    ),
  );
}

const log = pino({ level: 'silent' });
const rows = [];
let allMet = true;
const tmp = await mkdtemp(join(tmpdir(), 'gpulse-bench-update-'));
try {
  const keys = await generateKeyPair(join(tmp, 'keys'));
  const trust = await readTrustedKeys([keys.publicPath]);
  for (const mib of SIZES) {
    const size = mib * MiB;
    const runs = size >= 1024 * MiB ? BIG_RUNS : RUNS;
    const dir = join(tmp, `${mib}`);
    const store = join(dir, 'store');
    await mkdir(join(dir, 'm1'), { recursive: true });
    const v1 = randomBytes(size);
    const v1Path = join(dir, 'm1', 'weights.bin');
    await writeFile(v1Path, v1);
    const v1Sha = sha256Of(v1);
    const publish = (from, version, release) =>
      publishModel({
        name: 'm',
        version,
        release,
        from,
        store,
        keyPath: keys.privatePath,
        expiresInMs: 86_400_000,
      });
    await publish(join(dir, 'm1'), '1', 1);
    const server = await serve(store);
    // The store serves release `release` as its latest (each run applies v1's root copy → v2).
    const apply = async (root, release) => {
      await copyFile(
        join(store, 'm', 'manifests', `${release}.json`),
        join(store, 'm', 'manifest.json'),
      );
      return applyModelUpdate(
        {
          name: 'm',
          source: `${server.url}m/`,
          dir: root,
          trust,
          health: { ...DEFAULT_HEALTH, trialWindowMs: 0 },
          reload: DEFAULT_RELOAD,
          fetch: DEFAULT_FETCH,
          clockSkewMs: 0,
          maxBytes: 2 ** 40,
          maxManifestBytes: 64 * MiB,
        },
        { log },
      );
    };
    // v1 installed once per size; each run starts from a copy of that root.
    const base = join(dir, 'base-root');
    const first = await apply(base, 1);
    if (first.outcome !== 'committed') throw new Error(`apply v1 failed: ${first.message}`);
    let release = 1;
    for (const [edit, , make] of EDITS) {
      release++;
      const v2 = make(v1);
      const v2Dir = join(dir, `m${release}`);
      await mkdir(v2Dir);
      const v2Path = join(v2Dir, 'weights.bin');
      await writeFile(v2Path, v2);
      await publish(v2Dir, `${release}`, release);
      const manifestText = await readFile(join(store, 'm', 'manifests', `${release}.json`), 'utf8');
      const manifestBytes = Buffer.byteLength(manifestText);
      // v2's chunk index: every object its manifest names (root and groups), wherever first written.
      let indexTotal = 0;
      const fromStore = storeIndexGetter(join(store, 'm'));
      await resolveManifest(parseSignedManifest(parseEnvelope(manifestText).signed), async (w) => {
        const got = await fromStore(w);
        for (const data of got.values()) indexTotal += data.length;
        return got;
      });

      execFileSync('xdelta3', ['-e', '-f', '-s', v1Path, v2Path, join(dir, 'x.vcdiff')]);
      const xdelta = (await stat(join(dir, 'x.vcdiff'))).size;
      execFileSync('zstd', [
        '-q',
        '-f',
        '--long=31',
        '--memory=2048MB',
        `--patch-from=${v1Path}`,
        v2Path,
        '-o',
        join(dir, 'z.zst'),
      ]);
      const zstd = (await stat(join(dir, 'z.zst'))).size;

      const rates = [];
      const sha = [];
      let transferred = 0;
      let indexBytes = 0;
      for (let run = 0; run < runs; run++) {
        const root = join(dir, `root-${run}`);
        await cp(base, root, { recursive: true, verbatimSymlinks: true });
        // The copy's dirty pages go to disk now: the update's first fsync would otherwise pay for
        // the bench's own writes (ext4 commits them with the journal).
        execFileSync('sync');
        const sentBefore = server.sent();
        const t = performance.now();
        const r = await apply(root, release);
        const s = (performance.now() - t) / 1000;
        if (r.outcome !== 'committed')
          throw new Error(`apply ${edit} at ${mib} MiB: ${r.outcome} ${r.message}`);
        transferred = server.sent() - sentBefore;
        indexBytes = r.stats?.indexBytesDownloaded ?? 0;
        rates.push(v2.length / MiB / s);
        sha.push(v2.length / MiB / seconds(() => execFileSync('sha256sum', [v2Path])));
        await rm(root, { recursive: true, force: true });
      }
      const smaller = Math.min(xdelta, zstd);
      const ratio = transferred / smaller;
      const metaShare = (manifestBytes + indexTotal) / v2.length;
      const speed = median(rates) / median(sha);
      const met = ratio <= 1.5 && metaShare <= 0.002 && speed >= 0.5;
      allMet &&= met;
      rows.push([
        `${mib} MiB`,
        edit,
        fmt(transferred),
        `${fmt(indexBytes)} + ${fmt(manifestBytes)}`,
        fmt(xdelta),
        fmt(zstd),
        `${ratio.toFixed(2)} / 1.5`,
        `${(100 * metaShare).toFixed(3)} %`,
        `${median(rates).toFixed(0)} / ${median(sha).toFixed(0)} = ${(100 * speed).toFixed(0)} %`,
        String(runs),
        met ? 'met' : 'NOT met',
      ]);
      // Progress on stderr: a 1 GiB size takes minutes, and the table comes only at the end.
      console.error(rows.at(-1).join(' | '));
      await rm(v2Dir, { recursive: true, force: true });
      const v2Sha = sha256Of(v2);
      if (v2Sha !== v1Sha) await rm(join(store, 'm', blobKey(v2Sha)), { force: true });
    }
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
  console.log(
    `model update bench: bytes a device downloads for v1→v2 (chunks + index + signed manifest) against the smaller of xdelta3 -e -s and zstd --patch-from --long=31 of the same files; metadata = signed manifest + chunk index of v2 as a share of the model; apply = v1→v2 MB/s vs sha256sum of v2 (median of the runs)`,
  );
  for (const [name, what] of EDITS) console.log(`  ${name}: ${what}`);
  table(
    [
      'model',
      'edit',
      'gpulse bytes',
      'of which index + manifest',
      'xdelta3',
      'zstd',
      'ratio / goal',
      'metadata',
      'apply MB/s vs sha256sum',
      'runs',
      'goals',
    ],
    rows,
  );
  console.log(
    `goals (≤ 1.5× the smaller delta, metadata ≤ 0.2 %, apply ≥ 50 % of sha256sum) on every cell: ${allMet ? 'met' : 'NOT met'}`,
  );
} finally {
  await rm(tmp, { recursive: true, force: true });
}

function sha256Of(buf) {
  return createHash('sha256').update(buf).digest('hex');
}
