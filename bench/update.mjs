// Bench: bytes transferred for a v1→v2 model update vs xdelta3 and zstd --patch-from deltas of the
// same files, and apply throughput vs `sha256sum` of the same file (the hashing limit).
// Median of several runs; run with `npm run bench:update` (builds first). BENCH_MB sets the size.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { publishModel } from '../dist/edge/models/publish.js';
import { generateKeyPair, readTrustedKeys } from '../dist/edge/models/signing.js';
import { applyModelUpdate } from '../dist/edge/models/updater.js';
import { DEFAULT_FETCH } from '../dist/edge/models/fetcher.js';
import { DEFAULT_HEALTH } from '../dist/edge/models/health.js';
import { DEFAULT_RELOAD } from '../dist/edge/models/reload.js';

const MB = 1024 * 1024;
const SIZE = Number(process.env.BENCH_MB ?? 256) * MB;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const seconds = (fn) => {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
};
const fmt = (n) => (n >= MB ? `${(n / MB).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`);

/** Same edit as the tests: 5 % rewritten in 4 regions, 64 KiB inserted at 37 %. */
function fineTune(v1) {
  const v2 = Buffer.from(v1);
  const per = Math.floor((v1.length * 0.05) / 4);
  for (let r = 0; r < 4; r++)
    randomBytes(per).copy(v2, Math.floor(((r + 0.5) * v1.length) / 4) - Math.floor(per / 2));
  const mid = Math.floor(v1.length * 0.37);
  return Buffer.concat([v2.subarray(0, mid), randomBytes(64 * 1024), v2.subarray(mid)]);
}

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

const tmp = await mkdtemp(join(tmpdir(), 'gpulse-bench-'));
try {
  const v1 = randomBytes(SIZE);
  const v2 = fineTune(v1);
  for (const [d, buf] of [
    ['m1', v1],
    ['m2', v2],
  ]) {
    await mkdir(join(tmp, d));
    await writeFile(join(tmp, d, 'weights.bin'), buf);
  }
  const keys = await generateKeyPair(join(tmp, 'keys'));
  const store = join(tmp, 'store');
  for (const [d, version, release] of [
    ['m1', '1', 1],
    ['m2', '2', 2],
  ]) {
    await publishModel({
      name: 'm',
      version,
      release,
      from: join(tmp, d),
      store,
      keyPath: keys.privatePath,
      expiresInMs: 86_400_000,
    });
  }
  const manifestBytes = (await stat(join(store, 'm', 'manifest.json'))).size;
  const server = await serve(store);
  const trust = await readTrustedKeys([keys.publicPath]);
  const log = pino({ level: 'silent' });
  const apply = (dir) =>
    applyModelUpdate(
      {
        name: 'm',
        source: `${server.url}m/`,
        dir,
        trust,
        health: { ...DEFAULT_HEALTH, trialWindowMs: 0 },
        reload: DEFAULT_RELOAD,
        fetch: DEFAULT_FETCH,
        clockSkewMs: 0,
        maxBytes: 2 ** 40,
        maxManifestBytes: 64 * MB,
      },
      { log },
    );

  // Peers: deltas of the same two files, made in this run.
  const v1Path = join(tmp, 'm1', 'weights.bin');
  const v2Path = join(tmp, 'm2', 'weights.bin');
  execFileSync('xdelta3', ['-e', '-f', '-s', v1Path, v2Path, join(tmp, 'x.vcdiff')]);
  const xdelta = (await stat(join(tmp, 'x.vcdiff'))).size;
  execFileSync('zstd', ['-q', '-f', `--patch-from=${v1Path}`, v2Path, '-o', join(tmp, 'z.zst')]);
  const zstd = (await stat(join(tmp, 'z.zst'))).size;

  const full = [];
  const delta = [];
  const sha = [];
  const nodeSha = [];
  let transferred = 0;
  let downloaded = 0;
  for (let run = 0; run < RUNS; run++) {
    // v2 is republished (same chunks, new release) so each run applies v1 then v2 to a fresh root.
    const root = join(tmp, `root-${run}`);
    await rm(join(store, 'm', 'manifest.json'));
    await publishModel({
      name: 'm',
      version: '1',
      release: 10 * run + 11,
      from: join(tmp, 'm1'),
      store,
      keyPath: keys.privatePath,
      expiresInMs: 86_400_000,
    });
    let t = performance.now();
    const r1 = await apply(root);
    full.push(SIZE / MB / ((performance.now() - t) / 1000));
    await publishModel({
      name: 'm',
      version: '2',
      release: 10 * run + 12,
      from: join(tmp, 'm2'),
      store,
      keyPath: keys.privatePath,
      expiresInMs: 86_400_000,
    });
    const before = server.sent();
    t = performance.now();
    const r2 = await apply(root);
    delta.push(v2.length / MB / ((performance.now() - t) / 1000));
    if (r1.outcome !== 'committed' || r2.outcome !== 'committed')
      throw new Error(`apply failed: ${r1.message} / ${r2.message}`);
    downloaded = r2.stats.bytesDownloaded;
    transferred = server.sent() - before;
    sha.push(v2.length / MB / seconds(() => execFileSync('sha256sum', [v2Path])));
    nodeSha.push(v2.length / MB / seconds(() => createHash('sha256').update(v2).digest()));
    await rm(root, { recursive: true, force: true });
  }
  server.close();

  const smaller = Math.min(xdelta, zstd);
  const rows = [
    [
      'bytes v1→v2: gpulse (chunks + manifest)',
      fmt(transferred),
      `${(transferred / smaller).toFixed(2)}× smaller delta`,
    ],
    [
      '  of which chunk bytes',
      fmt(downloaded),
      `${((100 * downloaded) / v2.length).toFixed(2)} % of v2`,
    ],
    ['  of which manifest', fmt(manifestBytes), ''],
    [
      'bytes v1→v2: xdelta3 -e -s',
      fmt(xdelta),
      `${((100 * xdelta) / v2.length).toFixed(2)} % of v2`,
    ],
    [
      'bytes v1→v2: zstd --patch-from',
      fmt(zstd),
      `${((100 * zstd) / v2.length).toFixed(2)} % of v2`,
    ],
    [
      'apply v1→v2 (delta), MB/s',
      median(delta).toFixed(0),
      `${((100 * median(delta)) / median(sha)).toFixed(0)} % of sha256sum`,
    ],
    [
      'apply v1 (full download), MB/s',
      median(full).toFixed(0),
      `${((100 * median(full)) / median(sha)).toFixed(0)} % of sha256sum`,
    ],
    ['sha256sum of v2, MB/s', median(sha).toFixed(0), 'hashing limit (coreutils)'],
    [
      'node:crypto SHA-256 of v2, MB/s',
      median(nodeSha).toFixed(0),
      'OpenSSL with SHA-NI (reference)',
    ],
  ];
  console.log(
    `model update bench: ${SIZE / MB} MiB model, v2 = 5 % rewritten in 4 regions + 64 KiB inserted; median of ${RUNS} runs`,
  );
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  for (const [a, b, c] of rows) console.log(`${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`);
  console.log(
    `goals: bytes ≤ 1.5× smaller delta: ${transferred <= 1.5 * smaller ? 'met' : 'NOT met'}; apply ≥ 50 % of sha256sum: ${median(delta) >= 0.5 * median(sha) ? 'met' : 'NOT met'}`,
  );
} finally {
  await rm(tmp, { recursive: true, force: true });
}
