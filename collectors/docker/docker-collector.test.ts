import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { AgentEvent } from '../../agent/core/events.js';
import type { GpuProcess } from '../../agent/core/facts.js';
import {
  attributeProcesses,
  ProcessContainers,
} from '../../agent/attribution/process-containers.js';
import type { PolledCollector } from '../../agent/core/types.js';
import { startAgentInProcess, type InProcessAgent } from '../../test/helpers/agent.js';
import { allSeries, seriesValue } from '../../test/helpers/cli.js';
import {
  BUSYBOX,
  DOCKER_TOOLS,
  runContainer,
  startDockerd,
  type TestEngine,
} from '../../test/helpers/dockerd.js';
import { captureLogger } from '../../test/helpers/log-sink.js';
import { describeWithTools } from '../../test/helpers/tools.js';

const LOGS = join(import.meta.dirname, 'fixtures', 'logs');
const MIB = 1024 * 1024;
// Allocates 64 MB in a shell variable: the kernel kills it under a 16 MiB limit (environment.md).
const ALLOCATE_64MB = ['sh', '-c', 'a=$(head -c 64000000 /dev/zero | tr "\\0" a)'];

/** Descriptors this process holds on files whose path contains `text`. */
function openFilesUnder(text: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).includes(text)) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** Data lines of a logs/ fixture snippet (after `# source: <source>`). */
function snippet(file: string, source: string): string[] {
  const out: string[] = [];
  let on = false;
  for (const line of readFileSync(join(LOGS, file), 'utf8').split('\n')) {
    if (line.startsWith('# source:')) on = line.startsWith(`# source: ${source} `);
    else if (on && !line.startsWith('#') && line.trim() !== '') out.push(line);
  }
  return out;
}
const dataLines = (file: string) =>
  readFileSync(join(LOGS, file), 'utf8')
    .split('\n')
    .filter((l) => !l.startsWith('#') && l.trim() !== '');

/** A container that prints `lines` and exits; marked as a GPU container the fallback way. */
const printer = (lines: readonly string[]) => ({
  cmd: ['sh', '-c', 'printf "%s\\n" "$GPULSE_TEST_LOG"; sleep 1'],
  env: ['NVIDIA_VISIBLE_DEVICES=0', `GPULSE_TEST_LOG=${lines.join('\n')}`],
});

/** A stand-in GPU collector: reports the given host PIDs as GPU processes, attributed like nvidia-smi's. */
function fakeGpu(pids: () => number[]): PolledCollector {
  const containers = new ProcessContainers({ procRoot: '/proc', now: () => Date.now() });
  return {
    kind: 'polled',
    name: 'fake-gpu',
    intervalMs: 500,
    timeoutMs: 1000,
    collect: () => {
      const procs: GpuProcess[] = pids().map((pid, i) => ({
        pid,
        gpuUuid: 'GPU-00000000-0000-0000-0000-000000000000',
        gpuIndex: 0,
        processName: i === 0 ? 'python' : 'node',
        usedMemoryBytes: (i + 1) * 1024 * MIB,
      }));
      return Promise.resolve({
        samples: [],
        facts: { gpuProcesses: attributeProcesses(procs, containers) },
      });
    },
  };
}

async function events(agent: InProcessAgent, query: string): Promise<AgentEvent[]> {
  const r = await agent.getJson(`/api/v1/events?${query}`);
  expect(r.status).toBe(200);
  return (r.body as { events: AgentEvent[] }).events;
}

