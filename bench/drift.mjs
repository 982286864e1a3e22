// npm run bench:drift — drift ingest throughput (feature values per second per core), memory per
// monitored feature with 100 features at 10,000 rows/s, and the time scipy takes for the same
// statistics on the same window. CPU time (not wall time) is measured so that other work on a
// shared machine does not count; every figure is the median of BENCH_RUNS runs.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { median, table } from './lib.mjs';

const execFileAsync = promisify(execFile);
const dist = (p) => new URL(`../dist/${p}`, import.meta.url).href;
const { DriftMonitor } = await import(dist('agent/components/drift/monitor.js'));
const { driftConfigSchema } = await import(dist('agent/components/drift/config.js'));
const { ProfileBuilder } = await import(dist('agent/components/drift/profile-builder.js'));
const { syntheticRows } = await import(dist('agent/components/drift/synthetic.js'));
const { parseObservations } = await import(dist('agent/components/drift/observations.js'));
const { DriftComponent } = await import(dist('agent/components/drift/drift.js'));
const { buildAgent } = await import(dist('agent/build-agent.js'));
const { loadConfig } = await import(dist('agent/config.js'));
const { FakeClock, systemClock } = await import(dist('agent/core/clock.js'));
const { EventLog } = await import(dist('agent/core/events.js'));

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const NUMERIC = 90;
const CATEGORICAL = 10;
const FEATURES = NUMERIC + CATEGORICAL;
const RATE = 10_000; // rows per second
const REF_ROWS = 10_000;
const WINDOW_ROWS = Number(process.env.BENCH_WINDOW_ROWS ?? 100_000); // 10 s at 10,000 rows/s
const BATCH = 100; // rows per request or message
const SUSTAIN_SECONDS = Number(process.env.BENCH_SUSTAIN_SECONDS ?? 10);
const log = pino({ level: 'silent' });

const CATS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
const shape = { numeric: {}, categorical: {} };
for (let i = 0; i < NUMERIC; i++) shape.numeric[`n${i}`] = { mean: i, sd: 1 + i / 50 };
for (let i = 0; i < CATEGORICAL; i++) {
  shape.categorical[`c${i}`] = Object.fromEntries(CATS.map((c, j) => [c, CATS.length - j]));
}

function cpu() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function gc() {
  if (typeof global.gc === 'function') {
    global.gc();
    global.gc();
  }
}

function newMonitor(profile, clock = new FakeClock(1_700_000_000_000)) {
  const config = driftConfigSchema.parse({});
  const events = new EventLog({ clock, log });
  const monitor = new DriftMonitor({ config, clock, log, events });
  const r = monitor.setReference('m', profile, 'api');
  if (!r.ok) throw new Error(r.error);
  return { monitor, clock };
}

console.log(
  `drift bench: ${FEATURES} features (${NUMERIC} numeric, ${CATEGORICAL} categorical), reference ${REF_ROWS} rows, window ${WINDOW_ROWS} rows, ${RUNS} runs (median), Node ${process.versions.node}`,
);
const reference = syntheticRows(shape, REF_ROWS, 1);
const builder = new ProfileBuilder();
for (const row of reference) builder.add(row);
const profile = builder.build({ model: 'm' });
const window = syntheticRows(shape, WINDOW_ROWS, 2);
const batches = [];
for (let i = 0; i < window.length; i += BATCH) batches.push(window.slice(i, i + BATCH));
const texts = batches.map((b) => JSON.stringify(b));
const limits = { features: FEATURES, valueLength: 256 };

// 1. Ingest of parsed rows (the window path alone) and of JSON text (parse + validate + window).
const parsedRuns = [];
const jsonRuns = [];
const evalRuns = [];
for (let run = 0; run < RUNS; run++) {
  const { monitor } = newMonitor(profile);
  let t = cpu();
  for (const b of batches) monitor.ingest('m', b, 'http');
  parsedRuns.push((WINDOW_ROWS * FEATURES) / (cpu() - t));
  t = cpu();
  monitor.evaluate();
  evalRuns.push(cpu() - t);
  const fresh = newMonitor(profile).monitor;
  t = cpu();
  for (const text of texts) {
    const checked = parseObservations(text, limits);
    if (!checked.ok) throw new Error(checked.problems.join('; '));
    fresh.ingest('m', checked.rows, 'mqtt');
  }
  jsonRuns.push((WINDOW_ROWS * FEATURES) / (cpu() - t));
}

