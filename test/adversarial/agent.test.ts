// Adversarial suite (issue 17, issue 16 point 11): hostile stand-in tools, a flooded kernel log, a
// container asking for thousands of GPUs and crafted config files, against real agent processes
// (the built CLI), all at once and bounded in time. Each attack asserts its bound: the agent
// lives, its memory stays under a ceiling, its exposition passes promtool, good series stay and
// what was dropped is counted; no child process outlives a kill or the agent.
import { spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import {
  allSeries,
  CLI,
  SIM_NVIDIA_SMI,
  seriesValue,
  startCli,
  type CliProcess,
} from '../helpers/cli.js';
import { DOCKER_TOOLS, runContainer, startDockerd, type TestEngine } from '../helpers/dockerd.js';
import { alive, descendants, rssBytes } from '../helpers/processes.js';
import { describeWithTools, findTool, tools } from '../helpers/tools.js';

/** How long the attacks run against the agents once all are up. */
const ATTACK_MS = 12_000;
/**
 * Resident memory any attacked agent stays under: an idle agent here takes 65-80 MB, the one fed
 * endless 900 KB `-q -x` lines 140-160 MB (documents are dropped at 16 MiB; unbounded, it grew
 * to 2 GB in two minutes).
 */
const RSS_CEILING = 256 * 1024 * 1024;
/** CPU an agent may spend on a garbage flood, as a share of one core over the attack. */
const CPU_CEILING = 0.35;

const NODE = process.execPath;
const dir = mkdtempSync(join(tmpdir(), 'gpulse-adversarial-'));

/** Writes an executable shell script. */
function script(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

/** Pids a stand-in wrote to a file, one per line, grouped by run (a line `run` starts one). */
function runsIn(file: string): number[][] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const runs: number[][] = [];
  for (const line of text.split('\n')) {
    if (line === 'run') runs.push([]);
    else if (line !== '') runs[runs.length - 1]?.push(Number(line));
  }
  return runs;
}

/** CPU seconds a process has used (user + system), from /proc. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Runs `promtool check metrics` on an exposition; returns its complaints ('' when none). */
function promtool(body: string): { status: number | null; said: string } {
  const r = spawnSync(findTool('promtool')!, ['check', 'metrics'], {
    input: body,
    encoding: 'utf8',
  });
  return { status: r.status, said: r.stdout + r.stderr };
}

/** What was seen of one attacked agent. */
interface Observed {
  cli: CliProcess;
  maxRss: number;
  cpuShare: number;
  body: string;
  readyz: { status: number; body: string };
  exit?: { code: number | null };
}

// ---- the stand-ins -------------------------------------------------------------------------

const appsPids = join(dir, 'apps-pids');
/**
 * nvidia-smi with good values (the simulator) and hostile extras: `-q -x` prints endless 900 KB
 * lines and never closes the document; the process list prints random bytes and exits at once,
 * leaving a `sleep` behind in its group each time; pmon is `yes garbage,line`.
 */
const hostileExtras = script(
  'nvidia-smi-extras',
  `case "$1" in
  -q) exec '${NODE}' -e "const l = '<x>' + 'y'.repeat(900 * 1024) + '</x>\\\\n'; const w = () => { while (process.stdout.write(l)); process.stdout.once('drain', w); }; w();" ;;
  --query-compute-apps=*) echo run >> '${appsPids}'; sleep 300 & echo $! >> '${appsPids}'; head -c 65536 /dev/urandom; exit 0 ;;
  pmon) exec yes garbage,line ;;
  *) exec '${NODE}' '${SIM_NVIDIA_SMI}' "$@" ;;
esac`,
);

/** nvidia-smi that knows its fields but answers every stream with `yes garbage,line`. */
const garbageSmi = script(
  'nvidia-smi-garbage',
  `case "$1" in
  --help-query-gpu) exec '${NODE}' '${SIM_NVIDIA_SMI}' "$@" ;;
  *) exec yes garbage,line ;;
esac`,
);

/** tegrastats that floods garbage. */
const garbageTegrastats = script('tegrastats', 'exec yes garbage,line');

const stallPids = join(dir, 'stall-pids');
/**
 * nvidia-smi as a wrapper script that forks two `sleep`s, prints one good sample and goes
 * silent: the watchdog kills it, and must kill its whole group.
 */
const stallingWrapper = script(
  'nvidia-smi-wrapper',
  `case "$1" in
  --help-query-gpu) exec '${NODE}' '${SIM_NVIDIA_SMI}' "$@" ;;
  --query-gpu=*)
    echo run >> '${stallPids}'
    sleep 300 & echo $! >> '${stallPids}'
    sleep 300 & echo $! >> '${stallPids}'
    echo $$ >> '${stallPids}'
    '${NODE}' '${SIM_NVIDIA_SMI}' "$@" | head -n 1
    exec sleep 300 ;;
  *) exec sleep 300 ;;
esac`,
);

const kmsgFile = join(dir, 'kmsg.log');
const XID_79 =
  "NVRM: Xid (PCI:0000:91:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.";

/** Settings every attacked agent shares: quiet sources not under attack stay off. */
const QUIET = {
  GPULSE_LOG_LEVEL: 'info',
  GPULSE_DCGM_MODE: 'off',
  GPULSE_DOCKER_MODE: 'off',
  GPULSE_KMSG_MODE: 'off',
};

describeWithTools('gpulse under attack', [...tools('promtool'), ...DOCKER_TOOLS], () => {
  const seen = {} as Record<'extras' | 'floods' | 'kernel' | 'containers', Observed>;
  let hung: { code: number | null; before: number[]; after: number[]; stopped: boolean };
  let configs: { name: string; code: number | null; stderr: string }[] = [];
  let engine: TestEngine | undefined;
  let appsRuns: number[][] = [];
  let stallRuns: number[][] = [];
  let floodId = '';
  let normalId = '';
  const agents: CliProcess[] = [];

  beforeAll(async () => {
    writeFileSync(kmsgFile, '');
    const start = async (args: string[], env: NodeJS.ProcessEnv) => {
      const cli = await startCli(args, { ...QUIET, ...env });
      agents.push(cli);
      return cli;
    };
    // The engine starts alongside the other agents: it takes seconds.
    const containersAgent = (async () => {
      engine = await startDockerd();
      const devices = Array.from({ length: 5000 }, (_, i) => String(i)).join(',');
      [floodId, normalId] = await Promise.all([
        runContainer(engine.docker, {
          name: 'asks-for-5000-gpus',
          cmd: ['sleep', '300'],
          env: [`NVIDIA_VISIBLE_DEVICES=${devices}`],
        }),
        runContainer(engine.docker, {
          name: 'asks-for-one-gpu',
          cmd: ['sleep', '300'],
          env: ['NVIDIA_VISIBLE_DEVICES=GPU-0b6c3b2b-c55b-d076-fa0e-d464e4c7e08b'],
        }),
      ]);
      return start(['run'], {
        GPULSE_NVIDIA_SMI_MODE: 'off',
        GPULSE_DOCKER_MODE: 'required',
        GPULSE_DOCKER_SOCKET: engine.socket,
        GPULSE_DOCKER_INTERVAL: '1s',
      });
    })();
    const [extras, floods, kernel] = await Promise.all([
      start(['run', '--interval', '1s'], {
        GPULSE_NVIDIA_SMI: hostileExtras,
        GPULSE_NVIDIA_SMI_XML_INTERVAL: '1s',
        GPULSE_SIM_PROFILE: 'h100',
        // The heap an edge device gives the agent: unbounded, the documents ran out of it.
        NODE_OPTIONS: '--max-old-space-size=64',
      }),
      start(['run', '--interval', '1s'], {
        GPULSE_NVIDIA_SMI: garbageSmi,
        GPULSE_NVIDIA_SMI_PROCESSES: 'off',
        GPULSE_NVIDIA_SMI_PMON: 'off',
        GPULSE_NVIDIA_SMI_XML_INTERVAL: '0',
        GPULSE_TEGRASTATS: garbageTegrastats,
        GPULSE_TEGRASTATS_MODE: 'required',
        GPULSE_TEGRASTATS_INTERVAL: '1s',
        GPULSE_JETSON_MODEL: 'NVIDIA Jetson AGX Orin',
        GPULSE_JETSON_UUID: 'GPU-jetson-under-attack',
      }),
      start(['run', '--interval', '500ms'], {
        GPULSE_NVIDIA_SMI: stallingWrapper,
        GPULSE_NVIDIA_SMI_STALL_INTERVALS: '2',
        GPULSE_NVIDIA_SMI_PROCESSES: 'off',
        GPULSE_NVIDIA_SMI_PMON: 'off',
        GPULSE_NVIDIA_SMI_XML_INTERVAL: '0',
        GPULSE_SIM_PROFILE: 'h100',
        GPULSE_KMSG_MODE: 'required',
        GPULSE_KMSG: kmsgFile,
      }),
    ]);

    // The kernel log: a real Xid, 20,000 made-up distinct ones, the real one again; appended
    // after the first read (what is there at the first read is history, not counted).
    await kernel.waitForMetrics((b) => b.includes('gpulse_kmsg_following{'), 60_000);
    let flood = `${XID_79}\n`;
    for (let i = 0; i < 20_000; i++) {
      const bus = `${(i & 0xff).toString(16)}:${((i >> 8) & 0x1f).toString(16)}`;
      flood += `NVRM: Xid (PCI:0000:${bus}): ${1000 + i}, made up\n`;
    }
    appendFileSync(kmsgFile, `${flood}${XID_79}\n`);

    // Meanwhile: a hung dcgmi at shutdown (issue 16, point 11), and crafted config files.
    const hungRun = (async () => {
      const cli = await startCli(['simulate', '--scenario', 'hang:after=0s'], {
        GPULSE_LOG_LEVEL: 'info',
        GPULSE_DOCKER_MODE: 'off',
        GPULSE_KMSG_MODE: 'off',
      });
      agents.push(cli);
      // Stop once `dcgmi discovery -l` hangs under it, as a service manager would at any time.
      let before: number[] = [];
      await vi.waitFor(
        () => {
          before = descendants(cli.proc.pid!);
          if (!before.some((pid) => cmdline(pid).includes('discovery')))
            throw new Error('dcgmi discovery is not running (yet)');
        },
        { timeout: 20_000, interval: 200 },
      );
      const r = await cli.stop();
      const stopped = cli.logs.some((l) => l.msg === 'stopped');
      // A killed child closes its pipes a moment before the kernel marks it dead: allow that
      // moment, no more (a child the agent left running would outlive it by minutes).
      await vi
        .waitFor(
          () => {
            if (before.some(alive)) throw new Error('a child of the agent is still exiting');
          },
          { timeout: 2000, interval: 50 },
        )
        .catch(() => undefined);
      return { code: r.code, before, after: before.filter(alive), stopped };
    })();
    const configRuns = Promise.all(CONFIG_ATTACKS.map(runConfig));
    const containers = await containersAgent;

    const pids = { extras, floods, kernel, containers };
    const maxRss = { extras: 0, floods: 0, kernel: 0, containers: 0 };
    const cpu0 = Object.fromEntries(
      Object.entries(pids).map(([k, c]) => [k, cpuSeconds(c.proc.pid!)]),
    );
    const attackStart = Date.now();
    while (Date.now() - attackStart < ATTACK_MS) {
      for (const [k, c] of Object.entries(pids)) {
        const rss = rssBytes(c.proc.pid!) ?? 0;
        maxRss[k as keyof typeof maxRss] = Math.max(maxRss[k as keyof typeof maxRss], rss);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const seconds = (Date.now() - attackStart) / 1000;
    for (const [k, c] of Object.entries(pids)) {
      const key = k as keyof typeof pids;
      seen[key] = {
        cli: c,
        maxRss: maxRss[key],
        cpuShare: (cpuSeconds(c.proc.pid!) - (cpu0[k] ?? 0)) / seconds,
        body: (await c.get('/metrics')).body,
        readyz: await c.get('/readyz'),
      };
    }
    // The runs so far, read together with the metrics (all but the last have ended).
    appsRuns = runsIn(appsPids);
    stallRuns = runsIn(stallPids);
    hung = await hungRun;
    configs = await configRuns;
  }, 180_000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await engine?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('every attacked agent lives, stays under the memory ceiling and serves an exposition promtool accepts', () => {
    for (const [name, o] of Object.entries(seen)) {
      expect({ name, exited: o.cli.proc.exitCode }).toEqual({ name, exited: null });
      expect({ name, rss: o.maxRss < RSS_CEILING }).toEqual({ name, rss: true });
      expect({ name, ...promtool(o.body) }).toEqual({ name, status: 0, said: '' });
    }
  });

  it('-q -x printing endless 900 KB lines under a 64 MB heap: documents dropped at 16 MiB and counted; GPU values stay', () => {
    const { body } = seen.extras;
    expect(seriesValue(body, 'gpulse_collector_up', { collector: 'nvidia-smi' })).toBe(1);
    expect(allSeries(body, 'gpulse_gpu_info')).toHaveLength(1);
    expect(
      seriesValue(body, 'gpulse_collector_errors_total', {
        collector: 'nvidia-smi',
        reason: 'xml_too_large',
      }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('a tool that prints (random bytes) and exits is restarted ever more slowly, its helpers ended with it', () => {
    const { body } = seen.extras;
    const restarts = seriesValue(body, 'gpulse_nvidia_smi_restarts_total', {
      stream: 'compute-apps',
    });
    // Without the backoff growing: ~86 a minute, ~28 in the attack; doubling from 1 s: ~5.
    expect(restarts).toBeGreaterThanOrEqual(2);
    expect(restarts).toBeLessThanOrEqual(8);
    // The `sleep` each run left behind died with its run (all but the current run's).
    // A run writes its pids as it starts: it may be one ahead of the counter scraped before.
    expect(appsRuns.length - restarts!).toBeGreaterThanOrEqual(1);
    expect(appsRuns.length - restarts!).toBeLessThanOrEqual(2);
    expect(appsRuns.slice(0, -1).flat().filter(alive)).toEqual([]);
  });

  it('pmon flooding garbage is killed and counted, the GPU values stay', () => {
    const { body } = seen.extras;
    expect(
      seriesValue(body, 'gpulse_collector_errors_total', {
        collector: 'nvidia-smi',
        reason: 'pmon_garbage_output',
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      seriesValue(body, 'gpulse_nvidia_smi_rejected_lines_total', { stream: 'pmon' }),
    ).toBeGreaterThanOrEqual(1000);
    expect(
      seriesValue(body, 'gpulse_nvidia_smi_restarts_total', { stream: 'pmon' }),
    ).toBeLessThanOrEqual(8);
  });

  it('`yes garbage,line` as nvidia-smi and as tegrastats: status error garbage_output, backed off, cheap', () => {
    const { body, readyz, cpuShare } = seen.floods;
    for (const collector of ['nvidia-smi', 'tegrastats']) {
      expect(
        seriesValue(body, 'gpulse_collector_status', {
          collector,
          status: 'error',
          reason: 'garbage_output',
        }),
      ).toBe(1);
    }
    // Every collector has reported, with the reason to read; tegrastats is `required` here
    // (no Jetson to detect), so its failure makes the agent not ready.
    expect(readyz.status).toBe(503);
    expect(JSON.parse(readyz.body)).toMatchObject({
      ready: false,
      required: ['tegrastats'],
      collectors: {
        'nvidia-smi': { status: 'error', reason: 'garbage_output' },
        tegrastats: { status: 'error', reason: 'garbage_output' },
      },
    });
    expect(
      seriesValue(body, 'gpulse_nvidia_smi_restarts_total', { stream: 'query-gpu' }),
    ).toBeLessThanOrEqual(8);
    expect(seriesValue(body, 'gpulse_tegrastats_restarts_total')).toBeLessThanOrEqual(8);
    expect(
      seriesValue(body, 'gpulse_nvidia_smi_rejected_lines_total', { stream: 'query-gpu' }),
    ).toBeGreaterThanOrEqual(1000);
    expect(seriesValue(body, 'gpulse_tegrastats_rejected_lines_total')).toBeGreaterThanOrEqual(
      1000,
    );
    // Good series of the sources not under attack stay.
    expect(seriesValue(body, 'gpulse_collector_up', { collector: 'host' })).toBe(1);
    expect(cpuShare).toBeLessThan(CPU_CEILING);
    // The message says what the tool printed.
    const said = seen.floods.cli.logs.find(
      (l) => l.collector === 'nvidia-smi' && l.reason === 'garbage_output',
    );
    expect(String(said?.msg)).toContain('garbage,line');
  });

  it('a stall kill ends the wrapper script and the sleeps it forked, not only the script', () => {
    expect(stallRuns.length).toBeGreaterThanOrEqual(2);
    for (const run of stallRuns.slice(0, -1)) expect(run).toHaveLength(3);
    expect(stallRuns.slice(0, -1).flat().filter(alive)).toEqual([]);
    expect(
      seriesValue(seen.kernel.body, 'gpulse_collector_errors_total', {
        collector: 'nvidia-smi',
        reason: 'hang',
      }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('20,000 distinct Xid lines: at most 512 series, the rest counted, the real Xid counted twice', () => {
    const { body } = seen.kernel;
    const xids = allSeries(body, 'gpulse_gpu_xid_errors_total');
    expect(xids).toHaveLength(512);
    const real = xids.filter((s) => s.labels.xid === '79');
    expect(real.map((s) => [s.labels.severity, s.value])).toEqual([['critical', 2]]);
    expect(seriesValue(body, 'gpulse_kmsg_xids_dropped_total')).toBe(20_000 - 511);
    expect(seriesValue(body, 'gpulse_collector_up', { collector: 'kmsg' })).toBe(1);
  });

  it('a container asking for 5,000 GPUs: 64 request series, the rest counted; the other container is intact', () => {
    const { body } = seen.containers;
    const requests = allSeries(body, 'gpulse_container_gpu_request_info');
    expect(requests.filter((s) => s.labels.container_id === floodId)).toHaveLength(64);
    expect(requests.filter((s) => s.labels.container_id === normalId)).toEqual([
      expect.objectContaining({
        labels: expect.objectContaining({
          device: 'GPU-0b6c3b2b-c55b-d076-fa0e-d464e4c7e08b',
          source: 'nvidia_visible_devices',
        }) as unknown,
        value: 1,
      }),
    ]);
    expect(seriesValue(body, 'gpulse_docker_gpu_requests_dropped')).toBe(5000 - 64);
  });

  it('SIGTERM while dcgmi discovery hangs: exits 0 and no child survives (by pid)', () => {
    expect(hung.code).toBe(0);
    expect(hung.stopped).toBe(true);
    expect(hung.before.length).toBeGreaterThanOrEqual(1);
    expect(hung.after).toEqual([]);
  });

  it('crafted config files are an invalid configuration (exit 2), not a crash', () => {
    for (const c of configs) {
      expect({ name: c.name, code: c.code }).toEqual({ name: c.name, code: 2 });
      expect(c.stderr).toMatch(/^gpulse: invalid configuration:\n {2}- /);
      expect(c.stderr).not.toMatch(/\n\s+at /);
    }
    expect(configs.map((c) => c.stderr.split('\n')[1])).toEqual(CONFIG_ATTACKS.map((a) => a.says));
  });
});

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** A "billion laughs" file: nine levels of nine aliases each, 9^9 strings once expanded. */
const LAUGHS = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  ...'bcdefghi'
    .split('')
    .map((c, i) => `${c}: &${c} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`),
].join('\n');

/** Config attacks: a file, or environment variables, and the first problem the CLI must print. */
const CONFIG_ATTACKS: readonly {
  name: string;
  file?: string;
  env?: NodeJS.ProcessEnv;
  says: string;
}[] = [
  {
    name: 'billion laughs',
    file: LAUGHS,
    says: '  - laughs.yaml: its aliases (*name) expand into far more values than the file holds, as a YAML "billion laughs" bomb does; write the values out',
  },
  {
    name: 'a duration Node.js would clamp to 1 ms',
    env: { GPULSE_NVIDIA_SMI_INTERVAL: '2147483648' },
    says: '  - collectors.nvidia-smi.interval: must be at most 1h, got 2147483648ms (from GPULSE_NVIDIA_SMI_INTERVAL)',
  },
  {
    name: 'a replay rate of zero',
    env: { GPULSE_MQTT_REPLAY_RATE: '0' },
    says: '  - mqtt.spool.replayRate: must be at least 1, got 0 (from GPULSE_MQTT_REPLAY_RATE)',
  },
];

async function runConfig(attack: (typeof CONFIG_ATTACKS)[number]): Promise<{
  name: string;
  code: number | null;
  stderr: string;
}> {
  const args = [CLI, 'run', '--listen', '127.0.0.1:0'];
  if (attack.file !== undefined) {
    const file = join(dir, 'laughs.yaml');
    writeFileSync(file, attack.file);
    args.push('--config', file);
  }
  const child = spawn(NODE, args, {
    cwd: dir,
    env: { ...process.env, ...attack.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => (stderr += c));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  // The file is named relative to the working directory in messages: make it match.
  return {
    name: attack.name,
    code,
    stderr: stderr.replaceAll(join(dir, 'laughs.yaml'), 'laughs.yaml'),
  };
}
