// npm run bench:edge — MQTT edge delivery (issue 5), against a private Mosquitto on a free loopback port:
// (1) bytes per minute per GPU the real agent sends at a 10 s sample interval, batched into one
//     message per 60 s flush (1-GPU and 8-GPU profiles),
// (2) fleet gateway ingest messages/s for 1,000 simulated devices against mosquitto_sub receiving
//     the same stream in the same run, (3) spool write and replay messages/s (edge/mqtt/spool directly)
//     against a plain write+fdatasync loop on the same disk, (4) a fleet of 10,000 devices through
//     three gateways in one share group against one gateway alone (issue 21).
// BENCH_PARTS=2,4 runs only those parts (default all).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import pino from 'pino';
import { cpuSeconds, freePort, start, waitFor, median, rssBytes, table } from './lib.mjs';
import { systemClock } from '../dist/agent/core/clock.js';
import { Spool } from '../dist/edge/mqtt/spool/spool.js';
import { FLAG_DEFLATE } from '../dist/edge/mqtt/spool/record-format.js';
import {
  buildSchema,
  buildTelemetry,
  CONTENT_TYPE_DEFLATE,
  decodeBody,
  expandTelemetry,
  parseTelemetry,
  statusJson,
  telemetrySchemaId,
} from '../dist/exporters/mqtt/payloads.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const WINDOW_S = Number(process.env.BENCH_WINDOW_SECONDS ?? 240);
const SAMPLES = 6; // samples per message: 60 s flush / 10 s interval
const DEVICES = Number(process.env.BENCH_DEVICES ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const SPOOL_BATCHES = Number(process.env.BENCH_SPOOL_BATCHES ?? 1000);
const GENERATOR_CLIENTS = 4;
const FLEET = Number(process.env.BENCH_FLEET_DEVICES ?? 10_000);
const FLEET_INTERVAL_S = Number(process.env.BENCH_FLEET_INTERVAL_SECONDS ?? 60);
const PARTS = new Set((process.env.BENCH_PARTS ?? '1,2,3,4').split(',').map((p) => p.trim()));
const main = new URL('../dist/agent/main.js', import.meta.url).pathname;
const launcher = new URL('../scripts/gpulse-gateway', import.meta.url).pathname;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Everything started here is stopped here, on success, failure or Ctrl-C.
const cleanups = [];
async function cleanup() {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c();
    } catch (err) {
      console.error(`cleanup: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => void cleanup().finally(() => process.exit(130)));
}

function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Stops a child we started (it may be SIGSTOPped): SIGCONT, SIGTERM, SIGKILL after 5 s. */
function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGCONT');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  return exited.finally(() => clearTimeout(timer));
}

function track(child) {
  cleanups.push(() => stopChild(child));
  return child;
}

const portOpen = (port) =>
  new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

async function startMosquitto() {
  const dir = tempDir('gpulse-bench-mosquitto-');
  const port = await freePort();
  const conf = [
    // As root, mosquitto would switch to user "mosquitto", who cannot read our temp dir.
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'persistence false',
    // Subscribers paused by the bench must get every message later, none dropped from their queue.
    'max_queued_messages 0',
    `log_dest file ${dir}/mosquitto.log`,
  ].join('\n');
  writeFileSync(join(dir, 'mosquitto.conf'), `${conf}\n`);
  const child = track(start('mosquitto', ['-c', join(dir, 'mosquitto.conf')]));
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`mosquitto exited: ${child.stderrTail()}`);
      return portOpen(port);
    },
    10_000,
    'mosquitto to listen',
  );
  return { port, url: `mqtt://127.0.0.1:${port}`, child };
}

/**
 * A loopback TCP proxy in front of the broker that records every MQTT packet the client sends.
 * Only the fixed header (type, remaining length) and a PUBLISH topic are read, which is all the
 * byte count needs; a full MQTT parser is not a dependency of the project.
 */
async function countingProxy(brokerPort) {
  const packets = [];
  const server = createServer((downstream) => {
    const upstream = connect(brokerPort, '127.0.0.1');
    let buf = Buffer.alloc(0);
    downstream.on('data', (chunk) => {
      upstream.write(chunk);
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (buf.length < 2) break;
        let remaining = 0;
        let n = 0;
        let complete = false;
        while (n < 4 && 1 + n < buf.length) {
          const b = buf[1 + n];
          remaining += (b & 0x7f) * 128 ** n;
          n++;
          if ((b & 0x80) === 0) {
            complete = true;
            break;
          }
        }
        if (!complete || buf.length < 1 + n + remaining) break;
        const type = buf[0] >> 4;
        const bytes = 1 + n + remaining;
        const topic =
          type === 3 ? buf.toString('utf8', 3 + n, 3 + n + buf.readUInt16BE(1 + n)) : undefined;
        packets.push({ type, bytes, topic, at: Date.now() });
        buf = buf.subarray(bytes);
      }
    });
    upstream.on('data', (chunk) => downstream.write(chunk));
    const close = () => {
      downstream.destroy();
      upstream.destroy();
    };
    downstream.on('close', close);
    upstream.on('close', close);
    downstream.on('error', close);
    upstream.on('error', close);
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  server.unref();
  return { port, packets };
}

// ---------------------------------------------------------------------------------------------
// (1) bytes per minute per GPU at a 10 s interval: the real agent, a 60 s window, no scaling.

async function publisherBytes(broker) {
  const profiles = [
    { profile: 'h100', gpus: 1 },
    { profile: 'h100-8x', gpus: 8 },
  ];
  // A subscriber keeps the last telemetry of each node: the 1-GPU one is the gateway load below.
  // Every telemetry message of each node is kept, and its retained schema.
  const captured = new Map();
  const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
  cleanups.push(() => sub.endAsync(true));
  sub.on('message', (topic, payload, packet) => {
    if (payload.length === 0) return;
    const json = decodeBody(payload, packet.properties?.contentType, 64 << 20);
    const list = captured.get(topic) ?? [];
    list.push({
      bytes: payload.length,
      jsonBytes: Buffer.byteLength(json),
      json: JSON.parse(json),
    });
    captured.set(topic, list);
  });
  await sub.subscribeAsync(['gpulse/v1/bench/+/telemetry', 'gpulse/v1/bench/+/schema'], {
    qos: 1,
  });

  // Both agents run at once (one window of wall time), each behind its own counting proxy.
  const agents = [];
  for (const p of profiles) {
    const proxy = await countingProxy(broker.port);
    const child = track(
      start(
        process.execPath,
        [
          main,
          'simulate',
          '--profile',
          p.profile,
          '--listen',
          `127.0.0.1:${await freePort()}`,
          '--mqtt-url',
          `mqtt://127.0.0.1:${proxy.port}`,
          '--site',
          'bench',
          '--node',
          p.profile,
          '--mqtt-interval',
          '10s',
          '--mqtt-flush',
          '60s',
          '--mqtt-spool-dir',
          tempDir('gpulse-bench-spool-'),
        ],
        { GPULSE_LOG_LEVEL: 'warn', GPULSE_LOG_FORMAT: 'json' },
      ),
    );
    agents.push({ ...p, proxy, child });
  }
  const firstTelemetry = (a) =>
    a.proxy.packets.find((k) => k.type === 3 && k.topic?.endsWith('/telemetry'));
  for (const a of agents) {
    await waitFor(
      () => {
        if (a.child.exitCode !== null)
          throw new Error(`agent ${a.profile} exited: ${a.child.stderrTail()}`);
        return firstTelemetry(a);
      },
      120_000,
      `the ${a.profile} agent's first telemetry`,
    );
  }
  const windowEnd = Math.max(...agents.map((a) => firstTelemetry(a).at)) + WINDOW_S * 1000;
  await sleep(windowEnd - Date.now() + 500);

  const rows = [];
  for (const a of agents) {
    const t0 = firstTelemetry(a).at;
    // Starts just before the first telemetry so that message is in, its successor 60 s on is not.
    const inWindow = a.proxy.packets.filter(
      (k) => k.at >= t0 - 100 && k.at < t0 - 100 + WINDOW_S * 1000,
    );
    const telemetry = inWindow.filter((k) => k.type === 3 && k.topic.endsWith('/telemetry'));
    const status = inWindow.filter((k) => k.type === 3 && k.topic.endsWith('/status'));
    const schema = inWindow.filter((k) => k.type === 3 && k.topic.endsWith('/schema'));
    const total = inWindow.reduce((s, k) => s + k.bytes, 0);
    const perMinute = (total * 60) / WINDOW_S;
    const msgs = captured.get(`gpulse/v1/bench/${a.profile}/telemetry`) ?? [];
    const inline = msgs.find((m) => m.json.schema);
    const compact = msgs.find((m) => m.json.schema_id);
    const seriesCount = inline?.json.schema.series.reduce((n, g) => n + g.metrics.length, 0) ?? '?';
    const form = (m) => (m ? `${m.jsonBytes} → ${m.bytes}` : '—');
    // Steady state: from the first message with only schema_id (the series set settled: some
    // series, e.g. host CPU utilization, appear only after the first minute) to the window's end.
    // Telemetry is QoS 1 on one connection, so the captured messages are in the packets' order.
    const t1 = telemetry[msgs.findIndex((m) => m.json.schema_id)]?.at;
    const steadySpan = t1 === undefined ? 0 : t0 - 100 + WINDOW_S * 1000 - (t1 - 100);
    const steadyBytes = inWindow
      .filter((k) => t1 !== undefined && k.at >= t1 - 100)
      .reduce((s, k) => s + k.bytes, 0);
    const steady = steadySpan > 0 ? (steadyBytes * 60_000) / steadySpan : NaN;
    const goal = (perMin) => (perMin / a.gpus <= 2048 ? 'yes' : 'NO');
    rows.push([
      a.profile,
      a.gpus,
      seriesCount,
      inline?.json.ts.length ?? '?',
      form(inline),
      form(compact),
      telemetry.length,
      schema.reduce((s, k) => s + k.bytes, 0),
      status.reduce((s, k) => s + k.bytes, 0),
      inWindow.length - telemetry.length - status.length - schema.length,
      Math.round(perMinute),
      (perMinute / a.gpus / 1024).toFixed(2),
      Math.round(steady),
      (steady / a.gpus / 1024).toFixed(2),
      `${goal(perMinute)} / ${goal(steady)}`,
    ]);
  }
  for (const a of agents) await stopChild(a.child);

  console.log(
    `\n(1) publisher bytes on the wire, real agent (gpulse simulate), a sample every 10 s, one message per 60 s, QoS 1,`,
  );
  console.log(
    `    one ${WINDOW_S} s window per profile from its first telemetry message (so it includes the inline and retained schema),`,
  );
  console.log(
    `    measured at the client's TCP stream (MQTT fixed header + topic + properties + payload);`,
  );
  console.log(
    `    "steady": the same from the first message with only schema_id on (series set settled, as for the rest of a connection)\n`,
  );
  table(
    [
      'profile',
      'GPUs',
      'series',
      'samples/msg',
      'msg with schema: JSON → payload',
      'msg with schema_id: JSON → payload',
      'telemetry msgs',
      'schema bytes',
      'status bytes',
      'other pkts',
      'bytes/min',
      'KiB/min/GPU',
      'steady bytes/min',
      'steady KiB/min/GPU',
      '≤ 2 KiB/min/GPU (window / steady)',
    ],
    rows,
  );
  // The 1-GPU series for the gateway load: the last sample of the last self-contained message.
  const oneGpu = (captured.get('gpulse/v1/bench/h100/telemetry') ?? []).filter(
    (m) => m.json.schema,
  );
  const last = oneGpu[oneGpu.length - 1];
  if (!last) throw new Error('no 1-GPU telemetry with a schema was captured for the gateway load');
  const t = parseTelemetry(last.json);
  return expandTelemetry(t, t.schema).slice(-1)[0].series;
}

// ---------------------------------------------------------------------------------------------
// (2) gateway ingest for 1,000 devices vs mosquitto_sub on the same stream.

/** Telemetry of one device, values moved a little per message so no two payloads are alike. */
function deviceSeries(series, rand) {
  return series.map((g) => ({
    labels: g.labels,
    metrics: Object.fromEntries(
      Object.entries(g.metrics).map(([k, v]) => [
        k,
        k.endsWith('_ratio') ? Math.round(Math.min(1, v * (0.9 + 0.2 * rand())) * 1000) / 1000 : v,
      ]),
    ),
  }));
}

function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/** Publishes [topic, body, contentType, retain?] over QoS 1, GENERATOR_CLIENTS connections, 20 in flight each. */
async function publishAll(clients, messages) {
  await Promise.all(
    clients.map(async (client, c) => {
      const mine = messages.filter((_, i) => i % clients.length === c);
      let next = 0;
      const worker = async () => {
        while (next < mine.length) {
          const [topic, body, contentType, retain = false] = mine[next++];
          await client.publishAsync(topic, body, { qos: 1, retain, properties: { contentType } });
        }
      };
      // Mosquitto's default receive maximum is 20 QoS 1 messages in flight per client.
      await Promise.all(Array.from({ length: 20 }, worker));
    }),
  );
}

async function gatewayIngest(broker, series) {
  const gwPort = await freePort();
  // Through its launcher, under the Node flags a fleet runs it with. Extra flags, e.g.
  // BENCH_GATEWAY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof", reach it as NODE_OPTIONS.
  const gw = track(
    start(launcher, ['--mqtt-url', broker.url, '--listen', `127.0.0.1:${gwPort}`], {
      GPULSE_LOG_LEVEL: 'warn',
      GPULSE_LOG_FORMAT: 'json',
      ...(process.env.BENCH_GATEWAY_NODE_ARGS
        ? { NODE_OPTIONS: process.env.BENCH_GATEWAY_NODE_ARGS }
        : {}),
    }),
  );
  const gwUrl = `http://127.0.0.1:${gwPort}`;
  // A keep-alive socket the gateway closed while it was paused fails once: ask again.
  const readyz = async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await (await fetch(`${gwUrl}/readyz`)).json();
      } catch (err) {
        if (attempt >= 3 || gw.exitCode !== null)
          throw new Error(`gateway /readyz failed: ${err.message}; ${gw.stderrTail()}`, {
            cause: err,
          });
      }
    }
  };
  const devices = async () => (await readyz()).devices;
  await waitFor(
    async () => {
      if (gw.exitCode !== null) throw new Error(`gateway exited: ${gw.stderrTail()}`);
      return (await fetch(`${gwUrl}/readyz`)).status === 200;
    },
    30_000,
    'the gateway to subscribe',
  );

  // The peer: mosquitto_sub on the same broker and filter, MQTT 5 and QoS 1 like the gateway; one
  // line per message (topic and length, as a deflated payload may hold newline bytes).
  const subArgs = ['-h', '127.0.0.1', '-p', String(broker.port), '-V', 'mqttv5', '-q', '1'];
  const sub = track(
    spawn('mosquitto_sub', [...subArgs, '-t', 'gpulse/v1/#', '-F', '%t %l'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  const subLines = { count: 0, lastTopic: '', at: 0 };
  let partial = '';
  sub.stdout.setEncoding('utf8');
  sub.stdout.on('data', (d) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop();
    subLines.count += lines.length;
    if (lines.length > 0) {
      subLines.lastTopic = lines[lines.length - 1].split(' ')[0];
      subLines.at = performance.now();
    }
  });

  const clients = [];
  for (let i = 0; i < GENERATOR_CLIENTS; i++) {
    const client = await mqtt.connectAsync(broker.url, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      clientId: `bench-load-${i}`,
    });
    cleanups.push(() => client.endAsync(true));
    clients.push(client);
  }
  const nodes = Array.from({ length: DEVICES }, (_, i) => `dev-${String(i).padStart(4, '0')}`);
  const seqs = new Map(nodes.map((n) => [n, 0]));
  for (let r = 0; r < RUNS; r++) seqs.set(`sentinel-${r}`, 0);
  const rand = rng(42);
  let payloadBytes = 0;
  let payloadCount = 0;
  // One message per device as the agent sends it each minute: 6 samples, values only (schema_id).
  const batchOf = (node) => {
    const t0 = Date.now() - SAMPLES * 10_000;
    const samples = Array.from({ length: SAMPLES }, (_, i) => ({
      ts: t0 + i * 10_000,
      series: deviceSeries(series, rand),
    }));
    return buildTelemetry(samples, () => seqs.set(node, seqs.get(node) + 1).get(node), {
      compressAbove: 1024,
    })[0];
  };
  const round = () =>
    nodes.map((node) => {
      const m = batchOf(node);
      payloadBytes += m.compact.body.length;
      payloadCount++;
      return [`gpulse/v1/bench/${node}/telemetry`, m.compact.body, m.compact.contentType];
    });

  // Every device's schema retained first (as each agent does on connect): the gateway learns it
  // from there, the runs then carry values only.
  const schemaMessages = nodes.map((node) => {
    const { body, contentType } = buildSchema([batchOf(node).schema], Date.now(), 1024);
    return [`gpulse/v1/bench/${node}/schema`, body, contentType];
  });
  await publishAll(clients, schemaMessages);
  // Warm-up: every device known to the gateway, so runs measure the steady state (updates).
  await publishAll(clients, round());
  await waitFor(
    async () => (await devices()) >= DEVICES,
    60_000,
    'the gateway to see 1,000 devices',
  );
  await waitFor(() => subLines.count >= 2 * DEVICES, 60_000, 'mosquitto_sub to get the warm-up');

  const results = [];
  for (let r = 0; r < RUNS; r++) {
    const messages = [];
    for (let k = 0; k < ROUNDS; k++) messages.push(...round());
    // A last message from a new node: queued behind all others, it marks the end of the stream.
    const sentinel = `sentinel-${r}`;
    // Self-contained (schema inline): the gateway has never heard of this node.
    const s = batchOf(sentinel);
    // Devices known now (the 1,000, earlier sentinels, the agents of (1) by their retained status).
    const expectDevices = (await devices()) + 1;
    // Both receivers paused while the stream is published, then drained one at a time from the
    // broker's queue: each is measured at its own pace, not the load generator's, on a quiet box.
    gw.kill('SIGSTOP');
    sub.kill('SIGSTOP');
    await publishAll(clients, messages);
    await clients[0].publishAsync(`gpulse/v1/bench/${sentinel}/telemetry`, s.body, {
      qos: 1,
      properties: { contentType: s.contentType },
    });
    const n = messages.length + 1;

    const before = subLines.count;
    let t0 = performance.now();
    sub.kill('SIGCONT');
    await waitFor(
      () => subLines.lastTopic.includes(`/${sentinel}/`),
      120_000,
      'mosquitto_sub to drain',
    );
    const subRate = (subLines.count - before) / ((subLines.at - t0) / 1000);
    if (subLines.count - before !== n)
      throw new Error(`mosquitto_sub got ${subLines.count - before} messages, expected ${n}`);

    const cpu0 = cpuSeconds(gw.pid);
    t0 = performance.now();
    gw.kill('SIGCONT');
    let t1;
    // Done when the sentinel's device is known and nothing is left undecoded.
    for (;;) {
      if (gw.exitCode !== null) throw new Error(`gateway exited: ${gw.stderrTail()}`);
      const state = await readyz();
      if (state.devices >= expectDevices && state.queued === 0) {
        t1 = performance.now();
        break;
      }
      if (performance.now() - t0 > 180_000) throw new Error('the gateway did not drain in 180 s');
      await sleep(20);
    }
    const cpuUs = ((cpuSeconds(gw.pid) - cpu0) * 1e6) / n;
    results.push({ gw: n / ((t1 - t0) / 1000), sub: subRate, n, cpuUs, rss: rssBytes(gw.pid) });
  }

  // Counted once at the end: a scrape renders every device (~20 MB of text), and its garbage would
  // be collected during the next run.
  const metrics = await (await fetch(`${gwUrl}/metrics`)).text();
  const counter = (re) =>
    metrics
      .split('\n')
      .filter((l) => re.test(l))
      .reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  const telemetry = (result) =>
    counter(new RegExp(`^gpulse_fleet_messages_total\\{.*stream="telemetry".*result="${result}"`));
  const applied = telemetry('applied');
  const superseded = telemetry('superseded');
  const notApplied = telemetry('(stale|rejected)');
  const expected = DEVICES + RUNS * (ROUNDS * DEVICES + 1);
  if (applied + notApplied + superseded !== expected)
    throw new Error(
      `the gateway counted ${applied + notApplied + superseded} telemetry messages, expected ${expected}`,
    );
  const gwRss = rssBytes(gw.pid);
  await stopChild(sub);
  await stopChild(gw);

  const gwMedian = median(results.map((x) => x.gw));
  const subMedian = median(results.map((x) => x.sub));
  console.log(
    `\n(2) gateway ingest, ${DEVICES} devices × ${ROUNDS} telemetry messages per run (1-GPU series from (1), ` +
      `${SAMPLES} samples per message, values only: ${Math.round(payloadBytes / payloadCount)} bytes deflated, QoS 1, MQTT 5), ${RUNS} runs, median;`,
  );
  console.log(
    `    published while both receivers were paused, then each drained Mosquitto's queue alone; the gateway is done\n` +
      `    when it knows the last device and has nothing left undecoded (it decodes the messages that decide what a\n` +
      `    scrape shows: of a backlog, each device's newest; the others are counted superseded)\n`,
  );
  table(
    [
      'run',
      'messages',
      'gateway msgs/s',
      'mosquitto_sub msgs/s',
      'ratio (goal ≥ 0.5)',
      'gateway CPU µs/msg',
      'gateway RSS MB after',
    ],
    [
      ...results.map((x, i) => [
        i + 1,
        x.n,
        Math.round(x.gw),
        Math.round(x.sub),
        (x.gw / x.sub).toFixed(2),
        x.cpuUs.toFixed(0),
        (x.rss / 1e6).toFixed(1),
      ]),
      [
        'median',
        results[0].n,
        Math.round(gwMedian),
        Math.round(subMedian),
        (gwMedian / subMedian).toFixed(2),
        median(results.map((x) => x.cpuUs)).toFixed(0),
        '',
      ],
    ],
  );
  console.log(
    `gateway counters after the runs: telemetry decoded and applied ${applied}, superseded ${superseded}, ` +
      `stale or rejected ${notApplied} (${expected} in all); ` +
      `gateway RSS ${(gwRss / 1e6).toFixed(1)} MB`,
  );
}

// ---------------------------------------------------------------------------------------------
// (3) spool write (one message per batch, fsync each, as the outbox spools one snapshot) and replay
// (read in pages of mqtt.replayInFlight = 8, mark sending, ack), against write+fdatasync per record.

async function spoolRun(payload) {
  const dir = tempDir('gpulse-bench-spool-');
  const spool = await Spool.open({
    dir,
    maxBytes: 256 * 1024 * 1024,
    maxAgeMs: 7 * 24 * 3600 * 1000,
    clock: systemClock,
    log: pino({ level: 'silent' }),
  });
  let t0 = performance.now();
  for (let seq = 1; seq <= SPOOL_BATCHES; seq++) {
    const rejected = await spool.append([
      { stream: 'telemetry', seq, ts: Date.now(), flags: FLAG_DEFLATE, data: payload },
    ]);
    if (rejected.length > 0) throw new Error(`spool rejected seq ${seq}`);
  }
  const write = SPOOL_BATCHES / ((performance.now() - t0) / 1000);
  const bytes = spool.bytes();

  t0 = performance.now();
  let after = 0;
  let replayed = 0;
  for (;;) {
    const records = await spool.read(after, 8);
    if (records.length === 0) break;
    for (const r of records) {
      spool.markSending(r.stream, r.seq);
      spool.ack(r.stream, r.seq);
      after = r.seq;
      replayed++;
    }
  }
  const replay = replayed / ((performance.now() - t0) / 1000);
  if (replayed !== SPOOL_BATCHES || !spool.isEmpty())
    throw new Error(`replayed ${replayed} of ${SPOOL_BATCHES}`);
  await spool.close();

  // The floor: the same bytes with one write and one fdatasync per record, nothing else.
  const file = await open(join(dir, 'raw.bin'), 'w');
  t0 = performance.now();
  for (let i = 0; i < SPOOL_BATCHES; i++) {
    await file.write(payload);
    await file.datasync();
  }
  const raw = SPOOL_BATCHES / ((performance.now() - t0) / 1000);
  await file.close();
  rmSync(dir, { recursive: true, force: true });
  return { write, replay, raw, bytes };
}

async function spoolBench(series) {
  // What the outbox spools: a minute's batch with its schema inline (self-contained for replay).
  const samples = Array.from({ length: SAMPLES }, (_, i) => ({ ts: i * 10_000, series }));
  const [m] = buildTelemetry(samples, () => 1, { compressAbove: 1024 });
  if (m.contentType !== CONTENT_TYPE_DEFLATE) throw new Error('expected a deflated payload');
  const runs = [];
  for (let r = 0; r < RUNS; r++) runs.push(await spoolRun(m.body));
  const med = (k) => median(runs.map((x) => x[k]));
  console.log(
    `\n(3) spool (edge/mqtt/spool directly), ${SPOOL_BATCHES} messages of ${m.body.length} bytes, ` +
      `fsync per batch of one, ${RUNS} runs, median; tmpdir ${tmpdir()}\n`,
  );
  table(
    [
      'spool write msgs/s',
      'spool replay msgs/s',
      'raw write+fdatasync msgs/s',
      'write ratio vs raw',
      'spool bytes on disk',
    ],
    [
      [
        Math.round(med('write')),
        Math.round(med('replay')),
        Math.round(med('raw')),
        (med('write') / med('raw')).toFixed(2),
        med('bytes'),
      ],
    ],
  );
}

// ---------------------------------------------------------------------------------------------
// (4) a fleet that outgrows one gateway (issue 21): FLEET devices (1 GPU each, the series of a real
// `gpulse simulate --profile jetson-orin`, one batch a minute) through one Mosquitto to three
// gateways in one share group, against one gateway serving the whole fleet alone (the peer), in
// the same run. A fresh Mosquitto: the retained messages of (1) and (2) stay out of it.

/** The series of one sample of a real Jetson agent (simulated tegrastats), once its set settled. */
async function jetsonSeries(broker) {
  const schemas = new Map();
  const telemetry = [];
  const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
  cleanups.push(() => sub.endAsync(true));
  sub.on('message', (topic, payload, packet) => {
    if (payload.length === 0) return;
    const json = JSON.parse(decodeBody(payload, packet.properties?.contentType, 64 << 20));
    if (topic.endsWith('/schema')) for (const s of json.schemas) schemas.set(s.id, s);
    else {
      const t = parseTelemetry(json);
      if (t?.schema) schemas.set(t.schema.id, t.schema);
      if (t) telemetry.push(t);
    }
  });
  await sub.subscribeAsync(
    ['gpulse/v1/capture/jetson/telemetry', 'gpulse/v1/capture/jetson/schema'],
    {
      qos: 1,
    },
  );
  const agent = track(
    start(
      process.execPath,
      [
        main,
        'simulate',
        '--profile',
        'jetson-orin',
        '--listen',
        `127.0.0.1:${await freePort()}`,
        '--mqtt-url',
        broker.url,
        '--site',
        'capture',
        '--node',
        'jetson',
        '--mqtt-interval',
        '1s',
        '--mqtt-flush',
        '3s',
        '--mqtt-spool-dir',
        tempDir('gpulse-bench-spool-'),
      ],
      { GPULSE_LOG_LEVEL: 'warn', GPULSE_LOG_FORMAT: 'json' },
    ),
  );
  // The third batch: series that need two samples (CPU utilization) are in by then.
  await waitFor(
    () => {
      if (agent.exitCode !== null) throw new Error(`jetson agent exited: ${agent.stderrTail()}`);
      return (
        telemetry.length >= 3 && schemas.has(telemetrySchemaId(telemetry[telemetry.length - 1]))
      );
    },
    120_000,
    'three batches of the Jetson agent',
  );
  await stopChild(agent);
  await sub.endAsync(true);
  const last = telemetry[telemetry.length - 1];
  return expandTelemetry(last, schemas.get(telemetrySchemaId(last))).slice(-1)[0].series;
}

/** Counts of a scrape: per device, whether it shows relayed series and its device_up value. */
function fleetView(text, family) {
  const relayed = new Set();
  const up = new Map();
  const upRe = /^gpulse_fleet_device_up\{site="fleet",node="([^"]+)"\} (\d)$/gm;
  for (const m of text.matchAll(upRe)) up.set(m[1], m[2]);
  const seriesRe = new RegExp(`^${family}\\{site="fleet",node="([^"]+)"`, 'gm');
  for (const m of text.matchAll(seriesRe)) relayed.add(m[1]);
  return { relayed, up };
}

