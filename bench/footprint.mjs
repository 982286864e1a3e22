// npm run bench:footprint — resident memory and CPU of the agent as an edge device runs it: the edge
// preset under the Node flags of scripts/gpulse-edge, a simulated Jetson AGX Orin sampled every
// 5 s, /metrics scraped every 15 s, for 5 minutes. Measured as the foundation's bench measures
// (the agent's own /proc/<pid>/stat ticks and VmRSS, median of 1 s samples), against the same
// agent with Node's defaults and the default preset in the same run, then once more inside a
// cgroup limited like `docker run --memory=512m --cpus=0.5`. With the MQTT publisher in the
// build (`mqtt` settings), a private Mosquitto receives the telemetry.
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cpuSeconds,
  freePort,
  median,
  rssBytes,
  start,
  table,
  waitFor,
  startMosquitto,
} from './lib.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 300);
const INTERVAL = process.env.BENCH_INTERVAL ?? '5s';
const PROFILE = process.env.BENCH_PROFILE ?? 'jetson-orin';
const BUDGET = { rssBytes: 64e6, cpuShare: 0.02 };
const EXTRA_CA = process.env.NODE_EXTRA_CA_CERTS;
const root = new URL('..', import.meta.url).pathname;
const main = join(root, 'dist/agent/main.js');
const launcher = join(root, 'scripts/gpulse-edge');

/** The Node flags of the edge launcher, read from its exec line so bench and launcher agree. */
function edgeNodeFlags() {
  const line = readFileSync(launcher, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('exec node '));
  if (!line) throw new Error(`${launcher} has no "exec node ..." line`);
  // Node's own flags: the words before the script path (those after it are gpulse's).
  const words = line.slice('exec node '.length).split(' ');
  const script = words.findIndex((w) => !w.startsWith('--'));
  return script < 0 ? words : words.slice(0, script);
}

/** Whether this build has the MQTT publisher (the edge branch's `mqtt` settings). */
function hasMqtt() {
  return execFileSync(process.execPath, [main, 'run', '--help'], { encoding: 'utf8' }).includes(
    '--mqtt-url',
  );
}

const work = mkdtempSync(join(tmpdir(), 'gpulse-bench-edge-'));

async function startBroker() {
  return startMosquitto(work);
}

// A cgroup v1 child of our own memory cgroup (never outside it) and a cpu cgroup, limited as the
// seed guide's edge container: 512 MiB, half a core.
function makeCgroup(name) {
  const own = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .find((p) => p[1] === 'memory')?.[2];
  const memory = `/sys/fs/cgroup/memory${own ?? ''}/${name}`;
  const cpu = `/sys/fs/cgroup/cpu/${name}`;
  try {
    mkdirSync(memory);
    mkdirSync(cpu);
    writeFileSync(join(memory, 'memory.limit_in_bytes'), String(512 * 1024 * 1024));
    writeFileSync(join(cpu, 'cpu.cfs_period_us'), '100000');
    writeFileSync(join(cpu, 'cpu.cfs_quota_us'), '50000');
  } catch (err) {
    for (const d of [memory, cpu]) if (existsSync(d)) rmdirSync(d);
    console.log(`(no cgroup run: ${err.message}; needs root and cgroup v1 memory/cpu controllers)`);
    return undefined;
  }
  return {
    enter(pid) {
      writeFileSync(join(memory, 'cgroup.procs'), String(pid));
      writeFileSync(join(cpu, 'cgroup.procs'), String(pid));
    },
    maxUsage: () => Number(readFileSync(join(memory, 'memory.max_usage_in_bytes'), 'utf8')),
    throttled: () =>
      Number(/nr_throttled (\d+)/.exec(readFileSync(join(cpu, 'cpu.stat'), 'utf8'))?.[1] ?? 0),
    remove() {
      for (const d of [memory, cpu]) {
        try {
          rmdirSync(d);
        } catch {
          // still has tasks; they are gone a moment later
        }
      }
    },
  };
}

