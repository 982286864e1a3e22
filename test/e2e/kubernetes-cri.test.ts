// End to end on a Kubernetes-like node: a real containerd runs a pod made through the CRI API,
// the built `gpulse simulate` reports the pod's real process as a GPU process, and the cri
// collector names it (pod, namespace, container) on /metrics and in /api/v1/gpus, then leaves
// the runtime alone while nothing changes.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { GpusJson } from '../../agent/components/gpu-health/gpus-api.js';
import { allSeries, seriesValue, startSimulate, type CliProcess } from '../helpers/cli.js';
import {
  CONTAINERD_PRECONDITIONS,
  startContainerd,
  TEST_IMAGE,
  type PodMeta,
  type TestContainer,
  type TestContainerd,
} from '../helpers/containerd.js';
import { describeWhen } from '../helpers/tools.js';

const POD: PodMeta = {
  name: 'llm-serve-7d9f-x2k4p',
  namespace: 'inference',
  uid: '0d5e1f2a-3b4c-4d5e-8f6a-7b8c9d0e1f2a',
};

/** The total of `gpulse_cri_requests_total` over every method and code. */
function criRequests(body: string): number {
  return allSeries(body, 'gpulse_cri_requests_total').reduce((sum, s) => sum + s.value, 0);
}

describeWhen('Kubernetes on containerd end to end', CONTAINERD_PRECONDITIONS, () => {
  let containerd: TestContainerd;
  let server: TestContainer;
  let cli: CliProcess | undefined;
  beforeAll(async () => {
    containerd = await startContainerd();
    const sandbox = await containerd.runPod(POD);
    server = await containerd.startContainer(sandbox, POD, 'vllm');
  }, 120_000);
  afterAll(async () => {
    await cli?.stop();
    await containerd?.stop();
  }, 60_000);

  it('labels the GPU process of a pod with its pod, namespace and container, with no CRI call in steady state', async () => {
    cli = await startSimulate(
      [
        '--profile',
        'h100',
        '--process',
        `${server.pid}:0:4096:python`,
        '--cri-socket',
        containerd.socket,
      ],
      { GPULSE_HOST_MODE: 'off', GPULSE_CRI_INTERVAL: '500ms' },
    );
    const container = {
      container_id: server.id,
      container_name: 'vllm',
      image: TEST_IMAGE,
      pod: POD.name,
      namespace: POD.namespace,
    };
    const labels = { pid: String(server.pid), ...container };
    const body = await cli.waitForMetrics(
      (b) => seriesValue(b, 'gpulse_gpu_process_memory_used_bytes', labels) !== undefined,
      45_000,
    );
    expect(seriesValue(body, 'gpulse_gpu_process_memory_used_bytes', labels)).toBe(4096 * 1048576);
    expect(allSeries(body, 'gpulse_container_gpu_memory_used_bytes')).toEqual([
      {
        labels: { ...container, gpu: '0', uuid: expect.stringMatching(/^GPU-/) as string },
        value: 4096 * 1048576,
      },
    ]);
    const info = allSeries(body, 'gpulse_cri_runtime_info');
    expect(info).toHaveLength(1);
    expect(info[0]?.labels).toMatchObject({
      runtime: 'containerd',
      api_version: 'v1',
      socket: containerd.socket,
    });
    expect(seriesValue(body, 'gpulse_collector_up', { collector: 'cri' })).toBe(1);

    const r = await cli.get('/api/v1/gpus');
    expect(r.status).toBe(200);
    const api = JSON.parse(r.body) as GpusJson;
    expect(api.gpus[0]?.containers).toEqual([
      { name: 'vllm', id: server.id, namespace: POD.namespace, pod: POD.name },
    ]);
    expect(api.gpus[0]?.processes).toEqual([
      {
        pid: server.pid,
        name: 'python',
        usedMemoryBytes: 4096 * 1048576,
        container: { name: 'vllm', id: server.id, namespace: POD.namespace, pod: POD.name },
      },
    ]);

    // Steady state: over ten poll intervals the runtime is not called once.
    const calls = criRequests(body);
    expect(calls).toBe(4); // Version, ListContainers, ListPodSandbox, ListImages
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const later = await cli.waitForMetrics((b) => b.includes('gpulse_cri_requests_total'));
    expect(criRequests(later)).toBe(calls);
    // Said once, at the first Version, not per tick.
    const found = cli.logs.filter((l) => l.collector === 'cri' && l.msg === 'CRI runtime found');
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ runtime: 'containerd', socket: containerd.socket });
    expect(seriesValue(later, 'gpulse_gpu_process_memory_used_bytes', labels)).toBe(4096 * 1048576);
  }, 90_000);
});