describeWithTools('docker collector against a real dockerd', DOCKER_TOOLS, () => {
  let engine: TestEngine;
  let agent: InProcessAgent;
  let gpuPids: number[] = [];

  beforeAll(async () => {
    engine = await startDockerd();
    agent = await startAgentInProcess(
      { GPULSE_DOCKER_SOCKET: engine.socket, GPULSE_DOCKER_INTERVAL: '1s' },
      captureLogger('warn').log,
      [fakeGpu(() => gpuPids)],
    );
    // Containers below are created after the first listing: they are news, not history.
    await agent.waitForMetrics(
      (b) => seriesValue(b, 'gpulse_collector_up', { collector: 'docker' }) === 1,
    );
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    await engine?.destroy();
  }, 60_000);

  it('reports a running container with its Kubernetes labels, limits and usage from cgroup files', async () => {
    const id = await runContainer(engine.docker, {
      name: 'k8s_main_trainer-0_ml_0123_0',
      cmd: ['sh', '-c', 'while true; do :; done & sleep 300'],
      memory: 64 * MIB,
      labels: {
        'io.kubernetes.pod.name': 'trainer-0',
        'io.kubernetes.pod.namespace': 'ml',
        'io.kubernetes.container.name': 'main',
        'com.docker.compose.project': 'lab',
        'com.docker.compose.service': 'trainer',
      },
    });
    const l = {
      container_id: id,
      container_name: 'main',
      image: BUSYBOX,
      pod: 'trainer-0',
      namespace: 'ml',
    };
    const body = await agent.waitForMetrics(
      (b) => (seriesValue(b, 'gpulse_container_cpu_cores_used', l) ?? 0) > 0.2,
    );
    expect(seriesValue(body, 'gpulse_container_running', l)).toBe(1);
    expect(seriesValue(body, 'gpulse_container_memory_limit_bytes', l)).toBe(64 * MIB);
    expect(seriesValue(body, 'gpulse_container_memory_usage_bytes', l)).toBeGreaterThan(0);
    expect(seriesValue(body, 'gpulse_container_memory_working_set_bytes', l)).toBeGreaterThan(0);
    // The busy loop uses about one core (less on a loaded two-core host).
    expect(seriesValue(body, 'gpulse_container_cpu_cores_used', l)).toBeLessThan(1.3);
    expect(seriesValue(body, 'gpulse_container_cpu_usage_seconds_total', l)).toBeGreaterThan(0);
    const top = await engine.docker.getContainer(id).top();
    expect(seriesValue(body, 'gpulse_container_pids', l)).toBe(top.Processes?.length);
    // --network none: only loopback, which is not counted.
    expect(seriesValue(body, 'gpulse_container_network_receive_bytes_total', l)).toBe(0);
    expect(
      seriesValue(body, 'gpulse_container_info', {
        ...l,
        docker_name: 'k8s_main_trainer-0_ml_0123_0',
        compose_project: 'lab',
        compose_service: 'trainer',
      }),
    ).toBe(1);
    expect(seriesValue(body, 'gpulse_container_oom_kills_total', l)).toBe(0);
    // Cgroup files are read through kept descriptors, closed once the container is gone.
    expect(openFilesUnder(id)).toBeGreaterThanOrEqual(5);
    await engine.docker.getContainer(id).remove({ force: true });
    await agent.waitForMetrics((b) => seriesValue(b, 'gpulse_container_running', l) === undefined);
    expect(openFilesUnder(id)).toBe(0);
  });

  it('attributes GPU processes to their container: /metrics names it, a host process says ""', async () => {
    const id = await runContainer(engine.docker, { name: 'gpu-job', cmd: ['sleep', '300'] });
    const pid = (await engine.docker.getContainer(id).inspect()).State.Pid;
    gpuPids = [pid, process.pid];
    const inContainer = {
      pid: String(pid),
      container_id: id,
      container_name: 'gpu-job',
      image: BUSYBOX,
    };
    const body = await agent.waitForMetrics(
      (b) => seriesValue(b, 'gpulse_gpu_process_memory_used_bytes', inContainer) !== undefined,
    );
    expect(seriesValue(body, 'gpulse_gpu_process_memory_used_bytes', inContainer)).toBe(1024 * MIB);
    expect(
      seriesValue(body, 'gpulse_gpu_process_memory_used_bytes', {
        pid: String(process.pid),
        container_id: '',
        container_name: '',
        image: '',
      }),
    ).toBe(2048 * MIB);
    expect(allSeries(body, 'gpulse_container_gpu_memory_used_bytes')).toEqual([
      {
        labels: {
          container_id: id,
          container_name: 'gpu-job',
          image: BUSYBOX,
          pod: '',
          namespace: '',
          gpu: '0',
          uuid: 'GPU-00000000-0000-0000-0000-000000000000',
        },
        value: 1024 * MIB,
      },
    ]);
    gpuPids = [];
    await engine.docker.getContainer(id).remove({ force: true });
  });

  it('counts a --memory 16m container that allocates 64 MB as one OOM kill, with one event', async () => {
    const id = await runContainer(engine.docker, {
      name: 'oom',
      cmd: ALLOCATE_64MB,
      memory: 16 * MIB,
    });
    const l = { container_id: id, container_name: 'oom' };
    await agent.waitForMetrics(
      (b) =>
        seriesValue(b, 'gpulse_container_oom_kills_total', l) === 1 &&
        seriesValue(b, 'gpulse_container_exit_code', l) === 137,
    );
    const state = (await engine.docker.getContainer(id).inspect()).State;
    expect(state.OOMKilled).toBe(true);
    // The oom event, OOMKilled, the exit code and (if read in time) the cgroup counter all saw it:
    // a few more cycles must not count it again. Two more successful cycles (1 s apart) are seen
    // in the docker collector's last-success time rather than waited for with a fixed sleep.
    const cycle = (b: string) =>
      seriesValue(b, 'gpulse_collector_last_success_timestamp_seconds', { collector: 'docker' }) ??
      0;
    const seen = cycle(await agent.metrics());
    const later = await agent.waitForMetrics((b) => cycle(b) >= seen + 2);
    expect(seriesValue(later, 'gpulse_container_oom_kills_total', l)).toBe(1);
    const got = (await events(agent, 'type=container.oom_kill')).filter(
      (e) => e.labels.container_id === id,
    );
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({
      type: 'container.oom_kill',
      severity: 'critical',
      source: 'docker',
      labels: { container_id: id, container_name: 'oom', image: BUSYBOX, pod: '', namespace: '' },
      data: { memoryLimitBytes: 16 * MIB },
    });
    expect(['oom_event', 'oom_killed', 'cgroup_counter']).toContain(got[0]?.data?.detectedBy);
    expect(got[0]?.message).toContain('killed by the kernel OOM killer, memory limit 16 MiB');
  });

  it('counts a real PyTorch OOM traceback in a GPU container log as one GPU OOM', async () => {
    const traceback = snippet('pytorch-oom.log', 'pytorch/pytorch#18853');
    expect(traceback.length).toBeGreaterThan(10);
    const id = await runContainer(engine.docker, { name: 'torch-oom', ...printer(traceback) });
    const l = { container_id: id, container_name: 'torch-oom' };
    await agent.waitForMetrics((b) => seriesValue(b, 'gpulse_container_gpu_oom_total', l) === 1);
    // The event is logged just after the snapshot that counts it is announced: poll, not read once.
    let got: AgentEvent[] = [];
    await vi.waitFor(async () => {
      got = (await events(agent, 'type=container.gpu_oom')).filter(
        (e) => e.labels.container_id === id,
      );
      expect(got).toHaveLength(1);
    });
    expect(got[0]?.data).toMatchObject({
      framework: 'pytorch',
      gpu: '0',
      requestedBytes: 1024 * MIB,
    });
    expect(String(got[0]?.data?.line)).toMatch(
      /^RuntimeError: CUDA out of memory\. Tried to allocate 1024\.00 MiB/,
    );
    expect(got[0]?.message).toBe(
      'container torch-oom (busybox:test): GPU out of memory on GPU 0 (pytorch)',
    );
  });

  it('does not count the negative examples (memory mentions that are no OOM)', async () => {
    const lines = dataLines('negative-memory-mentions.log');
    const before = seriesValue(await agent.metrics(), 'gpulse_docker_log_lines_total') ?? 0;
    const id = await runContainer(engine.docker, { name: 'negative', ...printer(lines) });
    const l = { container_id: id, container_name: 'negative' };
    const body = await agent.waitForMetrics(
      (b) =>
        (seriesValue(b, 'gpulse_docker_log_lines_total') ?? 0) >= before + lines.length &&
        seriesValue(b, 'gpulse_container_exit_code', l) === 0,
      20_000,
    );
    expect(seriesValue(body, 'gpulse_container_gpu_oom_total', l)).toBe(0);
    expect(
      (await events(agent, 'type=container.gpu_oom')).filter((e) => e.labels.container_id === id),
    ).toEqual([]);
  });

  it('emits a restart event when the restart policy starts a failed container again', async () => {
    const c = await engine.docker.createContainer({
      name: 'flaky',
      Image: BUSYBOX,
      Cmd: ['sh', '-c', 'sleep 1; exit 3'],
      HostConfig: {
        NetworkMode: 'none',
        RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 1 },
      },
    });
    await c.start();
    const l = { container_id: c.id, container_name: 'flaky' };
    await agent.waitForMetrics((b) => seriesValue(b, 'gpulse_container_restarts_total', l) === 1);
    let got: AgentEvent[] = [];
    await vi.waitFor(
      async () => {
        got = (await events(agent, 'type=container.restart')).filter(
          (e) => e.labels.container_id === c.id,
        );
        expect(got).toHaveLength(1);
      },
      { timeout: 10_000, interval: 200 },
    );
    expect(got[0]).toMatchObject({
      severity: 'warning',
      data: { restartCount: 1, previousExitCode: 3 },
    });
  });

  it('serves events newest first and filters by since, type and limit', async () => {
    const all = await events(agent, 'type=container');
    expect(all.length).toBeGreaterThanOrEqual(3);
    const ids = all.map((e) => e.id);
    expect([...ids].sort((a, b) => b - a)).toEqual(ids);
    expect(await events(agent, 'type=container&limit=1')).toEqual([all[0]]);
    const newest = all[0]!;
    const since = await events(agent, `since=${new Date(newest.ts).toISOString()}`);
    expect(since.every((e) => e.ts >= newest.ts)).toBe(true);
    expect(since.map((e) => e.id)).toContain(newest.id);
    const bad = await agent.getJson('/api/v1/events?since=yesterday&limit=0');
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('since: expected Unix seconds or an RFC 3339 time');
  });

  it('reconnects after the daemon is stopped and started again', async () => {
    const up = (b: string) => seriesValue(b, 'gpulse_collector_up', { collector: 'docker' });
    await engine.stop();
    const down = await agent.waitForMetrics((b) => up(b) === 0);
    expect(seriesValue(down, 'gpulse_docker_events_connected')).toBe(0);
    expect(seriesValue(down, 'gpulse_collector_up', { collector: 'fake-gpu' })).toBe(1);
    await engine.start();
    const back = await agent.waitForMetrics(
      (b) => up(b) === 1 && seriesValue(b, 'gpulse_docker_events_connected') === 1,
      60_000,
    );
    expect(seriesValue(back, 'gpulse_docker_events_reconnects_total')).toBeGreaterThanOrEqual(1);
    // Containers started after the restart are seen and their OOM kills counted.
    const id = await runContainer(engine.docker, {
      name: 'oom-after-restart',
      cmd: ALLOCATE_64MB,
      memory: 16 * MIB,
    });
    await agent.waitForMetrics(
      (b) => seriesValue(b, 'gpulse_container_oom_kills_total', { container_id: id }) === 1,
    );
  }, 120_000);
});

