// npm run bench:kubernetes — GPU process attribution on a Kubernetes node running containerd:
// 200 real processes in 100 host-network pods of a private containerd (made through the CRI API
// as a kubelet makes them). Part A: the CPU one attribution cycle costs in-process (PIDs to
// container ids from /proc, the cri collector, the per-process series with pod labels), goal
// ≤ 20 ms. Part B: the built `gpulse simulate` reporting the 200 PIDs as GPU processes: the CRI
// runtime calls it makes per minute once every process is named (goal: none), and whether every
// process series carries its own pod and namespace. Everything is torn down, also on Ctrl-C.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startContainerd } from '../test/helpers/containerd-daemon.mjs';
import { pollUntil } from '../test/helpers/dockerd-daemon.mjs';
import { cpuSeconds, freePort, median, start, table, waitFor } from './lib.mjs';

const PODS = Number(process.env.BENCH_PODS ?? 100);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const CYCLES = Number(process.env.BENCH_CYCLES ?? 100);
const STEADY_S = Number(process.env.BENCH_STEADY_S ?? 60);
/** Pods made at once (RunPodSandbox and a container each; more only queue on 2 cores). */
const PARALLEL = 4;
const GPUS = 8;
const GOAL_CYCLE_MS = 20;
const MIB = 1024 * 1024;

const dist = new URL('../dist/', import.meta.url).pathname;
const { ProcessContainers, attributeProcesses } = await import(
  join(dist, 'agent/attribution/process-containers.js')
);
const { GpuContainerLookup, gpuProcessesDeriver } = await import(
  join(dist, 'agent/attribution/gpu-processes.js')
);
const { createCriCollector } = await import(join(dist, 'collectors/cri/cri-collector.js'));
const { criConfigSchema } = await import(join(dist, 'collectors/cri/config.js'));
const { systemClock } = await import(join(dist, 'agent/core/clock.js'));
const { which } = await import(join(dist, 'agent/doctor/settings.js'));

