// npm run bench:scrape — /metrics latency and throughput of `gpulse simulate` (8 GPUs × 64 processes)
// against prometheus-node-exporter in the same run, and the agent's own CPU and RSS at a 1 s interval.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { freePort, start, waitFor, cpuSeconds, rssBytes, median, wrk, table } from './lib.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
const main = new URL('../dist/agent/main.js', import.meta.url).pathname;
/** Node flags of the `gpulse` command's first line; the bench runs the command itself, as users do. */
const nodeFlags = readFileSync(main, 'utf8')
  .split('\n', 1)[0]
  .split(' ')
  .filter((w) => w.startsWith('--'));

function nodeExporterBinary() {
  for (const bin of ['prometheus-node-exporter', 'node_exporter']) {
    try {
      execFileSync('which', [bin]);
      return bin;
    } catch {
      // try the next name
    }
  }
  throw new Error('node_exporter not found: apt-get install prometheus-node-exporter');
}

const gpulsePort = await freePort();
const nePort = await freePort();
const agent = start(
  main,
  [
    'simulate',
    '--profile',
    'h100-8x',
    '--process-count',
    '64',
    '--listen',
    `127.0.0.1:${gpulsePort}`,
    '--interval',
    '1s',
  ],
  { GPULSE_LOG_LEVEL: 'warn', GPULSE_LOG_FORMAT: 'json' },
);
// Defaults otherwise; no request cap (it answers 503 past 40 in flight) and no systemd collector
// (no D-Bus on build machines), so every request measures a full, successful scrape.
const ne = start(nodeExporterBinary(), [
  `--web.listen-address=127.0.0.1:${nePort}`,
  '--web.max-requests=0',
  '--no-collector.systemd',
]);
const gpulseUrl = `http://127.0.0.1:${gpulsePort}/metrics`;
const neUrl = `http://127.0.0.1:${nePort}/metrics`;

try {
  await waitFor(
    async () => {
      const body = await (await fetch(gpulseUrl)).text();
      return (body.match(/^gpulse_gpu_process_memory_used_bytes\{/gm) ?? []).length === 64;
    },
    60_000,
    'gpulse to report 8 GPUs and 64 processes',
  );
  await waitFor(async () => (await fetch(neUrl)).ok, 30_000, 'node_exporter');
  const gpulseBody = await (await fetch(gpulseUrl)).text();
  const neBody = await (await fetch(neUrl)).text();

  // Idle cost first, undisturbed by load: one scrape every 5 s, as a Prometheus would.
  const cpu0 = cpuSeconds(agent.pid);
  const rss = [];
  const t0 = Date.now();
  while (Date.now() - t0 < IDLE_SECONDS * 1000) {
    if (Math.floor((Date.now() - t0) / 1000) % 5 === 0)
      await fetch(gpulseUrl).then((r) => r.text());
    rss.push(rssBytes(agent.pid));
    await new Promise((r) => setTimeout(r, 1000));
  }
  const elapsed = (Date.now() - t0) / 1000;
  const cpuShare = (cpuSeconds(agent.pid) - cpu0) / elapsed;

  const results = {};
  for (const [name, url] of [
    ['gpulse', gpulseUrl],
    ['node_exporter', neUrl],
  ]) {
    for (const c of [10, 50]) {
      const runs = [];
      for (let i = 0; i < RUNS; i++) runs.push(wrk(url, c, SECONDS));
      results[`${name}@${c}`] = {
        rps: median(runs.map((r) => r.rps)),
        p50: median(runs.map((r) => r.p50ms)),
        p99: median(runs.map((r) => r.p99ms)),
      };
    }
  }

  console.log(`\n/metrics under load (wrk, ${RUNS} runs × ${SECONDS}s, median)`);
  console.log(
    `exposition size: gpulse ${gpulseBody.length} bytes (${gpulseBody.split('\n').length} lines), node_exporter ${neBody.length} bytes\n`,
  );
  const rows = [];
  for (const c of [10, 50]) {
    const g = results[`gpulse@${c}`];
    const n = results[`node_exporter@${c}`];
    rows.push([
      c,
      g.p50.toFixed(2),
      g.p99.toFixed(2),
      Math.round(g.rps),
      n.p50.toFixed(2),
      n.p99.toFixed(2),
      Math.round(n.rps),
      `${(g.rps / n.rps).toFixed(1)}×`,
    ]);
  }
  table(
    [
      'conns',
      'gpulse p50 ms',
      'gpulse p99 ms',
      'gpulse req/s',
      'node_exp p50 ms',
      'node_exp p99 ms',
      'node_exp req/s',
      'req/s ratio',
    ],
    rows,
  );
  console.log(
    `\nagent at a 1 s interval, ${Math.round(elapsed)} s, 8 GPUs × 64 processes, scraped every 5 s, ` +
      `Node flags of the gpulse command: ${nodeFlags.join(' ') || '(none)'}`,
  );
  table(
    ['agent CPU (% of one core)', 'RSS median MB', 'RSS max MB'],
    [
      [
        (cpuShare * 100).toFixed(2),
        (median(rss) / 1e6).toFixed(1),
        (Math.max(...rss) / 1e6).toFixed(1),
      ],
    ],
  );
} finally {
  agent.kill('SIGTERM');
  ne.kill('SIGTERM');
}
