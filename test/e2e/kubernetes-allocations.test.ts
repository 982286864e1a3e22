// GPUs the kubelet gave pods, end to end: `gpulse simulate` (8 simulated H100s, one of them
// loaded by a process) against a stand-in kubelet serving the real pod-resources v1 API. Every
// surface names the pod: native series, dcgm-exporter names, /api/v1/gpus and the events; the
// allocated GPU left at 0 % turns idle after the window, the loaded one never does; a kubelet
// that goes away and comes back is an error, then the same allocations again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seriesValue, startSimulate, type CliProcess } from '../helpers/cli.js';
import {
  gpuPod,
  startPodResourcesServer,
  type FakePod,
  type PodResourcesServer,
} from '../helpers/pod-resources-server.js';

// By index ids (the device plugin's DEVICE_ID_STRATEGY=index), with a sidecar that has no GPU.
const withSidecar = (pod: FakePod): FakePod => ({
  ...pod,
  containers: [...pod.containers, { name: 'sidecar', cpu_ids: [3] }],
});

interface GpuJson {
  readonly index: number;
  readonly uuid: string;
  readonly allocations: readonly { pod: string; container: string; device: string }[];
}

describe('GPU allocations from the kubelet through gpulse simulate', () => {
  let kubelet: PodResourcesServer;
  let agent: CliProcess;
  const idleEvents = async () => {
    const { events } = JSON.parse(
      (await agent.get('/api/v1/events?type=gpu.allocation_idle')).body,
    ) as { events: { labels: Record<string, string> }[] };
    return events.map((e) => [e.labels.pod, e.labels.gpu]);
  };

  beforeAll(async () => {
    // GPU 0 idle, GPU 1 loaded.
    kubelet = await startPodResourcesServer({
      pods: [
        withSidecar(gpuPod('idle-0', 'ml', 'main', ['0'])),
        withSidecar(gpuPod('busy-1', 'ml', 'main', ['1'])),
      ],
      allocatable: [
        { resource_name: 'nvidia.com/gpu', device_ids: ['0', '1', '2', '3', '4', '5', '6', '7'] },
      ],
    });
    agent = await startSimulate(
      [
        '--process-count',
        '0',
        '--process',
        `${process.pid}:1:2048`,
        '--pod-resources-socket',
        kubelet.socket,
        '--metrics-compat',
        'dcgm',
        '--docker-mode',
        'off',
      ],
      { GPULSE_POD_RESOURCES_INTERVAL: '1s', GPULSE_POD_RESOURCES_IDLE_AFTER: '3s' },
    );
  });

  afterAll(async () => {
    await agent?.stop();
    await kubelet?.close();
  });

  it('names the pod of each allocated GPU on every surface and finds the idle one', async () => {
    const idle = (body: string, pod: string, gpu: string) =>
      seriesValue(body, 'gpulse_gpu_allocation_idle', { pod, gpu });
    const body = await agent.waitForMetrics((b) => idle(b, 'idle-0', '0') === 1, 30_000);
    expect(idle(body, 'busy-1', '1')).toBe(0);
    expect(
      seriesValue(body, 'gpulse_gpu_allocated_idle_seconds_total', { pod: 'idle-0', gpu: '0' }),
    ).toBeGreaterThanOrEqual(3);
    expect(
      seriesValue(body, 'gpulse_gpu_allocated_idle_seconds_total', { pod: 'busy-1', gpu: '1' }),
    ).toBe(0);
    expect(seriesValue(body, 'gpulse_gpu_allocated_devices', { resource: 'nvidia.com/gpu' })).toBe(
      2,
    );
    expect(
      seriesValue(body, 'gpulse_gpu_allocatable_devices', { resource: 'nvidia.com/gpu' }),
    ).toBe(8);

    // The info series carries the GPU's UUID, which joins every per-GPU series to the pod.
    const gpus = JSON.parse((await agent.get('/api/v1/gpus')).body) as { gpus: GpuJson[] };
    const [gpu0, gpu1] = gpus.gpus;
    expect(
      seriesValue(body, 'gpulse_gpu_allocation_info', {
        gpu: '0',
        uuid: gpu0!.uuid,
        mig_uuid: '',
        device: '0',
        pod: 'idle-0',
        namespace: 'ml',
        container: 'main',
      }),
    ).toBe(1);
    expect(gpu0!.allocations).toMatchObject([{ pod: 'idle-0', container: 'main', device: '0' }]);
    expect(gpu1!.allocations).toMatchObject([{ pod: 'busy-1', container: 'main', device: '1' }]);
    expect(gpus.gpus.slice(2).every((g) => g.allocations.length === 0)).toBe(true);

    // dcgm-exporter's names carry the pod the kubelet gave the GPU, as dcgm-exporter labels it.
    expect(
      seriesValue(body, 'DCGM_FI_DEV_GPU_UTIL', { gpu: '0', pod: 'idle-0', container: 'main' }),
    ).toBe(0);
    expect(
      seriesValue(body, 'DCGM_FI_DEV_GPU_UTIL', { gpu: '1', pod: 'busy-1', namespace: 'ml' }),
    ).toBeGreaterThan(5);

    // One event for the idle allocation, none for the loaded one (the log gets a snapshot's
    // events just after the snapshot is served: poll).
    await expect.poll(idleEvents, { timeout: 10_000 }).toEqual([['idle-0', '0']]);
  });

  it('says the kubelet went away, and shows the same allocations when it is back', async () => {
    await kubelet.stop();
    const down = await agent.waitForMetrics(
      (b) => seriesValue(b, 'gpulse_collector_up', { collector: 'pod-resources' }) === 0,
      20_000,
    );
    // The GPUs' own series stay: only what the kubelet told is unknown now.
    expect(seriesValue(down, 'gpulse_gpu_utilization_ratio', { gpu: '1' })).toBeGreaterThan(0);
    await kubelet.restart();
    const back = await agent.waitForMetrics(
      (b) =>
        seriesValue(b, 'gpulse_collector_up', { collector: 'pod-resources' }) === 1 &&
        seriesValue(b, 'gpulse_gpu_allocation_idle', { pod: 'busy-1', gpu: '1' }) === 0,
      20_000,
    );
    // The same allocation again, still idle: a kubelet restart is no new idle episode.
    expect(seriesValue(back, 'gpulse_gpu_allocation_idle', { pod: 'idle-0', gpu: '0' })).toBe(1);
    expect(await idleEvents()).toEqual([['idle-0', '0']]);
  });
});
