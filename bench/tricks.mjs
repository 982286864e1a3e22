// npm run bench:tricks — what each memory/CPU trick of the code saves, ON against OFF in the same
// run (issue 18): the configuration validated in a child process, the hand-rolled MQTT socket
// (connectMqtt), coalesced PUBACK writes, the deep imports into package internals and the lazy
// requires. Every measurement runs in a fresh `node --expose-gc` child (this script with `case ...`),
// so no module cache leaks from one case into another; memory is heapUsed and RSS after forced
// GCs, CPU is the child's own process.cpuUsage(). Median of BENCH_RUNS runs (default 5).
// The bar a trick must clear to stay: ≥ 1 MB of heap or RSS, or ≥ 0.1 % of one core.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, table, startMosquitto } from './lib.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 20_000);
const PAYLOAD_BYTES = Number(process.env.BENCH_PAYLOAD_BYTES ?? 300);
// The fleet of edge/README.md and bench/edge.mjs part 4: 10,000 devices, one message each per 60 s.
const FLEET_MSGS_PER_S = 10_000 / 60;
const BAR = { bytes: 1e6, cpuShare: 0.001 };
const root = new URL('..', import.meta.url).pathname;
const dist = (p) => new URL(`../dist/${p}`, import.meta.url).href;
const requireRoot = createRequire(join(root, 'package.json'));

// Packages the code requires on first use instead of at import (createRequire), and where.
const LAZY = [
  ['dockerode', 'agent/process/lazy-require.ts (Docker collector, model component)'],
  ['pino-pretty', 'agent/process/lazy-require.ts (logs to a terminal)'],
  ['zod', 'agent/components/drift/profile.ts (reference profiles)'],
  ['@stdlib/math-base-special-gammainc', 'agent/components/drift/statistics.ts (p-values)'],
  ['bcryptjs', 'agent/http/basic-auth.ts, agent/http/command.ts'],
  ['yaml', 'agent/config.ts, agent/http/web-config.ts (YAML files)'],
  ['fast-xml-parser', 'collectors/nvidia-smi/parse-xml.ts'],
  ['csv-parse/sync', 'collectors/dcgm/catalogue.ts'],
];

// ---------------------------------------------------------------------------------------------
// The cases, each run in its own child process; each prints one JSON line.