// 2. HTTP: wrk POSTs 100-row JSON bodies to a real agent in this process; CPU of this process.
let httpRate = NaN;
const httpNote = [];
try {
  execFileSync('which', ['wrk']);
  const { config } = loadConfig({ file: { name: 'bench.yaml', text: 'listen: 127.0.0.1:0\n' } });
  const drift = new DriftComponent(config.drift);
  const agent = buildAgent(config, { log, version: 'bench', collectors: [], components: [drift] });
  const address = await agent.start();
  drift.loadReferenceProfile('m', profile, 'api');
  const dir = mkdtempSync(join(tmpdir(), 'gpulse-bench-'));
  const script = join(dir, 'post.lua');
  writeFileSync(
    script,
    `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = ${JSON.stringify(texts[0])}\n`,
  );
  const runs = [];
  for (let run = 0; run < RUNS; run++) {
    const t = cpu();
    // wrk runs as its own process; only this process's CPU (the agent) is counted.
    // Asynchronous: the agent answers in this process's event loop while wrk runs.
    const { stdout: out } = await execFileAsync(
      'wrk',
      ['-t1', '-c4', '-d3s', '-s', script, `${address}/api/v1/models/m/observations`],
      { encoding: 'utf8' },
    );
    const spent = cpu() - t;
    const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
    if (/Non-2xx/.test(out)) throw new Error(`wrk saw errors:\n${out}`);
    runs.push((requests * BATCH * FEATURES) / spent);
  }
  httpRate = median(runs);
  await agent.stop();
  rmSync(dir, { recursive: true, force: true });
} catch (err) {
  httpNote.push(`HTTP run skipped: ${err.message}`);
}

