// The fault matrix (issue 16's acceptance): every fault scenario runs for real, at once, and each
// must look the same on every surface. One `gpulse simulate` per scenario (simulated nvidia-smi
// and dcgmi, `--metrics-compat dcgm`) publishes over MQTT with its own node to ONE real Mosquitto
// relayed by ONE fleet gateway; ONE real Prometheus with the shipped rules (`for:` cut to 0s)
// scrapes the agents and the gateway; the container scenarios share ONE real dockerd. MATRIX
// below is the table: per scenario, what native /metrics, the dcgm-exporter names, /api/v1/gpus,
// /api/v1/events, the gateway's relay and Prometheus's alerts must show. Each row is checked per
// GPU, surface against surface (gpu_up, throttle reasons and their DCGM bitmask, Xids, memory,
// collector status, families), then against the row's constants, and the set of firing alerts
// must be exactly the row's, both from the agent's own series and from the gateway's relay.
// NVIDIA's dcgm-exporter dashboard is run for every row with GPUs that answer.
//
// Cost: 10 agents on a 2-core machine; they start three at a time (about 15 s per wave under
// load); the rows then take a few seconds each. Worst case bounded by the hook and test limits.
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { parse, stringify } from 'yaml';
import { THROTTLE_REASONS, type ThrottleReason } from '../../agent/core/facts.js';
import { loadGatewayConfig } from '../../edge/gateway/command.js';
import { createGateway, type Gateway } from '../../edge/gateway/gateway.js';
import { allSeries, freePort, seriesValue, startCli, type CliProcess } from '../helpers/cli.js';
import { DOCKER_TOOLS, runContainer, startDockerd, type TestEngine } from '../helpers/dockerd.js';
import { silentLogger } from '../helpers/log-sink.js';
import { NVML_REASON_BITS } from '../helpers/nvml.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { startPrometheus, type PrometheusServer } from '../helpers/prometheus.js';
import { gpuOnSurfaces, readSurfaces, type Surfaces } from '../helpers/surfaces.js';
import { describeWithTools, tools } from '../helpers/tools.js';
import { expectNvidiaDashboardShows } from '../deploy/dcgm-exporter-dashboard.js';
import { deployPath } from '../deploy/deploy-files.js';
import type { Alert } from '../deploy/panel-check.js';

const SITE = 'matrix';
const MIB = 1048576;

/** An agent playing one scenario: its MQTT node name and its `gpulse simulate` flags. */
interface AgentSpec {
  readonly node: string;
  readonly args: readonly string[];
  /** Needs the shared dockerd (and reports the trainer container's PID on GPU 0). */
  readonly docker?: boolean;
}

/** The GPU of an h100-8x whose kernel-log Xid the "xid" agent reads. */
const XID_GPU = 4;

const AGENTS: readonly AgentSpec[] = [
  { node: 'healthy', args: [] },
  { node: 'thermal', args: ['--scenario', 'thermal-throttle:after=0s,for=inf,ramp=2s,gpu=3'] },
  { node: 'power', args: ['--scenario', 'power-brake:after=0s,for=inf,gpu=5'] },
  // DCGM counts an Xid only when it changes under its eyes (a value already there at its first
  // row is history): the loss must come after the agent's first DCGM row, even on a loaded machine.
  { node: 'lost', args: ['--scenario', 'gpu-lost:after=20s,gpu=2'] },
  { node: 'hang', args: ['--scenario', 'hang:after=8s'] },
  { node: 'memory', args: ['--scenario', 'memory-full:after=0s,ramp=2s,gpu=1'] },
  { node: 'nodriver', args: ['--scenario', 'no-driver'] },
  { node: 'xid', args: [] },
  { node: 'containers', args: ['--profile', 'h100'], docker: true },
  { node: 'mig', args: ['--profile', 'h100-mig'] },
];

