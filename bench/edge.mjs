// npm run bench:edge — MQTT edge delivery (issue 5), against a private Mosquitto on a free loopback port:
// (1) bytes per minute per GPU the real agent sends at a 10 s sample interval, batched into one
//     message per 60 s flush (1-GPU and 8-GPU profiles),
// (2) fleet gateway ingest messages/s for 1,000 simulated devices against mosquitto_sub receiving
//     the same stream in the same run, (3) spool write and replay messages/s (edge/spool directly)
//     against a plain write+fdatasync loop on the same disk.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import pino from 'pino';
import { cpuSeconds, freePort, start, waitFor, median, rssBytes, table } from './lib.mjs';
import { systemClock } from '../dist/agent/clock.js';
import { Spool } from '../dist/edge/spool/spool.js';
import { FLAG_DEFLATE } from '../dist/edge/spool/record-format.js';
import {
  buildSchema,
  buildTelemetry,
  CONTENT_TYPE_DEFLATE,
  decodeBody,
  expandTelemetry,
  parseTelemetry,
} from '../dist/exporters/mqtt/payloads.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const WINDOW_S = Number(process.env.BENCH_WINDOW_SECONDS ?? 240);
const SAMPLES = 6; // samples per message: 60 s flush / 10 s interval
const DEVICES = Number(process.env.BENCH_DEVICES ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const SPOOL_BATCHES = Number(process.env.BENCH_SPOOL_BATCHES ?? 1000);
const GENERATOR_CLIENTS = 4;
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

/** Publishes [topic, body, contentType] triples over QoS 1, GENERATOR_CLIENTS connections, 20 in flight each. */
async function publishAll(clients, messages) {
  await Promise.all(
    clients.map(async (client, c) => {
      const mine = messages.filter((_, i) => i % clients.length === c);
      let next = 0;
      const worker = async () => {
        while (next < mine.length) {
          const [topic, body, contentType] = mine[next++];
          await client.publishAsync(topic, body, { qos: 1, properties: { contentType } });
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
    `\n(3) spool (edge/spool directly), ${SPOOL_BATCHES} messages of ${m.body.length} bytes, ` +
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

try {
  const broker = await startMosquitto();
  // BENCH_SERIES_FILE: reuse the 1-GPU series a previous run saved there and skip (1).
  const seriesFile = process.env.BENCH_SERIES_FILE;
  const series =
    seriesFile && existsSync(seriesFile)
      ? JSON.parse(readFileSync(seriesFile, 'utf8'))
      : await publisherBytes(broker);
  if (seriesFile) writeFileSync(seriesFile, JSON.stringify(series));
  await gatewayIngest(broker, series);
  await spoolBench(series);
} finally {
  await cleanup();
}