/**
 * The simulated fleet: every device sends its batch (values only, as after its first minute) and
 * refreshes its retained status once per interval, the devices spread evenly over the interval as
 * real ones are. Payloads are built from a few variants per round (one schema for all: the same
 * series set), so the publisher's CPU stays small next to the gateways'.
 */
function runFleet(clients, nodes, series, intervalMs) {
  const rand = rng(7);
  const t0 = Date.now();
  let sent = 0;
  let variants = [];
  let timer;
  const lastSent = new Float64Array(nodes.length);
  const variantsOf = () =>
    Array.from({ length: 16 }, () => {
      const ts0 = Date.now() - (SAMPLES - 1) * 10_000;
      const samples = Array.from({ length: SAMPLES }, (_, i) => ({
        ts: ts0 + i * 10_000,
        series: deviceSeries(series, rand),
      }));
      return buildTelemetry(samples, () => sent + 1, { compressAbove: 1024 })[0].compact;
    });
  const tick = () => {
    const due = Math.floor(((Date.now() - t0) / intervalMs) * nodes.length);
    for (; sent < due; sent++) {
      const i = sent % nodes.length;
      if (i === 0) variants = variantsOf();
      const client = clients[i % clients.length];
      const node = nodes[i];
      const v = variants[i % variants.length];
      const status = statusJson({ state: 'online', ts: Date.now(), session: 1, version: '0.1.0' });
      client
        .publishAsync(`gpulse/v1/fleet/${node}/status`, status, { qos: 1, retain: true })
        .catch(() => undefined);
      client
        .publishAsync(`gpulse/v1/fleet/${node}/telemetry`, v.body, {
          qos: 1,
          properties: { contentType: v.contentType },
        })
        .catch(() => undefined);
      lastSent[i] = Date.now();
    }
    timer = setTimeout(tick, 100);
  };
  tick();
  return {
    /** Full rounds sent so far. */
    rounds: () => sent / nodes.length,
    stop: () => clearTimeout(timer),
  };
}

