// npm run bench:containers — the docker collector with N running containers (default 100): CPU and
// wall time of one collection cycle (cgroup files, and one-shot API stats), against one
// `docker stats --no-stream` for the same containers in the same run, on a private dockerd.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pino } from 'pino';
import { startDockerd } from '../test/helpers/dockerd-daemon.mjs';
import { median, table } from './lib.mjs';

const COUNT = Number(process.env.BENCH_CONTAINERS ?? 100);
const CYCLES = Number(process.env.BENCH_CYCLES ?? 9);
const STATS_RUNS = Number(process.env.BENCH_STATS_RUNS ?? 5);
const dist = new URL('../dist/', import.meta.url).pathname;
const { createDockerCollector } = await import(join(dist, 'collectors/docker/docker-collector.js'));
const { dockerConfigSchema } = await import(join(dist, 'collectors/docker/config.js'));
const { systemClock } = await import(join(dist, 'agent/core/clock.js'));
const { which } = await import(join(dist, 'agent/doctor/settings.js'));

/** A program on PATH (or in an sbin folder, where dockerd lives). */
function program(bin) {
  const path = which(bin, { PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` });
  if (path === undefined)
    throw new Error(`${bin} not found (Debian: apt-get install docker.io busybox-static)`);
  return path;
}

// ---- a private dockerd with a busybox image (environment.md), the tests' starter -------------
const engine = await startDockerd({ dockerd: program('dockerd'), busybox: program('busybox') });
const { socket, docker } = engine;

try {
  const t0 = Date.now();
  for (let i = 0; i < COUNT; i += 8) {
    await Promise.all(
      Array.from({ length: Math.min(8, COUNT - i) }, async (_, k) => {
        const c = await docker.createContainer({
          name: `bench-${i + k}`,
          Image: 'busybox:test',
          Cmd: ['sleep', '3600'],
          HostConfig: { NetworkMode: 'none', Memory: 64 * 1024 * 1024 },
        });
        await c.start();
      }),
    );
  }
  console.log(
    `${COUNT} containers running (started in ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`,
  );

  /** Runs the collector for CYCLES cycles; returns per-cycle wall (its own duration) and process CPU. */
  async function measure(stats) {
    const collector = createDockerCollector(
      dockerConfigSchema.parse({ socket, interval: 1000, stats, logs: 'off' }),
      { clock: systemClock, env: {}, procRoot: '/proc', cgroupRoot: '/sys/fs/cgroup' },
    );
    const cycles = [];
    // The collector's timers are unref'd (they never keep an agent alive on their own): hold on.
    const keepAlive = setInterval(() => undefined, 1000);
    let lastCpu = process.cpuUsage();
    let failed;
    const done = new Promise((resolve) => {
      const sink = {
        ok(output, durationMs) {
          const cpu = process.cpuUsage(lastCpu);
          lastCpu = process.cpuUsage();
          const running = output.facts.dockerContainers.filter(
            (f) => f.container.state === 'running',
          );
          const withStats = running.filter((f) => f.stats?.memoryUsageBytes !== undefined).length;
          cycles.push({
            wallMs: durationMs,
            cpuMs: (cpu.user + cpu.system) / 1000,
            running: running.length,
            withStats,
          });
          if (cycles.length >= CYCLES + 1) resolve();
        },
        noData: (r, m) => ((failed = `${r}: ${m}`), resolve()),
        fail: (r, m) => ((failed = `${r}: ${m}`), resolve()),
        countError: () => undefined,
        health: () => undefined,
      };
      void collector.start(sink, pino({ level: 'silent' }));
    });
    await done;
    clearInterval(keepAlive);
    await collector.stop();
    if (failed) throw new Error(`collector failed: ${failed}`);
    const [first, ...steady] = cycles;
    if (steady.some((c) => c.running !== COUNT || c.withStats !== COUNT)) {
      throw new Error(
        `a cycle missed containers: ${JSON.stringify(steady.map((c) => [c.running, c.withStats]))}`,
      );
    }
    return { first, steady };
  }

  const cgroup = await measure('cgroup');
  const api = await measure('api');

  const statsCli = program('docker');
  const statsWall = [];
  for (let i = 0; i < STATS_RUNS; i++) {
    const s = process.hrtime.bigint();
    const out = execFileSync(
      statsCli,
      ['-H', `unix://${socket}`, 'stats', '--no-stream', '--format', '{{.ID}}'],
      {
        encoding: 'utf8',
      },
    );
    statsWall.push(Number(process.hrtime.bigint() - s) / 1e6);
    const n = out.trim().split('\n').length;
    if (n !== COUNT) throw new Error(`docker stats listed ${n} containers, not ${COUNT}`);
  }

  const fmt = (x) => x.toFixed(1);
  const row = (what, xs) => [
    what,
    fmt(median(xs)),
    fmt(Math.min(...xs)),
    fmt(Math.max(...xs)),
    xs.length,
  ];
  const cgWall = cgroup.steady.map((c) => c.wallMs);
  const cgCpu = cgroup.steady.map((c) => c.cpuMs);
  table(
    ['measurement (ms)', 'median', 'min', 'max', 'runs'],
    [
      row('collector cycle, cgroup stats: CPU', cgCpu),
      row('collector cycle, cgroup stats: wall', cgWall),
      row(
        'collector cycle, one-shot API stats: CPU',
        api.steady.map((c) => c.cpuMs),
      ),
      row(
        'collector cycle, one-shot API stats: wall',
        api.steady.map((c) => c.wallMs),
      ),
      row('first cycle (inspects all), cgroup: CPU', [cgroup.first.cpuMs]),
      row('first cycle (inspects all), cgroup: wall', [cgroup.first.wallMs]),
      row('docker stats --no-stream: wall', statsWall),
    ],
  );
  const ratio = median(statsWall) / median(cgWall);
  const ratioApi = median(statsWall) / median(api.steady.map((c) => c.wallMs));
  console.log(
    `\n${COUNT} containers: one cgroup cycle costs ${fmt(median(cgCpu))} ms CPU (budget 50 ms) and takes ` +
      `${fmt(median(cgWall))} ms; docker stats --no-stream takes ${ratio.toFixed(1)}x longer ` +
      `(${ratioApi.toFixed(1)}x longer than an API-stats cycle).`,
  );
  if (median(cgCpu) > 50) process.exitCode = 1;
} finally {
  await engine.destroy();
}
