// The observability stack end to end, container/edge/drift/Jetson part: a private Docker Engine
// runs a GPU job that logs CUDA OOMs and a job that outgrows its memory limit; agents publish
// to a real Mosquitto, the fleet gateway serves them, one edge device leaves; a model's inputs
// drift. A real Prometheus with deploy/prometheus/alerts.yaml (only `for:` shortened) scrapes it
// all: every panel query of the containers, edge and Jetson dashboards and the drift panels must
// return series (prometheus-e2e.test.ts runs the rest) and the alerts these stand for must fire.
// Worst case bounded at 85 s (start 45 s, alerts 25 s, panels 15 s).
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { parse, stringify } from 'yaml';
import { startCli, type CliProcess } from '../helpers/cli.js';
import {
  BUSYBOX,
  DOCKER_TOOLS,
  runContainer,
  startDockerd,
  type TestEngine,
} from '../helpers/dockerd.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import {
  gpuPod,
  startPodResourcesServer,
  type PodResourcesServer,
} from '../helpers/pod-resources-server.js';
import { startPrometheus, type PrometheusServer } from '../helpers/prometheus.js';
import { describeWithTools, tools } from '../helpers/tools.js';
import { deployPath } from './deploy-files.js';
import { emptyPanels, waitForAlerts } from './panel-check.js';

/** Alerts the scenarios below must fire. */
const EXPECTED_ALERTS = [
  'GpulseContainerGpuOutOfMemory', // agent "containers": CUDA OOM in the trainer's log
  'GpulseContainerOomKilled', // agent "containers": the leaky job hits its memory limit
  'GpulseModelDrift', // agent "containers": shifted inputs of model fraud
  'GpulseModelFeatureDrift',
  'GpulseEdgeDeviceOffline', // device "nano" left
  'GpulseAgentDown', // ... and so did its scrape target
];

/** Rows of a model's input: `amount` around 100 + 50 × shift, `channel` web or app. */
function rows(n: number, shift: number): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => ({
    amount: 100 + 50 * shift + ((i * 37) % 100),
    channel: (i + shift) % 3 === 0 ? 'app' : 'web',
  }));
}