async function fleetGroup(series) {
  const broker = await startMosquitto();
  const intervalMs = FLEET_INTERVAL_S * 1000;
  const nodes = Array.from({ length: FLEET }, (_, i) => `jet-${String(i).padStart(5, '0')}`);
  const family = `gpulse_${Object.keys(series.find((g) => 'gpu' in g.labels)?.metrics ?? { gpu_utilization_ratio: 0 })[0]}`;
  const clients = [];
  for (let i = 0; i < GENERATOR_CLIENTS; i++) {
    const client = await mqtt.connectAsync(broker.url, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      clientId: `bench-fleet-${i}`,
    });
    cleanups.push(() => client.endAsync(true));
    clients.push(client);
  }
  // Retained first, as each agent publishes after it connects: its status and its schema.
  const [template] = buildTelemetry([{ ts: Date.now(), series }], () => 1, { compressAbove: 1024 });
  const schema = buildSchema([template.schema], Date.now(), 1024);
  const retained = [];
  for (const node of nodes) {
    const status = statusJson({ state: 'online', ts: Date.now(), session: 1, version: '0.1.0' });
    retained.push([
      `gpulse/v1/fleet/${node}/status`,
      Buffer.from(status),
      'application/json',
      true,
    ]);
    retained.push([`gpulse/v1/fleet/${node}/schema`, schema.body, schema.contentType, true]);
  }
  await publishAll(clients, retained);
  const retainedBytes = retained.reduce((n, [, body]) => n + body.length, 0);

  // The peer of the retained read: mosquitto_sub getting the same retained messages.
  const subT0 = performance.now();
  const sub = spawn(
    'mosquitto_sub',
    [
      '-h',
      '127.0.0.1',
      '-p',
      String(broker.port),
      '-V',
      'mqttv5',
      '-q',
      '1',
      '-t',
      'gpulse/v1/+/+/status',
      '-t',
      'gpulse/v1/+/+/schema',
      '-F',
      '%t',
      '-C',
      String(2 * FLEET),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  track(sub);
  sub.stdout.resume();
  await new Promise((resolve) => sub.once('exit', resolve));
  const subRetainedS = (performance.now() - subT0) / 1000;

  /** Starts a gateway and measures its read of the retained status and schemas. */
  const startGateway = async (name, args) => {
    const port = await freePort();
    const t0 = performance.now();
    const child = track(
      start(launcher, ['--mqtt-url', broker.url, '--listen', `127.0.0.1:${port}`, ...args], {
        GPULSE_LOG_LEVEL: 'warn',
        GPULSE_LOG_FORMAT: 'json',
      }),
    );
    const url = `http://127.0.0.1:${port}`;
    const gw = { name, child, url, port };
    gw.metrics = async () => {
      const s = performance.now();
      const text = await (await fetch(`${url}/metrics`)).text();
      return { text, seconds: (performance.now() - s) / 1000 };
    };
    gw.counter = (text, series) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line ? Number(line.slice(series.length + 1)) : 0;
    };
    await waitFor(
      async () => {
        if (child.exitCode !== null)
          throw new Error(`gateway ${name} exited: ${child.stderrTail()}`);
        const state = await (await fetch(`${url}/readyz`)).json();
        if (state.devices < FLEET || state.queued > 0) return false;
        const { text } = await gw.metrics();
        const schemas =
          gw.counter(text, 'gpulse_fleet_messages_total{stream="schema",result="applied"}') +
          gw.counter(text, 'gpulse_fleet_messages_total{stream="schema",result="kept"}');
        return schemas >= FLEET;
      },
      300_000,
      `gateway ${name} to read the retained status and schemas`,
    );
    gw.retained = {
      seconds: (performance.now() - t0) / 1000,
      cpu: cpuSeconds(child.pid),
      rss: rssBytes(child.pid),
    };
    return gw;
  };

  /** Peak RSS (VmHWM) of a pid. */
  const peakRss = (pid) =>
    Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;

  /** Scrape time (median of 3) and the fleet view of each live gateway. */
  // Timed with curl asking for gzip, as Prometheus does (this process is busy being the fleet).
  const curlScrape = (gw) =>
    new Promise((resolve, reject) => {
      const curl = spawn(
        'curl',
        [
          '-s',
          '-o',
          '/dev/null',
          '-H',
          'Accept-Encoding: gzip',
          '-w',
          '%{time_total} %{size_download}',
          `${gw.url}/metrics`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      curl.stdout.on('data', (d) => (out += d));
      curl.once('exit', (code) => {
        const [seconds, bytes] = out.trim().split(' ').map(Number);
        if (code === 0) resolve({ seconds, bytes });
        else reject(new Error(`curl exited ${code}`));
      });
    });
  const observe = async (gateways) => {
    const out = [];
    for (const gw of gateways) {
      const times = [];
      let gzipBytes = 0;
      for (let k = 0; k < 3; k++) {
        const r = await curlScrape(gw);
        times.push(r.seconds);
        gzipBytes = r.bytes;
      }
      const { text } = await gw.metrics();
      out.push({
        gw,
        scrapeS: median(times),
        bytes: text.length,
        gzipBytes,
        ...fleetView(text, family),
      });
    }
    return out;
  };

  /** Devices shown by none, one, or several of the views. */
  const coverage = (views) => {
    let once = 0;
    let twice = 0;
    let missing = 0;
    let down = 0;
    for (const node of nodes) {
      const n = views.filter((v) => v.relayed.has(node)).length;
      const u = views.filter((v) => v.up.has(node)).length;
      if (n === 1 && u === 1) once++;
      else if (n > 1 || u > 1) twice++;
      else missing++;
      for (const v of views) if (v.up.get(node) === '0') down++;
    }
    return { once, twice, missing, down };
  };

  const waitRounds = async (fleet, n) => {
    const target = Math.floor(fleet.rounds()) + n;
    await waitFor(
      () => fleet.rounds() >= target,
      (n + 1) * intervalMs + 60_000,
      `${n} batch rounds`,
    );
  };

  // The peer: one gateway serving the whole fleet alone.
  const alone = await startGateway('alone', []);
  let fleet = runFleet(clients, nodes, series, intervalMs);
  await waitRounds(fleet, 2);
  const [aloneView] = await observe([alone]);
  const alonePeak = peakRss(alone.child.pid);
  fleet.stop();
  await stopChild(alone.child);

  // Three gateways in one share group.
  const group = [];
  for (const name of ['a', 'b', 'c'])
    group.push(
      await startGateway(name, [
        '--share-group',
        'bench',
        '--gateway-client-id',
        `bench-gw-${name}`,
      ]),
    );
  fleet = runFleet(clients, nodes, series, intervalMs);
  await waitRounds(fleet, 2);
  const before = await observe(group);
  const beforeCoverage = coverage(before);
  const peaks = group.map((gw) => peakRss(gw.child.pid));
  const rss = group.map((gw) => rssBytes(gw.child.pid));

  // Failover: one gateway SIGKILLed; its devices must show on the others within two intervals,
  // and none of them shown down meanwhile.
  const victim = before[0];
  const moved = [...victim.relayed];
  const survivors = group.filter((gw) => gw !== victim.gw);
  victim.gw.child.kill('SIGKILL');
  const killedAt = performance.now();
  let failoverS = NaN;
  let downSeen = 0;
  const deadline = killedAt + 3 * intervalMs + 60_000;
  while (performance.now() < deadline) {
    await sleep(2000);
    const views = [];
    for (const gw of survivors) views.push(fleetView((await gw.metrics()).text, family));
    for (const v of views) for (const u of v.up.values()) if (u === '0') downSeen++;
    if (moved.every((node) => views.some((v) => v.relayed.has(node)))) {
      failoverS = (performance.now() - killedAt) / 1000;
      break;
    }
  }
  await waitRounds(fleet, 1);
  const after = await observe(survivors);
  const afterCoverage = coverage(after);
  fleet.stop();
  for (const gw of survivors) await stopChild(gw.child);
  for (const c of clients.splice(0)) await c.endAsync(true);
  await stopChild(broker.child);

  const mb = (b) => (b / 1e6).toFixed(0);
  const goal = (ok) => (ok ? 'yes' : 'NO');
  console.log(
    `\n(4) a fleet that outgrows one gateway: ${FLEET} simulated devices (1 GPU, the series of a real \`gpulse simulate --profile jetson-orin\`,` +
      ` ${series.reduce((n, g) => n + Object.keys(g.metrics).length, 0)} series), one batch of ${SAMPLES} samples per ${FLEET_INTERVAL_S} s and the retained status refreshed as often,`,
  );
  console.log(
    `    through one Mosquitto; the peer is one gateway serving the fleet alone, in the same run. Retained read at start: ${2 * FLEET}` +
      ` messages (status + schema), ${mb(retainedBytes)} MB; mosquitto_sub takes them in ${subRetainedS.toFixed(1)} s\n`,
  );
  table(
    [
      'gateway',
      'devices served',
      'retained read s (mosquitto_sub)',
      'CPU s at start',
      'RSS MB after retained',
      'RSS MB / peak (goal ≤ 400)',
      'scrape s (goal ≤ 1)',
      'scrape MB (gzip)',
    ],
    [
      [
        'alone (peer)',
        aloneView.relayed.size,
        `${alone.retained.seconds.toFixed(1)} (${subRetainedS.toFixed(1)})`,
        alone.retained.cpu.toFixed(1),
        mb(alone.retained.rss),
        `${mb(alonePeak)} / ${mb(alonePeak)}: ${goal(alonePeak <= 400e6)}`,
        `${aloneView.scrapeS.toFixed(2)}: ${goal(aloneView.scrapeS <= 1)}`,
        `${mb(aloneView.bytes)} (${(aloneView.gzipBytes / 1e6).toFixed(1)})`,
      ],
      ...before.map((v, i) => [
        `group ${v.gw.name}${v === victim ? ' (killed)' : ''}`,
        v.relayed.size,
        `${v.gw.retained.seconds.toFixed(1)} (${subRetainedS.toFixed(1)})`,
        v.gw.retained.cpu.toFixed(1),
        mb(v.gw.retained.rss),
        `${mb(rss[i])} / ${mb(peaks[i])}: ${goal(peaks[i] <= 400e6)}`,
        `${v.scrapeS.toFixed(2)}: ${goal(v.scrapeS <= 1)}`,
        `${mb(v.bytes)} (${(v.gzipBytes / 1e6).toFixed(1)})`,
      ]),
    ],
  );
  const cov = (c) => `${c.once} once, ${c.twice} twice, ${c.missing} missing, ${c.down} shown down`;
  console.log(
    `every device on exactly one gateway (goal ${FLEET} once): before the kill ${cov(beforeCoverage)}: ${goal(beforeCoverage.once === FLEET)};` +
      ` after ${cov(afterCoverage)}: ${goal(afterCoverage.once === FLEET && afterCoverage.down === 0)}`,
  );
  console.log(
    `failover: the ${moved.length} devices of the SIGKILLed gateway shown by the others after ${failoverS.toFixed(0)} s` +
      ` (goal ≤ ${2 * FLEET_INTERVAL_S} s: ${goal(failoverS <= 2 * FLEET_INTERVAL_S)}), devices shown down meanwhile: ${downSeen} (goal 0: ${goal(downSeen === 0)})`,
  );
}

try {
  const broker = await startMosquitto();
  // BENCH_SERIES_FILE: reuse the 1-GPU series a previous run saved there and skip (1).
  const seriesFile = process.env.BENCH_SERIES_FILE;
  if (PARTS.has('1') || PARTS.has('2') || PARTS.has('3')) {
    const series =
      seriesFile && existsSync(seriesFile)
        ? JSON.parse(readFileSync(seriesFile, 'utf8'))
        : await publisherBytes(broker);
    if (seriesFile) writeFileSync(seriesFile, JSON.stringify(series));
    if (PARTS.has('2')) await gatewayIngest(broker, series);
    if (PARTS.has('3')) await spoolBench(series);
  }
  if (PARTS.has('4')) {
    // BENCH_JETSON_SERIES_FILE: reuse the Jetson series a previous run saved there.
    const jetsonFile = process.env.BENCH_JETSON_SERIES_FILE;
    const jetson =
      jetsonFile && existsSync(jetsonFile)
        ? JSON.parse(readFileSync(jetsonFile, 'utf8'))
        : await jetsonSeries(broker);
    if (jetsonFile) writeFileSync(jetsonFile, JSON.stringify(jetson));
    await stopChild(broker.child);
    await fleetGroup(jetson);
  }
} finally {
  await cleanup();
}
