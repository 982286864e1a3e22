// End to end: the built CLI with the simulated nvidia-smi reports real containerized PIDs as GPU
// processes; a real Docker Engine (and Podman's Docker-compatible API) names their containers.
import { chmodSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { allSeries, seriesValue, startCli, type CliProcess } from '../helpers/cli.js';
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

/** `gpulse simulate` with `pid` on GPU 0 of a one-GPU H100, against the engine's socket. */
async function simulateWith(engine: TestEngine, pid: number): Promise<CliProcess> {
  return startCli(['simulate', '--profile', 'h100', '--process', `${pid}:0:4096:python`], {
    GPULSE_DOCKER_SOCKET: engine.socket,
    GPULSE_DOCKER_INTERVAL: '1s',
    GPULSE_NVIDIA_SMI_INTERVAL: '1s',
    GPULSE_HOST_MODE: 'off',
  });
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
    await new Promise((r) => setTimeout(r, 2500));
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