/** heapUsed and RSS after the garbage is collected (several passes, a pause for the allocator). */
async function settled() {
  for (let i = 0; i < 4; i++) {
    globalThis.gc();
    await new Promise((r) => setTimeout(r, 25));
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

const cpuMs = (since) => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
};

const silentLog = async () => (await import('pino')).default({ level: 'silent' });

/** A fastify app as the agent builds it (createWebApp, /healthz), served once on loopback. */
async function webApp(lazy) {
  const { createWebApp } = await import(dist('agent/http/web-app.js'));
  const { lazySchemaCompilers } = await import(dist('agent/http/server.js'));
  const app = createWebApp({
    log: await silentLog(),
    openPaths: ['/healthz'],
    ...(lazy ? { fastify: { schemaController: { compilersFactory: lazySchemaCompilers() } } } : {}),
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address();
  await (await fetch(`http://127.0.0.1:${port}/healthz`)).text();
  return app;
}

/** The agent's process metrics: a registry with prom-client's default metrics, rendered once. */
async function processMetrics(deep) {
  const { Registry, collectDefaultMetrics } = deep
    ? (await import(dist('agent/process/lazy-require.js'))).loadProcessMetrics()
    : requireRoot('prom-client');
  const register = new Registry();
  collectDefaultMetrics({ register });
  await register.metrics();
  return register;
}

function mqttUrl(port) {
  return `mqtt://127.0.0.1:${port}`;
}

/** Connects with mqtt.connect (OFF) or connectMqtt (ON) and waits for CONNACK. */
async function mqttClient(handRolled, port, options) {
  const connect = handRolled
    ? (await import(dist('edge/mqtt/connect.js'))).connectMqtt
    : (await import('mqtt')).default.connect;
  const client = connect(mqttUrl(port), options);
  return client;
}

const connected = (client) =>
  new Promise((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });

/**
 * A QoS 1 subscriber reconnecting to its persistent session, where MESSAGES queued messages wait:
 * the CPU it spends from CONNECT to the last message, PUBACKs coalesced (ON) or not (OFF).
 */
async function burst(coalesce, port, clientId, count) {
  const { connectMqtt } = await import(dist('edge/mqtt/connect.js'));
  const { coalesceWrites } = await import(dist('edge/mqtt/coalesce-writes.js'));
  let received = 0;
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const client = connectMqtt(mqttUrl(port), {
    clientId,
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 600 },
    reconnectPeriod: 0,
  });
  const done = new Promise((resolve, reject) => {
    client.on('message', () => {
      if (++received === count) resolve();
    });
    client.once('error', reject);
  });
  // As MqttConnection does (edge/mqtt/publisher.ts): on every connect, before any message.
  client.on('connect', () => {
    if (coalesce) coalesceWrites(client.stream);
  });
  await done;
  const result = { cpuMs: cpuMs(cpu0), wallMs: Date.now() - t0, received };
  await client.endAsync();
  return result;
}

async function runCase(name, args) {
  switch (name) {
    case 'config': {
      // What the daemon loads anyway is in both: the command's and the composition root's modules.
      await import(dist('agent/run-agent.js'));
      await import(dist('agent/build-agent.js'));
      const options = JSON.parse(args[1]);
      const noise = (t) => process.stderr.write(t);
      let loaded;
      if (args[0] === 'child') {
        const { loadAgentConfigInChild } = await import(dist('agent/config-in-child.js'));
        loaded = await loadAgentConfigInChild(options, process.env, noise);
      } else {
        const { loadAgentConfig } = await import(dist('agent/config-loader.js'));
        loaded = loadAgentConfig(options, process.env, noise);
      }
      if (!loaded) throw new Error('the configuration did not load');
      globalThis.keep = loaded;
      return settled();
    }
    case 'mqtt': {
      const client = await mqttClient(args[0] === 'hand-rolled', Number(args[1]), {
        clientId: `tricks-${process.pid}`,
        protocolVersion: 5,
        reconnectPeriod: 0,
      });
      await connected(client);
      const m = await settled();
      await client.endAsync();
      return m;
    }
    case 'burst':
      return burst(args[0] === 'on', Number(args[1]), args[2], Number(args[3]));
    case 'fastify': {
      const app = await webApp(args[0] === 'lazy');
      const m = await settled();
      await app.close();
      return m;
    }
    case 'prom-client':
      globalThis.keep = await processMetrics(args[0] === 'deep');
      return settled();
    case 'lazy': {
      // Lazy (ON): not loaded; eager (OFF): loaded. Same process, before and after.
      const before = await settled();
      const cpu0 = process.cpuUsage();
      globalThis.keep = requireRoot(args[0]);
      const loadMs = cpuMs(cpu0);
      const after = await settled();
      return { before, after, loadMs };
    }
    default:
      throw new Error(`unknown case ${name}`);
  }
}

if (process.argv[2] === 'case') {
  const result = await runCase(process.argv[3], process.argv.slice(4));
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// The parent: broker, runs, table.

/** Runs one case in a fresh node and returns its JSON. */
function child(...args) {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--expose-gc', new URL(import.meta.url).pathname, 'case', ...args],
      // A sandbox's NODE_EXTRA_CA_CERTS would add its parsed bundle to every case (see footprint.mjs).
      { env: { ...process.env, NODE_EXTRA_CA_CERTS: '' }, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`case ${args.join(' ')}: ${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout.trim().split('\n').pop()));
      },
    );
  });
}

const work = mkdtempSync(join(tmpdir(), 'gpulse-bench-tricks-'));

async function startBroker() {
  // Queued messages unlimited: the burst waits in a persistent session.
  return startMosquitto(work, 'max_queued_messages 0\n');
}

/** Opens a persistent QoS 1 session for clientId, then queues MESSAGES messages for it. */
async function queueBurst(port, clientId) {
  const topic = `bench/tricks/${clientId}`;
  const sub = [
    '-p',
    String(port),
    '-V',
    'mqttv5',
    '-q',
    '1',
    '-i',
    clientId,
    '-c',
    '-x',
    '600',
    '-t',
    topic,
    '-E',
  ];
  execFileSync('mosquitto_sub', sub, { stdio: 'ignore' });
  const line = 'x'.repeat(PAYLOAD_BYTES);
  await new Promise((resolve, reject) => {
    const pub = spawn('mosquitto_pub', ['-p', String(port), '-q', '1', '-t', topic, '-l'], {
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    pub.once('error', reject);
    pub.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`mosquitto_pub exited ${code}`)),
    );
    pub.stdin.end(`${line}\n`.repeat(MESSAGES));
  });
}

const mb = (b) => (b / 1e6).toFixed(2);
const meets = (ok) => (ok ? 'yes' : 'no');

/** Median heap and RSS of the cases ON and OFF, and the row of the table. */
function memoryRow(trick, where, on, off) {
  const heapOn = median(on.map((r) => r.heap));
  const heapOff = median(off.map((r) => r.heap));
  const rssOn = median(on.map((r) => r.rss));
  const rssOff = median(off.map((r) => r.rss));
  const saving = Math.max(heapOff - heapOn, rssOff - rssOn);
  return [
    trick,
    where,
    `heap ${mb(heapOff)} → ${mb(heapOn)} MB, RSS ${mb(rssOff)} → ${mb(rssOn)} MB`,
    `heap ${mb(heapOff - heapOn)} MB, RSS ${mb(rssOff - rssOn)} MB`,
    meets(saving >= BAR.bytes),
  ];
}

const config = {
  flags: { preset: 'edge', 'mqtt-url': 'mqtt://127.0.0.1:1883', node: 'bench' },
};

const { broker, port } = await startBroker();
const rows = [];
const cpuRows = [];
try {
  const results = { config: [[], []], mqtt: [[], []], fastify: [[], []], prom: [[], []] };
  const bursts = [[], []];
  const lazy = new Map(LAZY.map(([pkg]) => [pkg, []]));
  for (let run = 1; run <= RUNS; run++) {
    // Both sides of every trick in each run, alternating which goes first.
    const pair = async (slot, on, off) => {
      if (run % 2) {
        slot[0].push(await on());
        slot[1].push(await off());
      } else {
        slot[1].push(await off());
        slot[0].push(await on());
      }
    };
    const json = JSON.stringify(config);
    await pair(
      results.config,
      () => child('config', 'child', json),
      () => child('config', 'in-process', json),
    );
    await pair(
      results.mqtt,
      () => child('mqtt', 'hand-rolled', String(port)),
      () => child('mqtt', 'connect', String(port)),
    );
    await pair(
      results.fastify,
      () => child('fastify', 'lazy'),
      () => child('fastify', 'default'),
    );
    await pair(
      results.prom,
      () => child('prom-client', 'deep'),
      () => child('prom-client', 'index'),
    );
    for (const [pkg] of LAZY) lazy.get(pkg).push(await child('lazy', pkg));
    for (const [i, mode] of (run % 2 ? ['on', 'off'] : ['off', 'on']).entries()) {
      const id = `tricks-${run}-${i}`;
      await queueBurst(port, id);
      const r = await child('burst', mode, String(port), id, String(MESSAGES));
      bursts[mode === 'on' ? 0 : 1].push(r);
    }
    console.error(`run ${run}/${RUNS} done`);
  }

  rows.push(
    memoryRow('config child', 'agent/config-in-child.ts', results.config[0], results.config[1]),
    memoryRow('hand-rolled MQTT socket', 'edge/mqtt/connect.ts', results.mqtt[0], results.mqtt[1]),
    memoryRow(
      'lazy fastify schema compilers',
      'agent/http/server.ts',
      results.fastify[0],
      results.fastify[1],
    ),
    memoryRow(
      'prom-client internals',
      'agent/process/lazy-require.ts',
      results.prom[0],
      results.prom[1],
    ),
  );
  for (const [pkg, where] of LAZY) {
    const r = lazy.get(pkg);
    const row = memoryRow(
      `lazy ${pkg}`,
      where,
      r.map((x) => x.before),
      r.map((x) => x.after),
    );
    row[2] += `, load ${median(r.map((x) => x.loadMs)).toFixed(0)} ms CPU`;
    rows.push(row);
  }

  const cpuOn = median(bursts[0].map((r) => r.cpuMs));
  const cpuOff = median(bursts[1].map((r) => r.cpuMs));
  const wallOff = median(bursts[1].map((r) => r.wallMs));
  const savedPer1000 = (cpuOff - cpuOn) / 1000 / (MESSAGES / 1000); // CPU s per 1,000 messages
  const burstShare = (cpuOff - cpuOn) / wallOff;
  const fleetShare = savedPer1000 * (FLEET_MSGS_PER_S / 1000);
  cpuRows.push([
    'coalesced writes',
    'edge/mqtt/coalesce-writes.ts',
    `${cpuOff.toFixed(0)} → ${cpuOn.toFixed(0)} ms CPU for ${MESSAGES} msgs (${median(
      bursts[0].map((r) => r.wallMs),
    ).toFixed(0)} / ${wallOff.toFixed(0)} ms wall)`,
    `${(savedPer1000 * 1000).toFixed(1)} ms CPU / 1,000 msgs; ${(burstShare * 100).toFixed(
      1,
    )} % of a core in the burst; ${(fleetShare * 100).toFixed(2)} % at ${Math.round(
      FLEET_MSGS_PER_S,
    )} msgs/s`,
    meets(fleetShare >= BAR.cpuShare),
  ]);
} finally {
  broker.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}

console.log(
  `\nTricks ON vs OFF, median of ${RUNS} runs, each case in a fresh node (--expose-gc); Node ${process.version}`,
);
console.log(
  `memory: heapUsed and RSS after forced GCs, OFF → ON; bar: saves ≥ ${mb(BAR.bytes)} MB (heap or RSS)\n`,
);
table(['trick', 'where', 'OFF → ON', 'saving', 'meets bar'], rows);
console.log(
  `\nCPU: a QoS 1 subscriber (connectMqtt, MQTT 5) draining ${MESSAGES} queued ${PAYLOAD_BYTES}-byte messages from Mosquitto,`,
);
console.log(
  `PUBACKs OFF → ON coalesced; bar: ≥ ${BAR.cpuShare * 100} % of one core at the fleet rate (10,000 devices, one message per 60 s)\n`,
);
table(['trick', 'where', 'OFF → ON', 'saving', 'meets bar'], cpuRows);