/** A program on PATH (or in an sbin folder). */
function program(bin) {
  const path = which(bin, { PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` });
  if (path === undefined)
    throw new Error(`${bin} not found (Debian: apt-get install containerd runc busybox-static)`);
  return path;
}

const log = (msg) => process.stderr.write(`${msg}\n`);

// ---- teardown, whatever happens ----------------------------------------------------------------
let containerdStarting;
let agent;
let cleaning;
/** Set by Ctrl-C: the steps still running give up instead of measuring a node being torn down. */
let stopping = false;
function giveUpIfStopping() {
  if (stopping) throw new Error('stopped');
}
function cleanup() {
  cleaning ??= (async () => {
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      const exited = new Promise((resolve) => agent.once('exit', resolve));
      agent.kill('SIGTERM');
      const killer = setTimeout(() => agent.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    const containerd = await containerdStarting?.catch(() => undefined);
    if (containerd) {
      log('tearing down: pods, containerd, mounts, temp dir');
      await containerd.stop();
    }
  })();
  return cleaning;
}
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
]) {
  process.once(signal, () => {
    log(`${signal}: stopping`);
    stopping = true;
    void cleanup().finally(() => process.exit(code));
  });
}

// ---- Prometheus text ---------------------------------------------------------------------------
/** Series of one family in a /metrics body: [{ labels, value }]. */
function series(body, name) {
  const out = [];
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const close = line.lastIndexOf('}');
    const labels = {};
    if (line[name.length] === '{') {
      const text = line.slice(name.length + 1, close);
      for (const m of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
        labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      }
    }
    const rest = line.slice(close >= 0 ? close + 1 : name.length).trim();
    out.push({ labels, value: Number(rest.split(' ')[0]) });
  }
  return out;
}

// ---- the node: containerd, 100 pods, 200 processes ---------------------------------------------
/** The pods' processes by pid: the container's first process and its child (two per pod). */
async function makePods(containerd) {
  const procs = [];
  const t0 = Date.now();
  for (let i = 0; i < PODS; i += PARALLEL) {
    giveUpIfStopping();
    await Promise.all(
      Array.from({ length: Math.min(PARALLEL, PODS - i) }, async (_, k) => {
        const n = i + k;
        const pod = {
          name: `trainer-${n}`,
          namespace: `team-${n}`,
          uid: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
        };
        const sandbox = await containerd.runPod(pod);
        const c = await containerd.startContainer(sandbox, pod, 'worker', [
          '/bin/sh',
          '-c',
          'sleep 100000 & exec sleep 100000',
        ]);
        let child;
        await pollUntil(`the second process of ${pod.name}`, 30_000, () => {
          const text = readFileSync(`/proc/${c.pid}/task/${c.pid}/children`, 'utf8').trim();
          child = Number(text.split(' ')[0]) || undefined;
          // The first process has exec'd `sleep` (no longer `sh`) once its child exists.
          return child !== undefined && readFileSync(`/proc/${c.pid}/comm`, 'utf8') === 'sleep\n';
        });
        for (const pid of [c.pid, child]) procs.push({ pid, containerId: c.id, pod });
      }),
    );
    const done = Math.min(i + PARALLEL, PODS);
    if (done % 10 === 0 || done === PODS) {
      log(`  ${done}/${PODS} pods (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    }
  }
  return { procs, seconds: (Date.now() - t0) / 1000 };
}

// ---- Part A: one attribution cycle, in-process -------------------------------------------------
let snapshotVersion = 0;
/** A snapshot of collector outputs, as the state store publishes it (test/helpers/snapshots.ts). */
function snapshotOf(outputs) {
  const at = Date.now();
  return {
    version: ++snapshotVersion,
    takenAt: at,
    collectors: new Map(
      Object.entries(outputs)
        .filter(([, output]) => output !== undefined)
        .map(([collector, output]) => [
          collector,
          {
            collector,
            status: 'ok',
            updatedAt: at,
            lastSuccessAt: at,
            output,
            errors: new Map(),
            health: [],
          },
        ]),
    ),
    derived: [],
  };
}

const cpuMs = (since) => {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
};

/**
 * One run: a fresh resolver, cri collector and lookup (as an agent start has), a cold cycle, then
 * CYCLES steady ones. A cycle is what a GPU sample costs for these processes: the driver's list
 * (no container ids) gets them from /proc, the cri collector names what is new (the agent's
 * GpuContainerLookup over the snapshot tells it), and the deriver writes the per-process and
 * per-container series from the snapshot with the cri collector's `containers` facts.
 */
async function attributionRun(socket, procs) {
  const containers = new ProcessContainers({ procRoot: '/proc', now: () => systemClock.now() });
  const lookup = new GpuContainerLookup();
  let snapshot = snapshotOf({});
  lookup.bind({ current: () => snapshot, onChange: () => () => undefined });
  const collector = createCriCollector(criConfigSchema.parse({ socket }), {
    clock: systemClock,
    unnamedGpuContainers: lookup.unnamed,
  });
  const ctx = {
    signal: new AbortController().signal,
    log: pino({ level: 'silent' }),
    now: () => systemClock.now(),
  };
  let criOutput;
  const parts = { resolve: 0, cri: 0, derive: 0 };
  let derived;
  const cycle = async (i) => {
    // What nvidia-smi --query-compute-apps gives: PID, GPU, memory (made outside the timing);
    // the container comes from /proc.
    const listed = procs.map((p, k) => ({
      pid: p.pid,
      gpuUuid: `GPU-00000000-0000-0000-0000-00000000000${k % GPUS}`,
      gpuIndex: k % GPUS,
      processName: 'sleep',
      usedMemoryBytes: (1024 + ((i + k) % 64)) * MIB,
      type: 'C',
    }));
    let t = process.cpuUsage();
    const gpuProcesses = attributeProcesses(listed, containers);
    parts.resolve += cpuMs(t);
    t = process.cpuUsage();
    const smi = { samples: [], facts: { gpuProcesses } };
    snapshot = snapshotOf({ 'nvidia-smi': smi, cri: criOutput });
    criOutput = await collector.collect(ctx);
    parts.cri += cpuMs(t);
    t = process.cpuUsage();
    snapshot = snapshotOf({ 'nvidia-smi': smi, cri: criOutput });
    derived = gpuProcessesDeriver.derive(snapshot);
    parts.derive += cpuMs(t);
  };
  try {
    const c0 = process.cpuUsage();
    await cycle(0);
    const cold = cpuMs(c0);
    check(derived.samples, procs, 'the cold cycle');
    const coldParts = { ...parts };
    for (const k of Object.keys(parts)) parts[k] = 0;
    const s0 = process.cpuUsage();
    for (let i = 1; i <= CYCLES; i++) await cycle(i);
    const steady = cpuMs(s0) / CYCLES;
    check(derived.samples, procs, 'the last cycle');
    const calls = criOutput.samples
      .filter((s) => s.desc.name === 'gpulse_cri_requests_total')
      .reduce((sum, s) => sum + s.value, 0);
    for (const k of Object.keys(parts)) parts[k] /= CYCLES;
    return { cold, coldParts, steady, parts, calls };
  } finally {
    await collector.close();
  }
}

/** Throws unless every process has its series, with its own container, pod and namespace. */
function check(samples, procs, when) {
  const right = labelled(
    samples
      .filter((s) => s.desc.name === 'gpulse_gpu_process_memory_used_bytes')
      .map((s) => s.labels),
    procs,
  );
  if (right !== procs.length) {
    throw new Error(`${when}: ${right}/${procs.length} process series carry their pod`);
  }
}

/** How many of the processes have a series labelled with their own container, pod, namespace. */
function labelled(labelSets, procs) {
  const byPid = new Map(labelSets.map((l) => [Number(l.pid), l]));
  return procs.filter((p) => {
    const l = byPid.get(p.pid);
    return (
      l?.container_id === p.containerId &&
      l.pod === p.pod.name &&
      l.namespace === p.pod.namespace &&
      l.container_name === 'worker'
    );
  }).length;
}

// ---- Part B: the built agent, end to end -------------------------------------------------------
async function endToEnd(socket, procs) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const args = [
    join(dist, 'agent/main.js'),
    'simulate',
    '--process-count',
    '0',
    ...procs.flatMap((p, k) => ['--process', `${p.pid}:${k % GPUS}:${1024 + (k % 64)}`]),
    '--cri-socket',
    socket,
    '--docker-mode',
    'off',
    '--listen',
    `127.0.0.1:${port}`,
  ];
  agent = start(process.execPath, args, { GPULSE_LOG_FORMAT: 'json' });
  const metrics = async () => {
    const r = await fetch(`${base}/metrics`);
    if (!r.ok) throw new Error(`/metrics: ${r.status}`);
    return r.text();
  };
  const named = (body) =>
    labelled(
      series(body, 'gpulse_gpu_process_memory_used_bytes').map((s) => s.labels),
      procs,
    );
  const calls = (body) =>
    series(body, 'gpulse_cri_requests_total').reduce((sum, s) => sum + s.value, 0);
  const t0 = Date.now();
  try {
    await waitFor(
      async () => {
        if (agent.exitCode !== null) throw new Error('exited');
        return named(await metrics()) === procs.length;
      },
      120_000,
      `all ${procs.length} process series with their pod`,
    );
  } catch (err) {
    throw new Error(`${err.message}; agent stderr:\n${agent.stderrTail()}`, { cause: err });
  }
  const namedAfter = (Date.now() - t0) / 1000;
  log(
    `  all ${procs.length} processes named after ${namedAfter.toFixed(1)} s; steady ${STEADY_S} s`,
  );
  const first = await metrics();
  const cpu0 = cpuSeconds(agent.pid);
  const w0 = Date.now();
  await new Promise((resolve) => setTimeout(resolve, STEADY_S * 1000));
  const last = await metrics();
  const cpu1 = cpuSeconds(agent.pid);
  const wall = (Date.now() - w0) / 1000;
  return {
    startupCalls: calls(first),
    perMinute: ((calls(last) - calls(first)) * 60) / wall,
    labelled: named(last),
    namedAfter,
    cpuPercent: ((cpu1 - cpu0) / wall) * 100,
  };
}

