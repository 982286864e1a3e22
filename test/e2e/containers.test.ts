// End to end: the built CLI with the simulated nvidia-smi reports real containerized PIDs as GPU
// processes; a real Docker Engine (and Podman's Docker-compatible API) names their containers.
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { GpusJson } from '../../agent/components/gpu-health/gpus-api.js';
import { allSeries, REPO_ROOT, seriesValue, startCli, type CliProcess } from '../helpers/cli.js';
import {
  BUSYBOX,
  DOCKER_TOOLS,
  PODMAN_TOOLS,
  runContainer,
  startDockerd,
  startPodman,
  type TestEngine,
} from '../helpers/dockerd.js';
import { describeWithTools } from '../helpers/tools.js';

const NOBODY = 65534;

let cli: CliProcess | undefined;
afterEach(async () => {
  await cli?.stop();
  cli = undefined;
});

/**
 * `gpulse simulate` with the dcgm-exporter names, `pids` on GPU 0, 1, ... of an H100 box,
 * against the engine's socket.
 */
async function simulateWith(engine: TestEngine, ...pids: number[]): Promise<CliProcess> {
  return startCli(
    [
      'simulate',
      '--profile',
      pids.length > 1 ? 'h100-8x' : 'h100',
      '--metrics-compat',
      'dcgm',
      ...pids.flatMap((pid, gpu) => ['--process', `${pid}:${gpu}:4096:python`]),
    ],
    {
      GPULSE_DOCKER_SOCKET: engine.socket,
      GPULSE_DOCKER_INTERVAL: '1s',
      GPULSE_NVIDIA_SMI_INTERVAL: '1s',
      GPULSE_DCGM_INTERVAL: '1s',
      GPULSE_HOST_MODE: 'off',
    },
  );
}

/** GET /api/v1/gpus of the agent. */
async function gpusApi(agent: CliProcess): Promise<GpusJson> {
  const r = await agent.get('/api/v1/gpus');
  expect(r.status).toBe(200);
  return JSON.parse(r.body) as GpusJson;
}

/** The dcgm-exporter series of one GPU, as Grafana's dashboard groups them by container. */
function compatLabels(body: string, gpu: number): Record<string, string> | undefined {
  return allSeries(body, 'DCGM_FI_DEV_GPU_UTIL').find((x) => x.labels.gpu === String(gpu))?.labels;
}

/** The attribution scenario of the issue, for one engine. */
async function attributionScenario(engine: TestEngine, image: string): Promise<void> {
  const id = await runContainer(engine.docker, { name: 'trainer', cmd: ['sleep', '300'] });
  const pid = (await engine.docker.getContainer(id).inspect()).State.Pid;
  expect(pid).toBeGreaterThan(1);
  cli = await simulateWith(engine, pid);
  const labels = { pid: String(pid), container_id: id, container_name: 'trainer', image };
  const body = await cli.waitForMetrics(
    (b) =>
      seriesValue(b, 'gpulse_gpu_process_memory_used_bytes', labels) !== undefined &&
      (seriesValue(b, 'gpulse_container_gpu_utilization_ratio', { container_id: id }) ?? 0) > 0,
    45_000,
  );
  expect(seriesValue(body, 'gpulse_gpu_process_memory_used_bytes', labels)).toBe(4096 * 1048576);
  const perContainer = allSeries(body, 'gpulse_container_gpu_memory_used_bytes');
  expect(perContainer).toHaveLength(1);
  expect(perContainer[0]).toMatchObject({
    labels: {
      container_id: id,
      container_name: 'trainer',
      image,
      pod: '',
      namespace: '',
      gpu: '0',
    },
    value: 4096 * 1048576,
  });
  expect(perContainer[0]?.labels.uuid).toMatch(/^GPU-/);
  // pmon: the only process on the GPU gets the whole (simulated) load.
  const util =
    seriesValue(body, 'gpulse_container_gpu_utilization_ratio', { container_id: id }) ?? 0;
  expect(util).toBeGreaterThan(0);
  expect(util).toBeLessThanOrEqual(1);
  expect(seriesValue(body, 'gpulse_gpu_process_utilization_ratio', labels)).toBe(util);
  // The same attribution reaches the GPU API and the dcgm-exporter names.
  const ref = { name: 'trainer', id, namespace: null, pod: null };
  const compat = await cli.waitForMetrics((b) => compatLabels(b, 0)?.container === 'trainer');
  expect(compatLabels(compat, 0)).toMatchObject({ container: 'trainer', pod: '', namespace: '' });
  const api = await gpusApi(cli);
  expect(api.gpus[0]?.processes).toEqual([
    { pid, name: 'python', usedMemoryBytes: 4096 * 1048576, container: ref },
  ]);
  expect(api.gpus[0]?.containers).toEqual([ref]);
  await engine.docker.getContainer(id).remove({ force: true });
}