/** What one scenario must show on every surface. */
interface Row {
  /** The scenario as issue 16 names it. */
  readonly scenario: string;
  /** The agent playing it (its MQTT node). */
  readonly agent: string;
  /** GPUs every surface lists (indexes 0..n-1); 0: none on any surface. */
  readonly gpus: number;
  /** The GPU that fell off the bus: up 0 everywhere, its Xid 79 alone in the compat names. */
  readonly lost?: number;
  /** Throttle reasons active per GPU (the rest: none active). */
  readonly throttled?: Readonly<Record<number, readonly ThrottleReason[]>>;
  /** The GPU whose memory is full: free 0 on every surface. */
  readonly memoryFull?: number;
  /** Xid per GPU: native counter {xid: count}, DCGM_FI_DEV_XID_ERRORS = the Xid, API, events. */
  readonly xids?: Readonly<Record<number, { readonly xid: number; readonly source: string }>>;
  /** Status of the GPU collectors as `status/reason` (native, and relayed by the gateway). */
  readonly collectors: { readonly 'nvidia-smi': string; readonly dcgm: string };
  /** Events, as `type/severity@gpu` or `type/severity@container`, sorted. */
  readonly events: readonly string[];
  /** Container counters {container: {oom kills, GPU OOMs}} and the container on GPU 0. */
  readonly containers?: {
    readonly counters: Readonly<
      Record<string, { readonly oomKills: number; readonly gpuOoms: number }>
    >;
    readonly onGpu0: string;
  };
  /** MIG GPU instances as `GPU_I_ID/GPU_I_PROFILE` (compat names, native mig_info, relay). */
  readonly mig?: readonly string[];
  /** Exactly the alerts firing for this agent, from its own series and from the gateway's relay. */
  readonly alerts: readonly string[];
  /** GPUs NVIDIA's dcgm-exporter dashboard must show in every panel (absent: not run). */
  readonly dashboard?: readonly number[];
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
/** `GpulseGpuUtilizationSaturated` on busy GPUs: the simulated training load is ≥ 0.9 at its median. */
const saturated = (gpus: readonly number[]) =>
  gpus.map((g) => `GpulseGpuUtilizationSaturated{gpu=${g}}`);
const OK = { 'nvidia-smi': 'ok/', dcgm: 'ok/' } as const;

/** The matrix. */
const MATRIX: readonly Row[] = [
  {
    scenario: 'healthy',
    agent: 'healthy',
    gpus: 8,
    collectors: OK,
    events: [],
    alerts: saturated(range(8)),
    dashboard: range(8),
  },
  {
    scenario: 'thermal-throttle (GPU 3)',
    agent: 'thermal',
    gpus: 8,
    throttled: { 3: ['sw_thermal_slowdown', 'hw_thermal_slowdown'] },
    collectors: OK,
    events: ['gpu.throttle_start/critical@3'],
    alerts: [
      'GpulseGpuSoftwareThermalThrottling{gpu=3}',
      'GpulseGpuTemperatureHigh{gpu=3}',
      'GpulseGpuThermalSlowdown{gpu=3}',
      ...saturated(range(8)),
    ],
    dashboard: range(8),
  },
  {
    scenario: 'power-brake (GPU 5)',
    agent: 'power',
    gpus: 8,
    throttled: { 5: ['hw_slowdown', 'hw_power_brake_slowdown'] },
    collectors: OK,
    events: ['gpu.throttle_start/critical@5'],
    alerts: ['GpulseGpuPowerBrakeSlowdown{gpu=5}', ...saturated(range(8))],
    dashboard: range(8),
  },
  {
    scenario: 'gpu-lost (GPU 2 of 8)',
    agent: 'lost',
    gpus: 8,
    lost: 2,
    xids: { 2: { xid: 79, source: 'dcgm' } },
    collectors: OK,
    events: ['gpu.lost/critical@2', 'gpu.xid/critical@2'],
    alerts: [
      'GpulseGpuFallenOffBus{gpu=2}',
      'GpulseGpuXidCritical{gpu=2,xid=79}',
      ...saturated([0, 1, 3, 4, 5, 6, 7]),
    ],
    dashboard: [0, 1, 3, 4, 5, 6, 7],
  },
  {
    scenario: 'hang (nvidia-smi and dcgmi stop answering)',
    agent: 'hang',
    gpus: 0,
    collectors: { 'nvidia-smi': 'error/hang', dcgm: 'error/hang' },
    events: [],
    alerts: [
      'GpulseCollectorFailing{collector=dcgm}',
      'GpulseCollectorFailing{collector=nvidia-smi}',
      'GpulseNvidiaSmiRestarting{}',
    ],
  },
  {
    scenario: 'memory-full (GPU 1)',
    agent: 'memory',
    gpus: 8,
    memoryFull: 1,
    collectors: OK,
    events: [],
    alerts: [
      'GpulseGpuMemoryFull{gpu=1}',
      'GpulseGpuMemoryNearlyFull{gpu=1}',
      ...saturated(range(8)),
    ],
    dashboard: range(8),
  },
  {
    scenario: 'no-driver',
    agent: 'nodriver',
    gpus: 0,
    collectors: { 'nvidia-smi': 'error/driver_not_loaded', dcgm: 'no_data/no_host_engine' },
    events: [],
    alerts: [
      'GpulseCollectorFailing{collector=nvidia-smi}',
      'GpulseGpuDriverUnavailable{collector=nvidia-smi}',
      'GpulseNvidiaSmiRestarting{}',
    ],
  },
  {
    scenario: `Xid 48 appended to the kernel log (GPU ${XID_GPU})`,
    agent: 'xid',
    gpus: 8,
    xids: { [XID_GPU]: { xid: 48, source: 'kmsg' } },
    collectors: OK,
    events: [`gpu.xid/critical@${XID_GPU}`],
    alerts: [`GpulseGpuXidCritical{gpu=${XID_GPU},xid=48}`, ...saturated(range(8))],
    dashboard: range(8),
  },
  {
    scenario: 'container OOM-killed ("leaky") and GPU OOM in a container\'s log ("trainer")',
    agent: 'containers',
    gpus: 1,
    collectors: OK,
    events: ['container.gpu_oom/critical@trainer', 'container.oom_kill/critical@leaky'],
    containers: {
      counters: { leaky: { oomKills: 1, gpuOoms: 0 }, trainer: { oomKills: 0, gpuOoms: 1 } },
      onGpu0: 'trainer',
    },
    alerts: [
      'GpulseContainerGpuOutOfMemory{container_name=trainer}',
      'GpulseContainerOomKilled{container_name=leaky}',
      ...saturated([0]),
    ],
    dashboard: [0],
  },
  {
    scenario: 'MIG (H100, four GPU instances)',
    agent: 'mig',
    gpus: 1,
    collectors: OK,
    events: [],
    mig: ['2/3g.40gb', '3/2g.20gb', '9/1g.10gb', '10/1g.10gb'],
    alerts: [],
  },
];

/** An alert as the matrix names it: its name and the labels that say what it is about. */
function alertKey(a: Alert): string {
  const keep = ['collector', 'container_name', 'gpu', 'xid'];
  const labels = keep
    .filter((k) => (a.labels[k] ?? '') !== '')
    .map((k) => `${k}=${a.labels[k]}`)
    .join(',');
  return `${a.labels.alertname}{${labels}}`;
}

/** Throttle reasons active for a GPU on an exposition (`extra`: the device's site and node). */
function activeReasons(body: string, gpu: number, extra: Record<string, string> = {}): string[] {
  return allSeries(body, 'gpulse_gpu_throttle_active')
    .filter(
      (s) =>
        s.labels.gpu === String(gpu) &&
        s.value === 1 &&
        Object.entries(extra).every(([k, v]) => s.labels[k] === v),
    )
    .map((s) => s.labels.reason ?? '')
    .sort();
}

/** The reasons of a DCGM clocks-event bitmask. */
function maskReasons(mask: number): string[] {
  return THROTTLE_REASONS.filter((r) => (mask & NVML_REASON_BITS[r]) !== 0).sort();
}

/** One compat series of a GPU (whole GPU, not a MIG instance). */
function compat(body: string, name: string, gpu: number): number | undefined {
  return allSeries(body, name).find((s) => s.labels.gpu === String(gpu) && !s.labels.GPU_I_ID)
    ?.value;
}

/** A relayed series of this device on the gateway. */
function relayed(s: Surfaces, node: string, name: string, labels: Record<string, string> = {}) {
  return seriesValue(s.gateway ?? '', name, { site: SITE, node, ...labels });
}

describeWithTools(
  'the fault matrix: every scenario on every surface',
  [...tools('prometheus', 'mosquitto'), ...DOCKER_TOOLS],
  () => {
    const agents = new Map<string, CliProcess>();
    const ports = new Map<string, number>();
    /** When each agent was launched: its throttle episodes began after that. */
    const launchedAt = new Map<string, number>();
    let broker: Mosquitto | undefined;
    let gateway: Gateway | undefined;
    let gatewayBase = '';
    let engine: TestEngine | undefined;
    let prom: PrometheusServer | undefined;
    let tmp = '';
    let launching: Promise<unknown> | undefined;

    beforeAll(async () => {
      tmp = await mkdtemp(join(tmpdir(), 'gpulse-matrix-'));
      const [b, e] = await Promise.all([startMosquitto(), startDockerd()]);
      broker = b;
      engine = e;
      const { config } = loadGatewayConfig({
        flags: { 'mqtt-url': broker.url, listen: '127.0.0.1:0' },
      });
      gateway = createGateway(config, { log: silentLogger(), version: '0.0.0-test' });
      gatewayBase = await gateway.start();
      for (const a of AGENTS) ports.set(a.node, await freePort());

      // Prometheus first, so it sees every agent from its first exposition (a GPU before it is
      // lost, a stream before it hangs). The rules as shipped, `for:` cut to 0s.
      const rules = parse(readFileSync(deployPath('prometheus', 'alerts.yaml'), 'utf8')) as {
        groups: { rules: { for?: string }[] }[];
      };
      for (const g of rules.groups) for (const r of g.rules) r.for = '0s';
      prom = await startPrometheus(
        join(tmp, 'prometheus'),
        stringify({
          // 2 s scrapes: a 1 s timeout is missed now and then on a loaded 2-core machine,
          // and GpulseAgentDown (for: 0s here) would fire for a live agent.
          global: { scrape_interval: '2s', evaluation_interval: '1s', scrape_timeout: '2s' },
          rule_files: ['alerts.yaml'],
          scrape_configs: [
            {
              job_name: 'gpulse',
              static_configs: [{ targets: [...ports.values()].map((p) => `127.0.0.1:${p}`) }],
            },
            // As deploy/ runs it: the devices' series keep their own site and node.
            {
              job_name: 'gpulse-gateway',
              honor_labels: true,
              static_configs: [{ targets: [new URL(gatewayBase).host] }],
            },
          ],
        }),
        { 'alerts.yaml': stringify(rules) },
      );

      // The GPU job: its PID is reported on GPU 0; it prints a real PyTorch OOM line when told
      // to, once the agent follows its log (lines from before are history, not counted).
      const trainer = await runContainer(engine.docker, {
        name: 'trainer',
        cmd: ['sh', '-c', `trap 'printf "%s\\n" "$LOG"' USR1; while :; do sleep 1; done`],
        env: ['LOG=RuntimeError: CUDA out of memory. Tried to allocate 1024.00 MiB'],
      });
      const trainerPid = (await engine.docker.getContainer(trainer).inspect()).State.Pid;

      const launch = async (a: AgentSpec): Promise<CliProcess> => {
        const kmsg = join(tmp, `${a.node}.kmsg`);
        await writeFile(kmsg, '');
        launchedAt.set(a.node, Date.now());
        const cli = await startCli(
          [
            'simulate',
            '--metrics-compat',
            'dcgm',
            '--interval',
            '1s',
            '--xml-interval',
            '5s',
            ...a.args,
            ...(a.docker ? ['--process', `${trainerPid}:0:4096:python`] : []),
          ],
          {
            GPULSE_LOG_LEVEL: 'warn',
            GPULSE_DCGM_INTERVAL: '1s',
            GPULSE_KMSG: kmsg,
            GPULSE_HOST_MODE: 'off',
            GPULSE_DRIFT_MODE: 'off',
            // Per-process data only where a row asks for it: two fewer simulated tools each.
            ...(a.docker || a.node === 'mig'
              ? {}
              : { GPULSE_NVIDIA_SMI_PMON: 'off', GPULSE_NVIDIA_SMI_PROCESSES: 'off' }),
            ...(a.docker
              ? { GPULSE_DOCKER_SOCKET: engine!.socket, GPULSE_DOCKER_INTERVAL: '1s' }
              : { GPULSE_DOCKER_MODE: 'off' }),
            GPULSE_MQTT_URL: broker!.url,
            GPULSE_MQTT_SITE: SITE,
            GPULSE_MQTT_NODE: a.node,
            GPULSE_MQTT_INTERVAL: '1s',
            GPULSE_MQTT_FLUSH: '1s',
            GPULSE_MQTT_STATUS_INTERVAL: '1s',
            GPULSE_MQTT_SPOOL_DIR: join(tmp, 'spool', a.node),
          },
          // Under a loaded CI machine one start can take a while: patience, not a failure.
          { port: ports.get(a.node)!, healthyTimeoutMs: 90_000 },
        );
        agents.set(a.node, cli);
        return cli;
      };
      // Three at a time: ten agents (and their simulated tools) starting at once on two cores
      // would not answer /healthz in time. afterAll waits for every launch, even after a timeout.
      const queue = [...AGENTS];
      const launches: Promise<CliProcess>[] = [];
      const worker = async () => {
        for (let a = queue.shift(); a; a = queue.shift()) {
          const started = launch(a);
          launches.push(started);
          await started.catch(() => undefined);
        }
      };
      launching = Promise.all([worker(), worker(), worker()]);
      await launching;
      for (const r of await Promise.allSettled(launches))
        if (r.status === 'rejected') throw r.reason;

      // The job that outgrows its 16 MiB, once the agent watches: one process (dd's 64 MiB
      // buffer) and no restart, so the kernel kills exactly once (a pipeline could lose two).
      await runContainer(engine.docker, {
        name: 'leaky',
        cmd: ['sh', '-c', 'sleep 2; exec dd if=/dev/zero of=/dev/null bs=64M count=1'],
        memory: 16 * MIB,
      });
      // The kernel names a GPU by its PCI bus: an uncorrectable ECC error (Xid 48) on GPU 4.
      const xid = agents.get('xid')!;
      let bus = '';
      await vi.waitFor(
        async () => {
          const gpus = JSON.parse((await xid.get('/api/v1/gpus')).body) as {
            gpus: { index: number; pciBusId: string }[];
          };
          bus = gpus.gpus.find((g) => g.index === XID_GPU)?.pciBusId ?? '';
          if (!bus) throw new Error(`GPU ${XID_GPU} not listed yet`);
        },
        { timeout: 20_000, interval: 250 },
      );
      const usec = Math.round(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1e6);
      const kernelBus = bus.slice(4, 14).toLowerCase(); // 00000000:8A:00.0 → 0000:8a:00
      await appendFile(
        join(tmp, 'xid.kmsg'),
        `3,1,${usec},-;NVRM: Xid (PCI:${kernelBus}): 48, pid='<unknown>', name=<unknown>, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer\n`,
      );
      const containers = agents.get('containers')!;
      await containers.waitForMetrics(
        (m) => seriesValue(m, 'gpulse_docker_log_followers') === 1,
        30_000,
      );
      await engine.docker.getContainer(trainer).kill({ signal: 'USR1' });
    }, 240_000);

    afterAll(async () => {
      await launching;
      await prom?.stop();
      await Promise.all([...agents.values()].map((a) => a.stop()));
      await gateway?.stop();
      await broker?.destroy();
      await engine?.destroy();
      if (tmp) await rm(tmp, { recursive: true, force: true });
    }, 60_000);

    /** Firing alerts of one agent: from its own scrape, and from the gateway's relay. */
    async function firing(node: string): Promise<{ direct: string[]; relayed: string[] }> {
      const instance = `127.0.0.1:${ports.get(node)}`;
      const { alerts } = await prom!.api<{ alerts: Alert[] }>('/api/v1/alerts');
      const on = alerts.filter((a) => a.state === 'firing');
      // One key per alert and subject (GpulseNvidiaSmiRestarting fires once per stream).
      const keys = (list: Alert[]) => [...new Set(list.map(alertKey))].sort();
      return {
        direct: keys(on.filter((a) => a.labels.job === 'gpulse' && a.labels.instance === instance)),
        relayed: keys(
          on.filter((a) => a.labels.job === 'gpulse-gateway' && a.labels.node === node),
        ),
      };
    }

    /** Rate of a counter over the last 20 s, as Prometheus computes it. */
    async function rate(selector: string, unit = 1): Promise<number | undefined> {
      const { result } = await prom!.api<{ result: { value: [number, string] }[] }>(
        '/api/v1/query',
        { query: `rate(${selector}[20s]) / ${unit}` },
      );
      return result.length === 1 ? Number(result[0]!.value[1]) : undefined;
    }

    for (const row of MATRIX) {
      it(
        row.scenario,
        async () => {
          const agent = agents.get(row.agent)!;
          const instance = `127.0.0.1:${agent.port}`;
          const read = () =>
            readSurfaces({
              agent: agent.base,
              gateway: { base: gatewayBase, site: SITE, node: row.agent },
            });
          const status = (body: string, collector: string, extra: Record<string, string> = {}) => {
            const s = allSeries(body, 'gpulse_collector_status').find(
              (x) =>
                x.labels.collector === collector &&
                Object.entries(extra).every(([k, v]) => x.labels[k] === v),
            );
            return s ? `${s.labels.status}/${s.labels.reason}` : undefined;
          };
          const eventKeys = (s: Surfaces) =>
            s.events
              .map(
                (e) => `${e.type}/${e.severity}@${e.labels.gpu ?? e.labels.container_name ?? ''}`,
              )
              .sort();

          // The scenario has settled on the agent and on the gateway's relay.
          let s: Surfaces | undefined;
          await vi.waitFor(
            async () => {
              s = await read();
              expect(status(s.metrics, 'nvidia-smi')).toBe(row.collectors['nvidia-smi']);
              expect(status(s.gateway ?? '', 'nvidia-smi', { node: row.agent })).toBe(
                row.collectors['nvidia-smi'],
              );
              expect(eventKeys(s)).toEqual(row.events);
              expect(s.gpus.gpus.map((g) => g.index)).toEqual(range(row.gpus));
              for (const g of range(row.gpus)) {
                const on = gpuOnSurfaces(s, g);
                expect(on.gatewayUp, `GPU ${g} via the gateway`).toBe(on.up);
                expect(on.gatewayNative, `GPU ${g} families via the gateway`).toEqual(on.native);
              }
              for (const [g, x] of Object.entries(row.xids ?? {})) {
                expect(compat(s.metrics, 'DCGM_FI_DEV_XID_ERRORS', Number(g))).toBe(x.xid);
                expect(
                  relayed(s, row.agent, 'gpulse_gpu_xid_errors_total', {
                    gpu: g,
                    xid: String(x.xid),
                  }),
                ).toBe(1);
              }
              for (const [node, c] of Object.entries(row.containers?.counters ?? {})) {
                const labels = { container_name: node };
                expect(relayed(s, row.agent, 'gpulse_container_oom_kills_total', labels)).toBe(
                  c.oomKills,
                );
                expect(relayed(s, row.agent, 'gpulse_container_gpu_oom_total', labels)).toBe(
                  c.gpuOoms,
                );
              }
            },
            { timeout: 45_000, interval: 500 },
          );
          const surf = s!;

          // Collectors: the same status on the agent and through the gateway.
          for (const c of ['nvidia-smi', 'dcgm'] as const) {
            expect(status(surf.metrics, c), c).toBe(row.collectors[c]);
            expect(status(surf.gateway ?? '', c, { node: row.agent }), `${c} relayed`).toBe(
              row.collectors[c],
            );
          }
          // No GPU at all: no per-GPU series on any surface (never zeros for GPUs nobody can see).
          if (row.gpus === 0) {
            expect(allSeries(surf.metrics, 'gpulse_gpu_up')).toEqual([]);
            expect(surf.metrics).not.toMatch(/^DCGM_FI_DEV_/m);
            expect(surf.gateway).not.toMatch(
              new RegExp(`^gpulse_gpu_\\w+\\{[^}]*node="${row.agent}"`, 'm'),
            );
          }

          for (const g of range(row.gpus)) {
            const on = gpuOnSurfaces(surf, g);
            const at = `GPU ${g}`;
            const api = on.api!;
            // Up or lost, alike everywhere.
            const up = row.lost === g ? 0 : 1;
            expect(on.up, at).toBe(up);
            expect(on.gatewayUp, at).toBe(up);
            expect(api.up, at).toBe(up === 1);
            // One identity: the UUID of the API is the one of the native, compat and relayed
            // series and of the GPU's events.
            const uuid = api.uuid;
            expect(seriesValue(surf.metrics, 'gpulse_gpu_up', { gpu: String(g), uuid }), at).toBe(
              up,
            );
            expect(relayed(surf, row.agent, 'gpulse_gpu_up', { gpu: String(g), uuid }), at).toBe(
              up,
            );
            expect(
              allSeries(surf.metrics, 'DCGM_FI_DEV_XID_ERRORS').find(
                (x) => x.labels.gpu === String(g),
              )?.labels.UUID,
              at,
            ).toBe(uuid);
            for (const e of on.events) expect(e.labels.uuid, `${at}: ${e.type}`).toBe(uuid);
            // Xids: the native counter, the compat value (the latest Xid, 0 for none), the API.
            const xid = row.xids?.[g];
            expect(
              allSeries(surf.metrics, 'gpulse_gpu_xid_errors_total')
                .filter((x) => x.labels.gpu === String(g))
                .map((x) => `${x.labels.xid}:${x.value}`),
              at,
            ).toEqual(xid ? [`${xid.xid}:1`] : []);
            expect(compat(surf.metrics, 'DCGM_FI_DEV_XID_ERRORS', g), at).toBe(xid?.xid ?? 0);
            expect(
              api.xids.recent.map((x) => [x.xid, x.source]),
              at,
            ).toEqual(xid ? [[xid.xid, xid.source]] : []);

            if (row.lost === g) {
              expect(api.lost, at).toMatchObject({ reason: 'Unknown Error' });
              expect(api.values, at).toEqual({});
              // dcgm-exporter shows a lost GPU by its Xid alone; natively: info, up 0, the Xid.
              expect(on.compat, at).toEqual(['DCGM_FI_DEV_XID_ERRORS']);
              expect(on.native, at).toEqual(
                expect.arrayContaining([
                  'gpulse_gpu_info',
                  'gpulse_gpu_up',
                  'gpulse_gpu_xid_errors_total',
                ]),
              );
              // No gauge at all (counters keep the total they had reached).
              expect(
                on.native.filter(
                  (n) => !['gpulse_gpu_info', 'gpulse_gpu_up'].includes(n) && !n.endsWith('_total'),
                ),
                at,
              ).toEqual([]);
              continue;
            }
            expect(api.lost, at).toBeNull();
            expect(on.compat, at).toContain('DCGM_FI_DEV_GPU_TEMP');

            // Throttle reasons: native gauges, the API, DCGM's bitmask and the relay agree.
            const reasons = [...(row.throttled?.[g] ?? [])].sort();
            expect(activeReasons(surf.metrics, g), at).toEqual(reasons);
            expect([...(api.throttle?.active ?? [])].sort(), at).toEqual(reasons);
            expect(
              maskReasons(compat(surf.metrics, 'DCGM_FI_DEV_CLOCK_THROTTLE_REASONS', g) ?? -1),
              at,
            ).toEqual(reasons);
            expect(
              activeReasons(surf.gateway ?? '', g, { site: SITE, node: row.agent }),
              at,
            ).toEqual(reasons);
            // A thermal slowdown holds the GPU at its slowdown temperature: the same degrees on
            // every surface (both tools read the same sensor).
            if (reasons.includes('hw_thermal_slowdown')) {
              const t = seriesValue(surf.metrics, 'gpulse_gpu_temperature_celsius', {
                gpu: String(g),
              });
              expect(t, at).toBeGreaterThan(85);
              expect(compat(surf.metrics, 'DCGM_FI_DEV_GPU_TEMP', g), at).toBe(t);
              expect(api.values.temperatureCelsius, at).toBe(t);
              expect(
                relayed(surf, row.agent, 'gpulse_gpu_temperature_celsius', { gpu: String(g) }),
                at,
              ).toBe(t);
            }

            // Memory: full means no byte free on any surface, and the same bytes used everywhere.
            const used = seriesValue(surf.metrics, 'gpulse_gpu_memory_used_bytes', {
              gpu: String(g),
            });
            const free = seriesValue(surf.metrics, 'gpulse_gpu_memory_free_bytes', {
              gpu: String(g),
            });
            if (row.memoryFull === g) {
              expect(free, at).toBe(0);
              expect(compat(surf.metrics, 'DCGM_FI_DEV_FB_FREE', g), at).toBe(0);
              expect(api.values.memoryFreeBytes, at).toBe(0);
              expect(
                relayed(surf, row.agent, 'gpulse_gpu_memory_free_bytes', { gpu: String(g) }),
                at,
              ).toBe(0);
              expect(compat(surf.metrics, 'DCGM_FI_DEV_FB_USED', g)! * MIB, at).toBe(used);
              expect(api.values.memoryUsedBytes, at).toBe(used);
            } else {
              expect(free, at).toBeGreaterThan(0);
              expect(compat(surf.metrics, 'DCGM_FI_DEV_FB_FREE', g), at).toBeGreaterThan(0);
            }
          }

          // Throttle time counts wall time: each active reason grows by at most 1 s per second
          // (not 2: the thermal reasons overlap). Natively and in DCGM's violation counter (ns):
          // the total since the episode began (the agent's start) is at most the time since its
          // launch, and Prometheus's rate is about 1 (bounds that tell 1 s/s from 0 and from 2).
          // The relay: the native total, give or take the MQTT lag (not twice it).
          const wall = (Date.now() - launchedAt.get(row.agent)!) / 1000;
          for (const [g, rs] of Object.entries(row.throttled ?? {})) {
            const counters: [string, number | undefined, string, number][] = rs.map((r) => [
              r,
              seriesValue(surf.metrics, 'gpulse_gpu_throttle_seconds_total', { gpu: g, reason: r }),
              `gpulse_gpu_throttle_seconds_total{job="gpulse",instance="${instance}",gpu="${g}",reason="${r}"}`,
              1,
            ]);
            if (rs.some((r) => r.includes('thermal'))) {
              const ns = compat(surf.metrics, 'DCGM_FI_DEV_THERMAL_VIOLATION', Number(g));
              counters.push([
                'DCGM_FI_DEV_THERMAL_VIOLATION',
                ns === undefined ? undefined : ns / 1e9,
                `DCGM_FI_DEV_THERMAL_VIOLATION{instance="${instance}",gpu="${g}"}`,
                1e9,
              ]);
            }
            for (const [what, total, q, unit] of counters) {
              expect(total, `GPU ${g} ${what}`).toBeGreaterThan(0);
              expect(total, `GPU ${g} ${what}`).toBeLessThanOrEqual(wall + 2);
              const v = await rate(q, unit);
              expect(v, q).toBeGreaterThan(0.6);
              expect(v, q).toBeLessThan(1.4);
            }
            for (const r of rs) {
              const native = seriesValue(surf.metrics, 'gpulse_gpu_throttle_seconds_total', {
                gpu: g,
                reason: r,
              })!;
              const via = relayed(surf, row.agent, 'gpulse_gpu_throttle_seconds_total', {
                gpu: g,
                reason: r,
              });
              expect(via, `GPU ${g} ${r} relayed`).toBeGreaterThan(native - 15);
              expect(via, `GPU ${g} ${r} relayed`).toBeLessThanOrEqual(native + 2);
            }
          }

          // Containers: counters natively and relayed, events, and attribution in the API and compat.
          if (row.containers) {
            for (const [name, c] of Object.entries(row.containers.counters)) {
              const labels = { container_name: name };
              expect(
                seriesValue(surf.metrics, 'gpulse_container_oom_kills_total', labels),
                name,
              ).toBe(c.oomKills);
              expect(
                seriesValue(surf.metrics, 'gpulse_container_gpu_oom_total', labels),
                name,
              ).toBe(c.gpuOoms);
            }
            const api = surf.gpus.gpus[0]!;
            expect(api.containers.map((c) => c.name)).toEqual([row.containers.onGpu0]);
            expect(
              allSeries(surf.metrics, 'DCGM_FI_DEV_GPU_UTIL').find((x) => x.labels.gpu === '0')
                ?.labels.container,
            ).toBe(row.containers.onGpu0);
            const gpuOom = surf.events.find((e) => e.type === 'container.gpu_oom');
            expect(gpuOom?.data).toMatchObject({
              framework: 'pytorch',
              requestedBytes: 1024 * MIB,
            });
            const kill = surf.events.find((e) => e.type === 'container.oom_kill');
            expect(kill?.data).toMatchObject({ killsThisRun: 1, memoryLimitBytes: 16 * MIB });
          }

          // MIG: the same GPU instances in the compat labels, native mig_info and the relay, with
          // the same memory in MiB and bytes.
          if (row.mig) {
            const byId = (
              rows: { labels: Record<string, string> }[],
              id: string,
              profile: string,
            ) => rows.map((r) => `${r.labels[id]}/${r.labels[profile]}`).sort();
            const fb = allSeries(surf.metrics, 'DCGM_FI_DEV_FB_USED').filter(
              (x) => x.labels.GPU_I_ID,
            );
            expect(byId(fb, 'GPU_I_ID', 'GPU_I_PROFILE')).toEqual([...row.mig].sort());
            expect(
              byId(allSeries(surf.metrics, 'gpulse_mig_info'), 'gpu_instance_id', 'profile'),
            ).toEqual([...row.mig].sort());
            expect(
              byId(
                allSeries(surf.gateway ?? '', 'gpulse_mig_info').filter(
                  (x) => x.labels.node === row.agent,
                ),
                'gpu_instance_id',
                'profile',
              ),
            ).toEqual([...row.mig].sort());
            for (const x of fb) {
              const native = seriesValue(surf.metrics, 'gpulse_mig_memory_used_bytes', {
                gpu_instance_id: x.labels.GPU_I_ID!,
              });
              expect(native, `GPU instance ${x.labels.GPU_I_ID}`).toBe(x.value * MIB);
            }
          }

          // Exactly the row's alerts fire, from the agent's own series and through the gateway.
          // (Counters and load medians need a few evaluations: polled until both sets match.)
          await vi.waitFor(
            async () => {
              const f = await firing(row.agent);
              expect(f.direct).toEqual([...row.alerts].sort());
              expect(f.relayed).toEqual([...row.alerts].sort());
            },
            { timeout: 40_000, interval: 1000 },
          );

          // NVIDIA's dashboard, at one instant a few seconds back: retried until Prometheus holds
          // that instant for this agent (a scrape may have timed out on a loaded machine).
          const shown = row.dashboard?.map(String);
          if (shown) {
            await vi.waitFor(() => expectNvidiaDashboardShows(prom!, instance, shown), {
              timeout: 20_000,
              interval: 1000,
            });
          }
        },
        150_000,
      );
    }

    it('fires no alert outside the matrix (the gateway, the broker link, the scrapes)', async () => {
      const instances = new Set([...ports.values()].map((p) => `127.0.0.1:${p}`));
      const nodes = new Set(AGENTS.map((a) => a.node));
      const { alerts } = await prom!.api<{ alerts: Alert[] }>('/api/v1/alerts');
      const stray = alerts.filter(
        (a) =>
          a.state === 'firing' &&
          !(a.labels.job === 'gpulse' && instances.has(a.labels.instance ?? '')) &&
          !(a.labels.job === 'gpulse-gateway' && nodes.has(a.labels.node ?? '')),
      );
      expect(stray.map(alertKey)).toEqual([]);
      // Every device is up at the gateway.
      const body = await (await fetch(`${gatewayBase}/metrics`)).text();
      expect(
        allSeries(body, 'gpulse_fleet_device_up')
          .map((x) => `${x.labels.node}=${x.value}`)
          .sort(),
      ).toEqual(AGENTS.map((a) => `${a.node}=1`).sort());
    });
  },
);