/** Starts one agent configuration, waits for the Jetson's series, measures it for SECONDS. */
async function measure(label, nodeFlags, preset, mqtt, cgroup, withExtraCa = false) {
  const port = await freePort();
  const args = [
    ...nodeFlags,
    main,
    'simulate',
    '--profile',
    PROFILE,
    '--listen',
    `127.0.0.1:${port}`,
    '--interval',
    INTERVAL,
    '--tegrastats-interval',
    INTERVAL,
    ...(preset ? ['--preset', preset] : []),
    ...(mqtt
      ? [
          '--mqtt-url',
          `mqtt://127.0.0.1:${mqtt.port}`,
          '--mqtt-interval',
          INTERVAL,
          '--node',
          `bench-${port}`,
        ]
      : []),
  ];
  const env = { GPULSE_LOG_LEVEL: 'warn', GPULSE_LOG_FORMAT: 'json' };
  // Node reads NODE_EXTRA_CA_CERTS at startup and keeps the parsed certificates: a sandbox that
  // points it at the whole system bundle adds ~1 MB to the median and ~3 MB to the peak. A device
  // has no reason to set it (gpulse takes its broker's CA as mqtt.tls.ca), so the measured agents
  // run without it; the extra row below shows what it costs where it is set.
  if (!withExtraCa) env.NODE_EXTRA_CA_CERTS = undefined;
  if (mqtt) env.GPULSE_MQTT_SPOOL_DIR = join(work, `spool-${port}`);
  const agent = start(process.execPath, args, env);
  if (cgroup) cgroup.enter(agent.pid);
  const url = `http://127.0.0.1:${port}/metrics`;
  try {
    await waitFor(
      async () => {
        if (agent.exitCode !== null) throw new Error(`${label}: the agent exited`);
        return (await (await fetch(url)).text()).includes('gpulse_gpu_info{');
      },
      90_000,
      `${label}: the Jetson's series`,
    );
    const cpu0 = cpuSeconds(agent.pid);
    const rss = [];
    const t0 = Date.now();
    let lastScrape = 0;
    while (Date.now() - t0 < SECONDS * 1000) {
      if (Date.now() - lastScrape >= 15_000) {
        lastScrape = Date.now();
        await fetch(url).then((r) => r.text());
      }
      rss.push(rssBytes(agent.pid));
      await new Promise((r) => setTimeout(r, 1000));
    }
    const elapsed = (Date.now() - t0) / 1000;
    return {
      label,
      cpuShare: (cpuSeconds(agent.pid) - cpu0) / elapsed,
      rssMedian: median(rss),
      rssMax: Math.max(...rss),
      cgroupMax: cgroup?.maxUsage(),
      throttled: cgroup?.throttled(),
    };
  } catch (err) {
    throw new Error(`${err.message}\n${agent.stderrTail()}`, { cause: err });
  } finally {
    // An agent that already exited (a refused flag, a crash) has no exit event left to wait for.
    if (agent.exitCode === null && agent.signalCode === null) {
      const exited = new Promise((r) => agent.once('exit', r));
      agent.kill('SIGTERM');
      await exited;
    }
  }
}

const mb = (b) => (b / 1e6).toFixed(1);
const mib = (b) => (b / 2 ** 20).toFixed(1);

const flags = edgeNodeFlags();
const mqtt = hasMqtt() ? await startBroker() : undefined;
const results = [];
try {
  results.push(await measure('edge (launcher flags, --preset edge)', flags, 'edge', mqtt));
  results.push(await measure('default (no flags, default preset)', [], undefined, mqtt));
  if (EXTRA_CA) {
    results.push(
      await measure(`edge, NODE_EXTRA_CA_CERTS=${EXTRA_CA}`, flags, 'edge', mqtt, undefined, true),
    );
  }
  const cgroup = makeCgroup(`gpulse-bench-edge-${process.pid}`);
  if (cgroup) {
    try {
      results.push(await measure('edge in cgroup 512 MiB / 0.5 CPU', flags, 'edge', mqtt, cgroup));
    } finally {
      cgroup.remove();
    }
  }
} finally {
  mqtt?.broker.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}

console.log(
  `\nagent process, simulated ${PROFILE}, ${INTERVAL} interval, ${SECONDS} s each, /metrics every 15 s, ` +
    `MQTT publisher ${mqtt ? 'on (private Mosquitto)' : 'not in this build'}`,
);
console.log(`edge Node flags: ${flags.join(' ')}\n`);
table(
  [
    'configuration',
    'CPU % of one core',
    'RSS median MB',
    'RSS median MiB',
    'RSS max MB',
    'cgroup max MB (with simulators)',
    'max ≤ 64 MB, CPU ≤ 2 %',
  ],
  results.map((r) => [
    r.label,
    (r.cpuShare * 100).toFixed(2),
    mb(r.rssMedian),
    mib(r.rssMedian),
    mb(r.rssMax),
    r.cgroupMax === undefined ? '-' : `${mb(r.cgroupMax)} (throttled ${r.throttled}×)`,
    r.rssMax <= BUDGET.rssBytes && r.cpuShare <= BUDGET.cpuShare ? 'yes' : 'no',
  ]),
);
const edge = results[0];
const peer = results[1];
if (edge && peer) {
  console.log(
    `\nedge / default: RSS ×${(edge.rssMedian / peer.rssMedian).toFixed(2)}, CPU ×${(edge.cpuShare / peer.cpuShare).toFixed(2)}`,
  );
}