// ---- main --------------------------------------------------------------------------------------
if (process.getuid?.() !== 0) {
  console.error('bench:kubernetes runs containerd and its containers: run it as root');
  process.exit(1);
}
try {
  program('runc');
  containerdStarting = startContainerd({
    busybox: program('busybox'),
    containerd: program('containerd'),
    ctr: program('ctr'),
  });
  const containerd = await containerdStarting;
  log(`containerd ${containerd.version} at ${containerd.socket}; making ${PODS} pods`);
  const { procs, seconds: podSeconds } = await makePods(containerd);

  log(`part A: ${RUNS} runs × (1 cold + ${CYCLES} steady cycles)`);
  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    giveUpIfStopping();
    runs.push(await attributionRun(containerd.socket, procs));
  }
  log('part B: the built agent');
  giveUpIfStopping();
  const e2e = await endToEnd(containerd.socket, procs);

  const fmt = (x, d = 2) => x.toFixed(d);
  const steady = median(runs.map((r) => r.steady));
  const part = (k) => median(runs.map((r) => r.parts[k]));
  const calls = [...new Set(runs.map((r) => r.calls))].join(', ');
  console.log(
    `\nbench:kubernetes — ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), Node ${process.version}, ` +
      `containerd ${containerd.version}; ${procs.length} processes in ${PODS} host-network pods ` +
      `(made in ${fmt(podSeconds, 0)} s); part A: median of ${RUNS} runs × ${CYCLES} steady cycles\n`,
  );
  table(
    ['measurement', 'measured', 'goal', 'verdict'],
    [
      [
        'A: attribution CPU per steady cycle (ms)',
        fmt(steady),
        `≤ ${GOAL_CYCLE_MS}`,
        steady <= GOAL_CYCLE_MS ? 'pass' : 'FAIL',
      ],
      ['  of which PIDs → container ids (/proc, cached)', fmt(part('resolve')), '', ''],
      ['  of which cri collector collect()', fmt(part('cri')), '', ''],
      ['  of which gpuProcessesDeriver.derive()', fmt(part('derive')), '', ''],
      ['A: first cycle, first run (loads gRPC, reads /proc, lists)', fmt(runs[0].cold), '', ''],
      [
        'A: first cycle, later runs (reads /proc, lists; median)',
        runs.length > 1 ? fmt(median(runs.slice(1).map((r) => r.cold))) : '-',
        '',
        '',
      ],
      [
        '  of which /proc / cri collector / derive',
        runs.length > 1
          ? ['resolve', 'cri', 'derive']
              .map((k) => fmt(median(runs.slice(1).map((r) => r.coldParts[k]))))
              .join(' / ')
          : '-',
        '',
        '',
      ],
      ['A: CRI calls per run (all in the first cycle)', calls, '', ''],
      [
        'B: CRI runtime calls per minute, steady state',
        fmt(e2e.perMinute, 1),
        '0',
        e2e.perMinute === 0 ? 'pass' : 'FAIL',
      ],
      [
        'B: process series with their own pod/namespace',
        `${e2e.labelled}/${procs.length}`,
        `${procs.length}/${procs.length}`,
        e2e.labelled === procs.length ? 'pass' : 'FAIL',
      ],
      ['B: CRI calls until all were named', e2e.startupCalls, '', ''],
      ['B: seconds until all were named', fmt(e2e.namedAfter, 1), '', ''],
      [`B: agent process CPU, steady ${STEADY_S} s (% of a core)`, fmt(e2e.cpuPercent, 1), '', ''],
    ],
  );
  if (steady > GOAL_CYCLE_MS || e2e.perMinute !== 0 || e2e.labelled !== procs.length) {
    process.exitCode = 1;
  }
} catch (err) {
  if (!stopping) console.error(err);
  process.exitCode = 1;
} finally {
  await cleanup();
}
