// npm run bench:web — what TLS and basic auth cost a scrape: /metrics of `gpulse simulate` (8 GPUs ×
// 64 processes) and of prometheus-node-exporter, each over plain HTTP and over HTTPS with basic
// auth from the same web configuration file, in the same run; plus a fresh TLS connection per
// request and an uncached password check (a bcrypt at cost 10: bcryptjs against Go's bcrypt).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, start, waitFor, median, wrk, table } from './lib.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 30);
const main = new URL('../dist/agent/main.js', import.meta.url).pathname;
const PASSWORD = 'bench-password';

// A CA, a server certificate for 127.0.0.1, and the web configuration both exporters read.
const dir = mkdtempSync(join(tmpdir(), 'gpulse-bench-web-'));
const ssl = (args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
ssl([
  'req',
  '-x509',
  ...ec,
  '-keyout',
  'ca.key',
  '-out',
  'ca.crt',
  '-days',
  '1',
  '-subj',
  '/CN=bench',
]);
ssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
writeFileSync(join(dir, 'ext'), 'subjectAltName=IP:127.0.0.1\n');
ssl(
  [
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
  ].concat(['-days', '1', '-extfile', 'ext', '-out', 'server.crt']),
);
const hash = execFileSync(process.execPath, [main, 'web-config', 'hash'], { input: PASSWORD })
  .toString()
  .trim();
const webConfig = join(dir, 'web-config.yml');
writeFileSync(
  webConfig,
  `tls_server_config: {cert_file: server.crt, key_file: server.key}\nbasic_auth_users: {bench: '${hash}'}\n`,
);
const ca = readFileSync(join(dir, 'ca.crt'));
const auth = `Basic ${Buffer.from(`bench:${PASSWORD}`).toString('base64')}`;

const ports = {};
for (const k of ['gpulse', 'gpulseTls', 'ne', 'neTls']) ports[k] = await freePort();
const gpulseArgs = [
  'simulate',
  '--profile',
  'h100-8x',
  '--process-count',
  '64',
  '--interval',
  '1s',
];
const env = { GPULSE_LOG_LEVEL: 'warn', GPULSE_LOG_FORMAT: 'json' };
const neArgs = ['--web.max-requests=0', '--no-collector.systemd'];
const procs = [
  start(main, [...gpulseArgs, '--listen', `127.0.0.1:${ports.gpulse}`], env),
  start(
    main,
    [...gpulseArgs, '--listen', `127.0.0.1:${ports.gpulseTls}`, '--web.config.file', webConfig],
    env,
  ),
  start('prometheus-node-exporter', [`--web.listen-address=127.0.0.1:${ports.ne}`, ...neArgs]),
  start('prometheus-node-exporter', [
    `--web.listen-address=127.0.0.1:${ports.neTls}`,
    `--web.config.file=${webConfig}`,
    ...neArgs,
  ]),
];

/** One HTTPS GET on a fresh connection; resolves with [status, ms]. */
function once(port, authorization) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(
      { host: '127.0.0.1', port, path: '/metrics', ca, agent: false, headers: { authorization } },
      (res) => {
        res.resume();
        res.on('end', () => resolve([res.statusCode, performance.now() - t0]));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

try {
  const plain = (port) => `http://127.0.0.1:${port}/metrics`;
  const tls = (port) => `https://127.0.0.1:${port}/metrics`;
  await waitFor(async () => (await fetch(plain(ports.gpulse))).ok, 60_000, 'gpulse');
  await waitFor(async () => (await fetch(plain(ports.ne))).ok, 30_000, 'node_exporter');
  await waitFor(async () => (await once(ports.gpulseTls, auth))[0] === 200, 60_000, 'gpulse TLS');
  await waitFor(
    async () => (await once(ports.neTls, auth))[0] === 200,
    30_000,
    'node_exporter TLS',
  );

  const load = (url, headers) => {
    const runs = [];
    for (let i = 0; i < RUNS; i++) runs.push(wrk(url, 10, SECONDS, 2, headers));
    return {
      rps: median(runs.map((r) => r.rps)),
      p50: median(runs.map((r) => r.p50ms)),
      p99: median(runs.map((r) => r.p99ms)),
    };
  };
  const results = {
    gpulse: [load(plain(ports.gpulse), {}), load(tls(ports.gpulseTls), { Authorization: auth })],
    node_exporter: [load(plain(ports.ne), {}), load(tls(ports.neTls), { Authorization: auth })],
  };

  // Sequential, so each measures one handshake (and, for wrong passwords, one bcrypt).
  const sample = async (port, authorization) => {
    const ms = [];
    for (let i = 0; i < SAMPLES; i++) ms.push((await once(port, authorization(i)))[1]);
    return median(ms);
  };
  const fresh = {
    gpulse: await sample(ports.gpulseTls, () => auth),
    node_exporter: await sample(ports.neTls, () => auth),
  };
  const wrong = (i) => `Basic ${Buffer.from(`bench:wrong-${Date.now()}-${i}`).toString('base64')}`;
  const uncached = {
    gpulse: await sample(ports.gpulseTls, wrong),
    node_exporter: await sample(ports.neTls, wrong),
  };

  console.log(
    `\n/metrics with 10 keep-alive connections (wrk, ${RUNS} runs × ${SECONDS}s, median)\n`,
  );
  const rows = [];
  for (const [name, [p, t]] of Object.entries(results)) {
    rows.push([name, 'http', p.p50.toFixed(2), p.p99.toFixed(2), Math.round(p.rps), '']);
    rows.push([
      name,
      'https + basic auth',
      t.p50.toFixed(2),
      t.p99.toFixed(2),
      Math.round(t.rps),
      `${(t.rps / p.rps).toFixed(2)}× of http`,
    ]);
  }
  table(['exporter', 'served', 'p50 ms', 'p99 ms', 'req/s', 'cost'], rows);
  console.log(
    `\none request per new TLS connection, and one with a password not seen before (median of ${SAMPLES})\n`,
  );
  table(
    ['', 'gpulse ms', 'node_exporter ms', 'ratio'],
    [
      [
        'new TLS connection + cached password',
        fresh.gpulse.toFixed(1),
        fresh.node_exporter.toFixed(1),
        `${(fresh.gpulse / fresh.node_exporter).toFixed(2)}×`,
      ],
      [
        'uncached password check (bcrypt cost 10)',
        uncached.gpulse.toFixed(1),
        uncached.node_exporter.toFixed(1),
        `${(uncached.gpulse / uncached.node_exporter).toFixed(2)}×`,
      ],
    ],
  );
} finally {
  for (const p of procs) p.kill('SIGTERM');
}