describeWithTools('docker collector without a socket', DOCKER_TOOLS, () => {
  it('says once, naming the socket and the fix; up 0; the rest of the agent runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpulse-nosock-'));
    const socket = join(dir, 'docker.sock');
    const { log, records } = captureLogger('info');
    const agent = await startAgentInProcess(
      { GPULSE_DOCKER_SOCKET: socket, GPULSE_DOCKER_INTERVAL: '1s' },
      log,
      [fakeGpu(() => [process.pid])],
    );
    try {
      const body = await agent.waitForMetrics(
        (b) =>
          seriesValue(b, 'gpulse_collector_status', {
            collector: 'docker',
            status: 'no_data',
            reason: 'socket_missing',
          }) === 1,
      );
      expect(seriesValue(body, 'gpulse_collector_up', { collector: 'docker' })).toBe(0);
      expect(seriesValue(body, 'gpulse_collector_up', { collector: 'fake-gpu' })).toBe(1);
      expect(
        seriesValue(body, 'gpulse_gpu_process_memory_used_bytes', { pid: String(process.pid) }),
      ).toBe(1024 * MIB);
      // Said once: three more cycles find no socket (each one records the state again, at a new
      // time), and none says it a second time.
      const cycles = new Set<number>();
      const at = () => agent.agent.store.current().collectors.get('docker')?.updatedAt;
      const first = at();
      await vi.waitFor(
        () => {
          const t = at();
          if (t !== undefined && t !== first) cycles.add(t);
          if (cycles.size < 3) throw new Error(`${cycles.size} more cycles so far`);
        },
        { timeout: 20_000, interval: 50 },
      );
      const said = records.filter((r) => String(r.msg).includes(socket));
      expect(said).toHaveLength(1);
      expect(said[0]).toMatchObject({
        collector: 'docker',
        status: 'no_data',
        reason: 'socket_missing',
      });
      expect(String(said[0]?.msg)).toContain('GPULSE_DOCKER_SOCKET');
      expect(String(said[0]?.msg)).toContain(`-v ${socket}:${socket}:ro`);
    } finally {
      await agent.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