/** POSTs JSON to an agent; throws with the answer unless it is a 2xx. */
async function postJson(agent: CliProcess, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${agent.base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
}

/** Waits until Prometheus holds a sample of `query`. */
async function scraped(prom: PrometheusServer, query: string): Promise<void> {
  await vi.waitFor(
    async () => {
      const { result } = await prom.api<{ result: unknown[] }>('/api/v1/query', { query });
      if (result.length === 0) throw new Error(`Prometheus has no ${query} after 15 s`);
    },
    { timeout: 15_000, interval: 500 },
  );
}

describeWithTools(
  'containers, edge fleet, drift and Jetson dashboards against a real Prometheus',
  [...tools('prometheus', 'mosquitto'), ...DOCKER_TOOLS],
  () => {
    const agents: CliProcess[] = [];
    let gateway: CliProcess | undefined;
    let engine: TestEngine | undefined;
    let mosquitto: Mosquitto | undefined;
    let prom: PrometheusServer | undefined;
    let kubelet: PodResourcesServer | undefined;
    let tmp = '';
    let started = 0;

    beforeAll(async () => {
      tmp = await mkdtemp(join(tmpdir(), 'gpulse-stack-e2e-'));
      started = Date.now();
      const [docker, broker, pods] = await Promise.all([
        startDockerd(),
        startMosquitto(),
        // A stand-in kubelet (the real pod-resources v1 API): a notebook pod given GPU 0.
        startPodResourcesServer({
          pods: [gpuPod('notebook-0', 'research', 'jupyter', ['0'])],
          allocatable: [{ resource_name: 'nvidia.com/gpu', device_ids: ['0'] }],
        }),
      ]);
      engine = docker;
      mosquitto = broker;
      kubelet = pods;
      // A GPU job (GPU 0 through NVIDIA_VISIBLE_DEVICES, as the NVIDIA runtime would see it; half
      // a CPU) whose shell the simulated nvidia-smi reports on GPU 0 and which logs CUDA OOMs; a
      // job that outgrows its 16 MiB and is restarted; a job that finished with exit code 3.
      const created = await docker.docker.createContainer({
        name: 'trainer',
        Image: BUSYBOX,
        Cmd: [
          'sh',
          '-c',
          'while true; do echo "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"; sleep 2; done',
        ],
        Env: ['NVIDIA_VISIBLE_DEVICES=0'],
        HostConfig: { NetworkMode: 'none', NanoCpus: 500_000_000 },
      });
      await created.start();
      const trainer = created.id;
      await runContainer(docker.docker, { name: 'done', cmd: ['sh', '-c', 'exit 3'] });
      await runContainer(docker.docker, {
        name: 'leaky',
        cmd: ['sh', '-c', 'sleep 3; a=$(head -c 64000000 /dev/zero | tr "\\0" a)'],
        memory: 16 * 1048576,
        restart: 'on-failure',
      });
      const trainerPid = (await docker.docker.getContainer(trainer).inspect()).State.Pid;
      const publish = (node: string): NodeJS.ProcessEnv => ({
        GPULSE_MQTT_URL: broker.url,
        GPULSE_MQTT_SITE: 'lab',
        GPULSE_MQTT_NODE: node,
        GPULSE_MQTT_INTERVAL: '1s',
        GPULSE_MQTT_STATUS_INTERVAL: '1s',
        GPULSE_MQTT_SPOOL_DIR: join(tmp, 'spool', node),
      });
      const sim = (args: string[], env: NodeJS.ProcessEnv) =>
        startCli(['simulate', '--interval', '1s', ...args], { GPULSE_LOG_LEVEL: 'warn', ...env });
      // Started together, every one that started is stopped in afterAll even when one failed.
      const starting = await Promise.allSettled([
        sim(['--profile', 'h100', '--process', `${trainerPid}:0:4096:python`], {
          GPULSE_DOCKER_SOCKET: docker.socket,
          GPULSE_DOCKER_INTERVAL: '1s',
          GPULSE_DRIFT_INTERVAL: '1s',
          GPULSE_DRIFT_MIN_SAMPLES: '50',
          GPULSE_DRIFT_HYSTERESIS_RAISE: '1',
          // Set too: the raise variable alone fails validation of `clear` (reported to drift).
          GPULSE_DRIFT_HYSTERESIS_CLEAR: '3',
          ...publish('h100'),
        }),
        sim(['--profile', 'jetson-orin', '--tegrastats-interval', '1s'], publish('orin')),
        sim(['--profile', 'jetson-nano', '--tegrastats-interval', '1s'], publish('nano')),
        // A Kubernetes node: its one GPU allocated to the notebook pod and left idle (its panels;
        // GpulseGpuAllocatedIdle needs 5 min of samples for its rate: promtool tests it).
        sim(['--profile', 'h100', '--process-count', '0'], {
          GPULSE_DOCKER_MODE: 'off',
          GPULSE_POD_RESOURCES_SOCKET: pods.socket,
          GPULSE_POD_RESOURCES_INTERVAL: '1s',
          GPULSE_POD_RESOURCES_IDLE_AFTER: '1s',
        }),
      ]);
      for (const r of starting) if (r.status === 'fulfilled') agents.push(r.value);
      for (const r of starting) if (r.status === 'rejected') throw r.reason;
      gateway = await startCli(['gateway', '--mqtt-url', broker.url], {
        GPULSE_LOG_LEVEL: 'warn',
        GPULSE_GATEWAY_DEVICE_TIMEOUT: '3s',
      });

      const rules = parse(readFileSync(deployPath('prometheus', 'alerts.yaml'), 'utf8')) as {
        groups: { rules: { for?: string }[] }[];
      };
      for (const g of rules.groups) for (const r of g.rules) r.for = '0s';
      const config = {
        global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '1s' },
        rule_files: ['alerts.yaml'],
        scrape_configs: [
          {
            job_name: 'gpulse',
            static_configs: [{ targets: agents.map((a) => `127.0.0.1:${a.port}`) }],
          },
          // As in deploy/compose: the devices' series keep their own site and node.
          {
            job_name: 'gpulse-gateway',
            honor_labels: true,
            static_configs: [{ targets: [`127.0.0.1:${gateway.port}`] }],
          },
        ],
      };
      prom = await startPrometheus(join(tmp, 'prometheus'), stringify(config), {
        'alerts.yaml': stringify(rules),
      });

      // Drift: a reference, then inputs from elsewhere (and one value of the wrong type).
      const h100 = agents[0]!;
      await postJson(h100, '/api/v1/models/fraud/reference', rows(1000, 0));
      await postJson(h100, '/api/v1/models/fraud/observations', [
        ...rows(300, 5),
        { amount: 'not a number', channel: 'web' },
      ]);
      // The edge device "nano" leaves once the gateway and Prometheus have seen it.
      await scraped(prom, 'gpulse_fleet_device_up{node="nano"}');
      // Its own series (IRAM, VIC load: only this module has them), from its own scrape.
      // Several samples: a dashboard's 2 s steps can fall between one sample and the staleness
      // marker that follows it when the target goes away.
      await scraped(prom, 'count_over_time(gpulse_jetson_iram_total_bytes{job="gpulse"}[1m]) >= 4');
      await scraped(
        prom,
        'count_over_time(gpulse_jetson_engine_utilization_ratio{job="gpulse"}[1m]) >= 4',
      );
      await agents[2]!.stop();
    }, 45_000);

    afterAll(async () => {
      await prom?.stop();
      await Promise.all([...agents, ...(gateway ? [gateway] : [])].map((a) => a.stop()));
      await mosquitto?.destroy();
      await engine?.destroy();
      await kubelet?.close();
      if (tmp) await rm(tmp, { recursive: true, force: true });
    }, 60_000);

    it('fires the container, drift and edge alerts', async () => {
      const firing = await waitForAlerts(prom!, EXPECTED_ALERTS, 20_000);
      // An agent that publishes over MQTT and is scraped too fires twice: once from its own
      // target, once through the gateway (job gpulse-gateway, with site and node).
      const byName = (n: string) => firing.filter((a) => a.labels.alertname === n);
      expect(
        new Set(byName('GpulseContainerGpuOutOfMemory').map((a) => a.labels.container_name)),
      ).toEqual(new Set(['trainer']));
      expect(
        new Set(byName('GpulseContainerOomKilled').map((a) => a.labels.container_name)),
      ).toEqual(new Set(['leaky']));
      expect(new Set(byName('GpulseModelDrift').map((a) => a.labels.model))).toEqual(
        new Set(['fraud']),
      );
      expect(byName('GpulseModelFeatureDrift').map((a) => a.labels.feature)).toContain('amount');
      expect(byName('GpulseEdgeDeviceOffline').map((a) => a.labels.node)).toEqual(['nano']);
      // (A live agent's 1 s scrape timing out under load may fire it too: `for:` is 0s here.)
      expect(byName('GpulseAgentDown').map((a) => a.labels.instance)).toContain(
        `127.0.0.1:${agents[2]!.port}`,
      );
      for (const a of firing) {
        expect(a.annotations.description, a.labels.alertname).not.toMatch(/<no value>|\{\{/);
      }
    }, 25_000);

    it('returns series for every panel query and template variable of its dashboards', async () => {
      const result = await emptyPanels(prom!, { stack: true, startedMs: started, limitMs: 10_000 });
      expect(result.checked).toBeGreaterThan(60);
      expect(result.empty).toEqual([]);
      expect(result.gaps.map((g) => g.split(':')[0])).toEqual([
        // No CRI runtime here (SIMULATOR_GAPS): a real containerd runs in the cri suites.
        'gpulse-containers.json / CRI runtime / A',
        'gpulse-containers.json / CRI calls / A',
        'gpulse-containers.json / Containers the runtime listed / A',
        'gpulse-jetson.json / Denver cores (MTS) / A',
      ]);
    }, 15_000);
  },
);
