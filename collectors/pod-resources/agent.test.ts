// The collector as the agent runs it: created from its registry line and settings, served on
// /metrics with its status, its facts in the snapshot.
import { afterEach, expect, it } from 'vitest';
import { startAgentInProcess } from '../../test/helpers/agent.js';
import { silentLogger } from '../../test/helpers/log-sink.js';
import {
  gpuPod,
  startPodResourcesServer,
  type PodResourcesServer,
} from '../../test/helpers/pod-resources-server.js';

const GPU_A = 'GPU-5a3ec6a3-9c4b-4b8f-8a3e-0c1c4d5e6f70';

let server: PodResourcesServer | undefined;
afterEach(async () => {
  await server?.close();
});

it('serves the allocations of the kubelet on its socket through the agent', async () => {
  server = await startPodResourcesServer({
    pods: [gpuPod('train-0', 'ml', 't', [GPU_A])],
    allocatable: [{ resource_name: 'nvidia.com/gpu', device_ids: [GPU_A] }],
  });
  const agent = await startAgentInProcess(
    {
      GPULSE_DCGM_MODE: 'off',
      GPULSE_KMSG_MODE: 'off',
      GPULSE_DOCKER_MODE: 'off',
      GPULSE_POD_RESOURCES_SOCKET: server.socket,
    },
    silentLogger(),
  );
  try {
    const body = await agent.waitForMetrics((b) =>
      b.includes('gpulse_pod_resources_allocated_devices{resource="nvidia.com/gpu"} 1'),
    );
    expect(body).toContain('gpulse_collector_up{collector="pod-resources"} 1');
    expect(body).toContain('gpulse_pod_resources_allocatable_supported 1');
    const facts = agent.agent.store.current().collectors.get('pod-resources')?.output.facts;
    expect(facts?.deviceAllocations).toEqual([
      {
        resourceName: 'nvidia.com/gpu',
        deviceId: GPU_A,
        pod: 'train-0',
        namespace: 'ml',
        container: 't',
      },
    ]);
  } finally {
    await agent.stop();
  }
});