describeWithTools('attribution end to end with a real dockerd', DOCKER_TOOLS, () => {
  let engine: TestEngine;
  beforeAll(async () => {
    engine = await startDockerd();
  }, 120_000);
  afterAll(async () => {
    await engine?.destroy();
  }, 60_000);

  it('the simulator reports a containerized process; /metrics shows its container name and image', async () => {
    await attributionScenario(engine, BUSYBOX);
  }, 90_000);

  it('a Kubernetes container: the API and the dcgm-exporter series name its container, pod and namespace', async () => {
    // What the kubelet's dockershim (cri-dockerd) puts on a pod's containers.
    const k8s = await runContainer(engine.docker, {
      name: 'k8s_trainer_trainer-0_ml_4b7c_0',
      cmd: ['sleep', '300'],
      labels: {
        'io.kubernetes.pod.name': 'trainer-0',
        'io.kubernetes.pod.namespace': 'ml',
        'io.kubernetes.container.name': 'trainer',
      },
    });
    const plain = await runContainer(engine.docker, { name: 'notebook', cmd: ['sleep', '300'] });
    const pidOf = async (id: string) => (await engine.docker.getContainer(id).inspect()).State.Pid;
    cli = await simulateWith(engine, await pidOf(k8s), await pidOf(plain));
    const body = await cli.waitForMetrics(
      (b) =>
        compatLabels(b, 0)?.container === 'trainer' && compatLabels(b, 1)?.container === 'notebook',
      45_000,
    );
    expect(compatLabels(body, 0)).toMatchObject({
      container: 'trainer',
      pod: 'trainer-0',
      namespace: 'ml',
    });
    expect(compatLabels(body, 1)).toMatchObject({ container: 'notebook', pod: '', namespace: '' });
    // GPUs nobody's process runs on carry no container.
    expect(compatLabels(body, 2)).toMatchObject({ container: '', pod: '', namespace: '' });
    const api = await gpusApi(cli);
    expect(api.gpus[0]?.containers).toEqual([
      { name: 'trainer', id: k8s, namespace: 'ml', pod: 'trainer-0' },
    ]);
    expect(api.gpus[1]?.containers).toEqual([
      { name: 'notebook', id: plain, namespace: null, pod: null },
    ]);
    expect(api.gpus[2]?.containers).toEqual([]);
    for (const id of [k8s, plain]) await engine.docker.getContainer(id).remove({ force: true });
  }, 90_000);

  it('a container that requested no GPU but runs a GPU process has its GPU OOMs read from its logs', async () => {
    // Privileged or `--device /dev/nvidia0` in real life: no request says "GPU". It prints a
    // real PyTorch OOM on SIGUSR1, once the agent runs (earlier lines would be history).
    const oom = readFileSync(
      join(REPO_ROOT, 'collectors/docker/fixtures/logs/pytorch-oom.log'),
      'utf8',
    )
      .split('\n')
      .find((l) => l.startsWith('RuntimeError: CUDA out of memory. Tried to allocate 1024.00 MiB'));
    expect(oom).toBeDefined();
    const script = `trap 'printf "%s\\n" "$LOG"' USR1; while :; do sleep 1; done`;
    const gpuUser = await runContainer(engine.docker, {
      name: 'privileged-trainer',
      cmd: ['sh', '-c', script],
      env: [`LOG=${oom ?? ''}`],
    });
    // The same lines from a container with no GPU process: not a GPU container, not read.
    const cpuOnly = await runContainer(engine.docker, {
      name: 'cpu-only',
      cmd: ['sh', '-c', script],
      env: [`LOG=${oom ?? ''}`],
    });
    const pid = (await engine.docker.getContainer(gpuUser).inspect()).State.Pid;
    cli = await simulateWith(engine, pid);
    await cli.waitForMetrics(
      (b) =>
        seriesValue(b, 'gpulse_docker_log_followers') === 1 &&
        seriesValue(b, 'gpulse_container_gpu_oom_total', { container_id: gpuUser }) === 0,
      45_000,
    );
    for (const id of [gpuUser, cpuOnly])
      await engine.docker.getContainer(id).kill({ signal: 'USR1' });
    const body = await cli.waitForMetrics(
      (b) => seriesValue(b, 'gpulse_container_gpu_oom_total', { container_id: gpuUser }) === 1,
      30_000,
    );
    expect(seriesValue(body, 'gpulse_container_gpu_oom_total', { container_id: cpuOnly })).toBe(0);
    expect(seriesValue(body, 'gpulse_docker_log_followers')).toBe(1);
    // The store logs a snapshot's events just after it announces the snapshot, so a scrape can
    // see the counter a few ms before the event is in the log.
    const gpuOoms = async () => {
      const { events } = JSON.parse(
        (await cli!.get('/api/v1/events?type=container.gpu_oom')).body,
      ) as { events: { labels: Record<string, string>; data: Record<string, unknown> }[] };
      return events.map((e) => [e.labels.container_name, e.data.framework, e.data.requestedBytes]);
    };
    await expect
      .poll(gpuOoms, { timeout: 10_000 })
      .toEqual([['privileged-trainer', 'pytorch', 1024 * 1048576]]);
    for (const id of [gpuUser, cpuOnly])
      await engine.docker.getContainer(id).remove({ force: true });
  }, 90_000);

  it('permission denied on the socket: one line naming the socket and the fix, up 0, the rest runs', async () => {
    // The engine's directory is private to root; let others reach the socket (0660 root:docker).
    chmodSync(engine.dir, 0o755);
    cli = await startCli(
      ['run'],
      {
        GPULSE_DOCKER_SOCKET: engine.socket,
        GPULSE_DOCKER_INTERVAL: '1s',
        GPULSE_NVIDIA_SMI_MODE: 'off',
      },
      { uid: NOBODY, gid: NOBODY },
    );
    const body = await cli.waitForMetrics(
      (b) =>
        seriesValue(b, 'gpulse_collector_status', {
          collector: 'docker',
          status: 'error',
          reason: 'permission_denied',
        }) === 1 && seriesValue(b, 'gpulse_collector_up', { collector: 'host' }) === 1,
    );
    expect(seriesValue(body, 'gpulse_collector_up', { collector: 'docker' })).toBe(0);
    expect(seriesValue(body, 'gpulse_host_memory_total_bytes')).toBeGreaterThan(0);
    // Said once, not on every retry: once the third failed cycle is counted, the second one's
    // warning (a cycle earlier) would have been logged.
    await cli.waitForMetrics(
      (b) =>
        (seriesValue(b, 'gpulse_collector_errors_total', {
          collector: 'docker',
          reason: 'permission_denied',
        }) ?? 0) >= 3,
    );
    const said = cli.logs.filter((r) =>
      String(r.msg).includes(`permission denied on the Docker socket ${engine.socket}`),
    );
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ collector: 'docker', level: 40 });
    expect(String(said[0]?.msg)).toContain('usermod -aG docker');
    expect(String(said[0]?.msg)).toContain('--group-add');
  }, 60_000);
});

describeWithTools('attribution end to end with Podman', PODMAN_TOOLS, () => {
  let engine: TestEngine;
  beforeAll(async () => {
    engine = await startPodman();
  }, 120_000);
  afterAll(async () => {
    await engine?.destroy();
  }, 60_000);

  it('the same scenario through the Docker-compatible API (libpod-<id> cgroups)', async () => {
    await attributionScenario(engine, `localhost/${BUSYBOX}`);
  }, 90_000);
});