// 3. Sustained 10,000 rows/s for SUSTAIN_SECONDS: batches of 100 rows every 10 ms (JSON path).
const sustainRuns = [];
for (let run = 0; run < Math.min(RUNS, 3); run++) {
  const { monitor } = newMonitor(profile, systemClock);
  const t0 = Date.now();
  const c0 = cpu();
  let sent = 0;
  while (Date.now() - t0 < SUSTAIN_SECONDS * 1000) {
    const due = Math.floor(((Date.now() - t0) / 1000) * RATE);
    while (sent + BATCH <= due) {
      const checked = parseObservations(texts[(sent / BATCH) % texts.length], limits);
      monitor.ingest('m', checked.rows, 'http');
      sent += BATCH;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const wall = (Date.now() - t0) / 1000;
  sustainRuns.push({ cpuShare: (cpu() - c0) / wall, rate: sent / wall });
}

// 4. Memory: window state per feature (counted), and the heap it takes, as traffic grows.
// Typed arrays live outside the JS heap: count heapUsed + arrayBuffers.
// Array buffers are released after a collection settles: collect a few times with pauses.
const mem = async () => {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 50));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
gc();
const heap0 = await mem();
const { monitor: memMonitor, clock: memClock } = newMonitor(profile);
gc();
const heap1 = await mem();
const footprint = [...memMonitor.footprint('m').values()];
const stateBytes = footprint.reduce((s, f) => s + f.bytes, 0);
const numericBytes = footprint.find((f) => f.binsPerBucket === 22)?.bytes;
const catBytes = footprint.find((f) => f.binsPerBucket === CATS.length + 1)?.bytes;
const heapAfter = [];
let ingested = 0;
for (const target of [WINDOW_ROWS, 10 * WINDOW_ROWS]) {
  while (ingested < target) {
    memMonitor.ingest('m', batches[(ingested / BATCH) % batches.length], 'http');
    ingested += BATCH;
    // One simulated second per 10,000 rows: buckets rotate as they would at this rate.
    if (ingested % RATE === 0) await memClock.advance(1000);
  }
  memMonitor.evaluate();
  gc();
  heapAfter.push({
    rows: ingested,
    heap: await mem(),
    state: [...memMonitor.footprint('m').values()].reduce((s, f) => s + f.bytes, 0),
  });
}

// 5. scipy on the same window (raw values in memory; load time excluded).
let scipy;
const pythonNote = [];
const python = ['python3', '/usr/bin/python3'].find(
  (p) => spawnSync(p, ['-c', 'import scipy, numpy'], { stdio: 'ignore' }).status === 0,
);
if (python) {
  const dir = mkdtempSync(join(tmpdir(), 'gpulse-bench-scipy-'));
  const num = (rows) => {
    const a = new Float64Array(rows.length * NUMERIC);
    rows.forEach((r, i) => {
      for (let f = 0; f < NUMERIC; f++) a[i * NUMERIC + f] = r[`n${f}`];
    });
    return Buffer.from(a.buffer);
  };
  const cat = (rows) => {
    const a = new Int32Array(rows.length * CATEGORICAL);
    rows.forEach((r, i) => {
      for (let f = 0; f < CATEGORICAL; f++) a[i * CATEGORICAL + f] = CATS.indexOf(r[`c${f}`]);
    });
    return Buffer.from(a.buffer);
  };
  writeFileSync(join(dir, 'ref.f64'), num(reference));
  writeFileSync(join(dir, 'cur.f64'), num(window));
  writeFileSync(join(dir, 'ref_cat.i32'), cat(reference));
  writeFileSync(join(dir, 'cur_cat.i32'), cat(window));
  writeFileSync(
    join(dir, 'meta.json'),
    JSON.stringify({
      numeric: NUMERIC,
      categorical: CATEGORICAL,
      categories: CATS.length,
      edges: Array.from({ length: NUMERIC }, (_, i) => profile.features[`n${i}`].edges),
    }),
  );
  const script = new URL('./drift_scipy.py', import.meta.url).pathname;
  const out = execFileSync(python, [script, dir, String(RUNS)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  scipy = JSON.parse(out);
  const version = execFileSync(python, ['-c', 'import scipy; print(scipy.__version__)'], {
    encoding: 'utf8',
  }).trim();
  pythonNote.push(`scipy ${version} (${python})`);
  rmSync(dir, { recursive: true, force: true });
} else {
  pythonNote.push(
    'scipy comparison skipped: no python3 with scipy (apt-get install python3-scipy)',
  );
}

// ---- report ---------------------------------------------------------------------------------
const M = (v) => (v / 1e6).toFixed(2);
console.log('\nIngest throughput (feature values per CPU-second of one core)');
table(
  ['path', 'M values/s/core', 'M rows/s/core'],
  [
    ['window only (parsed rows)', M(median(parsedRuns)), M(median(parsedRuns) / FEATURES)],
    ['JSON text → validate → window', M(median(jsonRuns)), M(median(jsonRuns) / FEATURES)],
    [
      'HTTP POST (wrk, 100-row bodies)',
      Number.isNaN(httpRate) ? 'n/a' : M(httpRate),
      Number.isNaN(httpRate) ? 'n/a' : M(httpRate / FEATURES),
    ],
  ],
);
for (const n of httpNote) console.log(n);

const sustain = {
  cpu: median(sustainRuns.map((r) => r.cpuShare)),
  rate: median(sustainRuns.map((r) => r.rate)),
};
console.log(`\nSustained ${RATE} rows/s × ${FEATURES} features (JSON path, ${SUSTAIN_SECONDS} s)`);
table(
  ['rows/s achieved', 'values/s', 'CPU (% of one core)', 'CPU scaled to 10,000 rows/s'],
  [
    [
      Math.round(sustain.rate),
      `${M(sustain.rate * FEATURES)} M`,
      (sustain.cpu * 100).toFixed(1),
      ((sustain.cpu * 100 * RATE) / sustain.rate).toFixed(1),
    ],
  ],
);

console.log('\nMemory of the monitored model (window: 12 buckets × 5 min)');
table(
  ['what', 'bytes'],
  [
    ['window state per numeric feature (counted)', numericBytes],
    ['window state per categorical feature (8 categories, counted)', catBytes],
    ['window state, all 100 features (counted)', stateBytes],
    [
      'memory per monitored feature (heap + array buffers, measured)',
      Number.isFinite(heap1 - heap0) ? Math.round((heap1 - heap0) / FEATURES) : 'n/a',
    ],
    ...heapAfter.map((h) => [
      `after ${h.rows} rows: counted state / memory growth since ${heapAfter[0].rows} rows`,
      `${h.state} / ${h.heap - heapAfter[0].heap}`,
    ]),
  ],
);
if (typeof global.gc !== 'function') console.log('(run with --expose-gc for heap figures)');

const evalSeconds = median(evalRuns);
const gpulseWindow = (WINDOW_ROWS * FEATURES) / median(parsedRuns) + evalSeconds;
console.log(`\nSame statistics on the same ${WINDOW_ROWS}-row window (CPU seconds)`);
const rows = [
  ['gpulse: evaluate 100 features (window already histogrammed)', evalSeconds.toFixed(5), ''],
  ['gpulse: histogram the window + evaluate', gpulseWindow.toFixed(3), ''],
];
if (scipy) {
  const s = median(scipy.seconds);
  rows.push([
    'scipy: ks_2samp, wasserstein, JS, PSI, chi-square on raw values',
    s.toFixed(3),
    `${(s / gpulseWindow).toFixed(1)}× gpulse total, ${(s / evalSeconds).toFixed(0)}× evaluate`,
  ]);
}
table(['who', 'CPU s', 'ratio'], rows);
for (const n of pythonNote) console.log(n);
