import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CollectorError, NoDataError } from '../../agent/core/errors.js';
import type { CollectContext, CollectorOutput, PolledCollector } from '../../agent/core/types.js';
import {
  collectContext,
  collectorHarness,
  sampleValue as value,
} from '../../test/helpers/collector-harness.js';
import { captureLogger } from '../../test/helpers/log-sink.js';
import {
  gpuPod,
  startPodResourcesServer,
  type PodResourcesServer,
  type PodResourcesServerOptions,
} from '../../test/helpers/pod-resources-server.js';
import { tempDirs } from '../../test/helpers/temp-dirs.js';
import { GrpcCallError } from '../grpc-client.js';
import { podResourcesConfigSchema, type PodResourcesConfig } from './config.js';
import {
  allocatableUnsupported,
  createPodResourcesCollector,
  listFailure,
  resourceMatcher,
} from './collector.js';

const GPU_A = 'GPU-5a3ec6a3-9c4b-4b8f-8a3e-0c1c4d5e6f70';
const GPU_B = 'GPU-0d7b2f1e-3a44-4e2b-9d1c-7e6f5a4b3c21';
const GPU_C = 'GPU-9e8d7c6b-5a49-4382-8172-6f5e4d3c2b1a';
const MIG_A = 'MIG-1f2e3d4c-5b6a-5798-8a9b-0c1d2e3f4a5b';
const MIG_B = 'MIG-6c7d8e9f-0a1b-5c2d-9e3f-4a5b6c7d8e9f';

const harness = collectorHarness('pod-resources');
const tmp = tempDirs('gpulse-pod-resources-');
const servers: PodResourcesServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function kubelet(options: PodResourcesServerOptions = {}): Promise<PodResourcesServer> {
  const server = await startPodResourcesServer(options);
  servers.push(server);
  return server;
}

function config(socket: string, overrides: Partial<PodResourcesConfig> = {}): PodResourcesConfig {
  return { ...podResourcesConfigSchema.parse({ socket }), timeout: 2000, ...overrides };
}

/** Runs collect() and expects it to fail, returning the error. */
async function failure(
  collect: (ctx: CollectContext) => Promise<CollectorOutput>,
  ctx = collectContext(),
): Promise<Error> {
  const err = await collect(ctx).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  if (!err) throw new Error('collect() succeeded');
  return err;
}

/** The allocation of one nvidia.com/gpu device to a container, as the collector reports it. */
function gpuAllocation(deviceId: string, pod: string, namespace: string, container: string) {
  return { resourceName: 'nvidia.com/gpu', deviceId, pod, namespace, container };
}

/** The allocatable nvidia.com/gpu devices with these ids, as the collector reports them. */
function allocatableGpus(...deviceIds: string[]) {
  return deviceIds.map((deviceId) => ({ resourceName: 'nvidia.com/gpu', deviceId }));
}

/** The next run lists GPU_A's pod again, and counts one List call that ended with `code` on the way. */
async function expectListedAgain(collector: PolledCollector, code: string): Promise<void> {
  const out = await collector.collect(collectContext());
  expect(out.facts?.deviceAllocations?.map((a) => a.deviceId)).toEqual([GPU_A]);
  expect(value(out.samples, 'gpulse_pod_resources_requests_total', { method: 'List', code })).toBe(
    1,
  );
}

describe('pod-resources allocations', () => {
  it('reads GPUs by UUID with pod, namespace, container and the allocatable devices', async () => {
    const server = await kubelet({
      pods: [
        {
          name: 'train-0',
          namespace: 'ml',
          containers: [
            {
              name: 'trainer',
              devices: [{ resource_name: 'nvidia.com/gpu', device_ids: [GPU_A, GPU_B] }],
              cpu_ids: [2, 3],
            },
          ],
        },
      ],
      allocatable: [{ resource_name: 'nvidia.com/gpu', device_ids: [GPU_A, GPU_B, GPU_C] }],
    });
    const collector = createPodResourcesCollector(config(server.socket));
    const out = await collector.collect(collectContext());
    expect(out.facts).toEqual({
      deviceAllocations: [
        gpuAllocation(GPU_A, 'train-0', 'ml', 'trainer'),
        gpuAllocation(GPU_B, 'train-0', 'ml', 'trainer'),
      ],
      allocatableDevices: allocatableGpus(GPU_A, GPU_B, GPU_C),
    });
    const s = out.samples;
    expect(value(s, 'gpulse_pod_resources_gpu_pods')).toBe(1);
    expect(value(s, 'gpulse_pod_resources_allocated_devices', { resource: 'nvidia.com/gpu' })).toBe(
      2,
    );
    expect(
      value(s, 'gpulse_pod_resources_allocatable_devices', { resource: 'nvidia.com/gpu' }),
    ).toBe(3);
    expect(value(s, 'gpulse_pod_resources_allocatable_supported')).toBe(1);
    expect(value(s, 'gpulse_pod_resources_requests_total', { method: 'List', code: 'OK' })).toBe(1);
    expect(
      value(s, 'gpulse_pod_resources_requests_total', {
        method: 'GetAllocatableResources',
        code: 'OK',
      }),
    ).toBe(1);
    await collector.close?.();
  });

  it("keeps the device plugin's index ids as given", async () => {
    const server = await kubelet({
      pods: [gpuPod('infer', 'default', 'server', ['0', '0:1'])],
      allocatable: [{ resource_name: 'nvidia.com/gpu', device_ids: ['0', '0:1', '1'] }],
    });
    const collector = createPodResourcesCollector(config(server.socket));
    const out = await collector.collect(collectContext());
    expect(out.facts?.deviceAllocations?.map((a) => a.deviceId)).toEqual(['0', '0:1']);
    expect(out.facts?.allocatableDevices?.map((a) => a.deviceId)).toEqual(['0', '0:1', '1']);
    await collector.close?.();
  });

  it('reads MIG devices under the mixed strategy (mig-* resources) and the single one (nvidia.com/gpu)', async () => {
    const server = await kubelet({
      pods: [
        gpuPod('mixed', 'ml', 'c', [MIG_A], 'nvidia.com/mig-1g.10gb'),
        gpuPod('single', 'ml', 'c', [MIG_B]),
      ],
      allocatable: [
        { resource_name: 'nvidia.com/mig-1g.10gb', device_ids: [MIG_A] },
        { resource_name: 'nvidia.com/gpu', device_ids: [MIG_B] },
      ],
    });
    const collector = createPodResourcesCollector(config(server.socket));
    const out = await collector.collect(collectContext());
    expect(out.facts?.deviceAllocations).toEqual([
      {
        resourceName: 'nvidia.com/mig-1g.10gb',
        deviceId: MIG_A,
        pod: 'mixed',
        namespace: 'ml',
        container: 'c',
      },
      gpuAllocation(MIG_B, 'single', 'ml', 'c'),
    ]);
    expect(out.facts?.allocatableDevices).toEqual([
      { resourceName: 'nvidia.com/mig-1g.10gb', deviceId: MIG_A },
      { resourceName: 'nvidia.com/gpu', deviceId: MIG_B },
    ]);
    expect(value(out.samples, 'gpulse_pod_resources_gpu_pods')).toBe(2);
    expect(
      value(out.samples, 'gpulse_pod_resources_allocated_devices', {
        resource: 'nvidia.com/mig-1g.10gb',
      }),
    ).toBe(1);
    await collector.close?.();
  });

  it('ignores resources that are not GPUs, and counts a pod with two GPU containers once', async () => {
    const server = await kubelet({
      pods: [
        {
          name: 'web',
          namespace: 'shop',
          containers: [
            {
              name: 'nginx',
              devices: [{ resource_name: 'example.com/foo', device_ids: ['foo-1'] }],
              cpu_ids: [0, 1],
            },
          ],
        },
        {
          name: 'pipeline',
          namespace: 'ml',
          containers: [
            {
              name: 'encoder',
              devices: [
                { resource_name: 'nvidia.com/gpu', device_ids: [GPU_A] },
                { resource_name: 'example.com/foo', device_ids: ['foo-2'] },
              ],
            },
            { name: 'sidecar', devices: [] },
            {
              name: 'decoder',
              devices: [{ resource_name: 'nvidia.com/gpu', device_ids: [GPU_B] }],
            },
          ],
        },
      ],
      allocatable: [
        { resource_name: 'nvidia.com/gpu', device_ids: [GPU_A, GPU_B] },
        { resource_name: 'example.com/foo', device_ids: ['foo-1', 'foo-2'] },
      ],
    });
    const collector = createPodResourcesCollector(config(server.socket));
    const out = await collector.collect(collectContext());
    expect(out.facts).toEqual({
      deviceAllocations: [
        gpuAllocation(GPU_A, 'pipeline', 'ml', 'encoder'),
        gpuAllocation(GPU_B, 'pipeline', 'ml', 'decoder'),
      ],
      allocatableDevices: allocatableGpus(GPU_A, GPU_B),
    });
    expect(value(out.samples, 'gpulse_pod_resources_gpu_pods')).toBe(1);
    expect(
      out.samples.filter((s) => s.labels.resource === 'example.com/foo').map((s) => s.desc.name),
    ).toEqual([]);
    await collector.close?.();
  });

  it('reports an empty node as no allocations, and free GPUs as allocatable with 0 allocated', async () => {
    const server = await kubelet({
      allocatable: [{ resource_name: 'nvidia.com/gpu', device_ids: [GPU_A] }],
    });
    const collector = createPodResourcesCollector(config(server.socket));
    const out = await collector.collect(collectContext());
    expect(out.facts).toEqual({
      deviceAllocations: [],
      allocatableDevices: allocatableGpus(GPU_A),
    });
    expect(value(out.samples, 'gpulse_pod_resources_gpu_pods')).toBe(0);
    expect(
      value(out.samples, 'gpulse_pod_resources_allocated_devices', { resource: 'nvidia.com/gpu' }),
    ).toBe(0);
    await collector.close?.();
  });

  it('matches exact names and prefixes ending in *', () => {
    const matches = resourceMatcher(['nvidia.com/gpu', 'nvidia.com/mig-*']);
    expect(
      [
        'nvidia.com/gpu',
        'nvidia.com/gpu.shared',
        'nvidia.com/mig-3g.40gb',
        'nvidia.com/mig',
        'amd.com/gpu',
      ].filter(matches),
    ).toEqual(['nvidia.com/gpu', 'nvidia.com/mig-3g.40gb']);
  });
});

describe('an older kubelet without GetAllocatableResources', () => {
  it.each(['unimplemented', 'disabled'] as const)(
    'stops asking once it answers %s, says so once, and asks again after a reconnect',
    async (allocatableMode) => {
      const server = await kubelet({
        pods: [gpuPod('train-0', 'ml', 't', [GPU_A])],
        allocatable: [{ resource_name: 'nvidia.com/gpu', device_ids: [GPU_A] }],
        allocatableMode,
      });
      const { log, records } = captureLogger();
      const ctx = collectContext(undefined, log);
      const collector = createPodResourcesCollector(config(server.socket));
      await collector.collect(ctx);
      await collector.collect(ctx);
      let out = await collector.collect(ctx);
      expect(out.facts).toEqual({
        deviceAllocations: [gpuAllocation(GPU_A, 'train-0', 'ml', 't')],
      });
      expect(server.calls).toEqual({ List: 3, GetAllocatableResources: 1 });
      expect(value(out.samples, 'gpulse_pod_resources_allocatable_supported')).toBe(0);
      const code = allocatableMode === 'unimplemented' ? 'UNIMPLEMENTED' : 'UNKNOWN';
      expect(
        value(out.samples, 'gpulse_pod_resources_requests_total', {
          method: 'GetAllocatableResources',
          code,
        }),
      ).toBe(1);
      expect(
        value(out.samples, 'gpulse_pod_resources_allocatable_devices', {
          resource: 'nvidia.com/gpu',
        }),
      ).toBeUndefined();
      const said = records.filter((r) => String(r.msg).includes('GetAllocatableResources'));
      expect(said).toHaveLength(1);
      expect(said[0]?.level).toBe(30);

      // The node is upgraded: the kubelet restarts with a new socket, and is asked again.
      server.allocatableMode = 'implemented';
      await server.stop();
      await server.restart();
      out = await collector.collect(ctx);
      expect(server.calls.GetAllocatableResources).toBe(2);
      expect(out.facts?.allocatableDevices).toEqual(allocatableGpus(GPU_A));
      expect(value(out.samples, 'gpulse_pod_resources_allocatable_supported')).toBe(1);
      await collector.close?.();
    },
  );

  it('tells "cannot answer" apart from other failures', () => {
    const err = (codeName: string, detail: string) =>
      new GrpcCallError('GetAllocatableResources', 0, codeName, detail);
    expect(allocatableUnsupported(err('UNIMPLEMENTED', 'unknown method'))).toBe(true);
    expect(
      allocatableUnsupported(err('UNKNOWN', 'PodResources API GetAllocatableResources disabled')),
    ).toBe(true);
    expect(allocatableUnsupported(err('UNKNOWN', 'internal'))).toBe(false);
    expect(allocatableUnsupported(err('UNAVAILABLE', 'connect ECONNREFUSED'))).toBe(false);
    expect(allocatableUnsupported(new Error('UNIMPLEMENTED'))).toBe(false);
  });
});

describe('pod-resources faults', () => {
  it('reports no socket as no_data in auto mode, naming the path and the mount that fixes it', async () => {
    const socket = join(tmp(), 'pod-resources', 'kubelet.sock');
    const collector = createPodResourcesCollector(config(socket));
    const err = await failure((ctx) => collector.collect(ctx));
    expect(err).toBeInstanceOf(NoDataError);
    expect((err as NoDataError).reason).toBe('socket_missing');
    expect(err.message).toContain(`no kubelet pod-resources socket at ${socket}`);
    expect(err.message).toContain(`mount the host's ${join(socket, '..')} read-only`);
    expect(err.message).toContain('GPULSE_POD_RESOURCES_SOCKET');

    const required = createPodResourcesCollector(config(socket, { mode: 'required' }));
    const strict = await failure((ctx) => required.collect(ctx));
    expect(strict).toBeInstanceOf(CollectorError);
    expect((strict as CollectorError).reason).toBe('socket_missing');
  });

  it('says a directory where the socket should be is a mount of the wrong path', async () => {
    const socket = join(tmp(), 'kubelet.sock');
    mkdirSync(socket);
    const collector = createPodResourcesCollector(config(socket));
    const err = await failure((ctx) => collector.collect(ctx));
    expect((err as CollectorError).reason).toBe('not_a_socket');
    expect(err.message).toContain(`mount the directory ${join(socket, '..')}`);
  });

  it('reports a socket nobody listens on as unreachable, and recovers once the kubelet is back', async () => {
    // A kubelet killed outright leaves its socket file behind: connections are refused.
    const socket = join(tmp(), 'kubelet.sock');
    const script = `require('net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`;
    spawnSync(process.execPath, ['-e', script]);
    const collector = createPodResourcesCollector(config(socket));
    const err = await failure((ctx) => collector.collect(ctx));
    expect((err as CollectorError).reason).toBe('unreachable');
    expect(err.message).toContain(`the kubelet does not answer on ${socket}`);

    // The new kubelet removes the stale file and serves on the same path.
    rmSync(socket);
    const server = await kubelet({
      socket,
      pods: [gpuPod('p', 'n', 'c', [GPU_A])],
    });
    await expectListedAgain(collector, 'UNAVAILABLE');
    expect(server.calls.List).toBe(1);
    await collector.close?.();
  });

  it('turns a vanished socket into an error and recovers with the same facts when it is back', async () => {
    const pods = [gpuPod('train-0', 'ml', 't', [GPU_A])];
    const server = await kubelet({
      pods,
      allocatable: [{ resource_name: 'nvidia.com/gpu', device_ids: [GPU_A, GPU_B] }],
    });
    const collector = createPodResourcesCollector(config(server.socket));
    const before = await collector.collect(collectContext());

    await server.stop();
    const gone = await failure((ctx) => collector.collect(ctx));
    expect(gone).toBeInstanceOf(CollectorError);
    expect((gone as CollectorError).reason).toBe('socket_missing');
    expect(gone.message).toContain('has gone');

    await server.restart();
    const after = await collector.collect(collectContext());
    expect(after.facts).toEqual(before.facts);
    expect(server.calls).toEqual({ List: 2, GetAllocatableResources: 2 });
    await collector.close?.();
  });

  it('reports a kubelet that does not answer in time, and reads it again once it does', async () => {
    const server = await kubelet({
      pods: [gpuPod('p', 'n', 'c', [GPU_A])],
    });
    server.listDelayMs = 1000;
    const collector = createPodResourcesCollector(config(server.socket, { timeout: 100 }));
    const err = await failure((ctx) => collector.collect(ctx));
    expect((err as CollectorError).reason).toBe('timeout');
    server.listDelayMs = 0;
    await expectListedAgain(collector, 'DEADLINE_EXCEEDED');
    await collector.close?.();
  });

  it('recovers without a fresh collector when the kubelet dies between runs of the agent', async () => {
    // The runner's states and logs: error once when the kubelet goes, recovered once it is back.
    const server = await kubelet({
      pods: [gpuPod('p', 'n', 'c', ['0'])],
    });
    const run = harness.run({
      ...createPodResourcesCollector(config(server.socket)),
      intervalMs: 50,
    });
    await run.until((s) => s.status === 'ok');
    await server.stop();
    const down = await run.until((s) => s.status === 'error');
    expect(down.reason).toBe('socket_missing');
    await new Promise((r) => setTimeout(r, 200));
    await server.restart();
    const up = await run.until((s) => s.status === 'ok');
    expect(up.output.facts?.deviceAllocations).toEqual([gpuAllocation('0', 'p', 'n', 'c')]);
    const transitions = run.records.filter((r) => r.collector === 'pod-resources' && r.status);
    expect(transitions.map((r) => [r.status, r.msg])).toEqual([
      ['ok', 'collector ok'],
      ['error', expect.stringContaining('has gone')],
      ['ok', 'collector recovered'],
    ]);
  });

  it('names the fix for permission denied and classifies gRPC failures', () => {
    const s = '/var/lib/kubelet/pod-resources/kubelet.sock';
    const grpcErr = (codeName: string, detail: string) =>
      new GrpcCallError('List', 0, codeName, detail);
    const denied = listFailure(
      grpcErr('UNAVAILABLE', `No connection established. Last error: connect EACCES ${s}`),
      s,
    );
    expect(denied.reason).toBe('permission_denied');
    expect(denied.message).toContain('Run gpulse as root');
    expect(denied.message).toContain('/var/lib/kubelet/pod-resources mounted read-only');
    expect(listFailure(grpcErr('UNAVAILABLE', 'connect ECONNREFUSED'), s).reason).toBe(
      'unreachable',
    );
    expect(listFailure(grpcErr('DEADLINE_EXCEEDED', 'Deadline exceeded'), s).reason).toBe(
      'timeout',
    );
    expect(listFailure(grpcErr('UNIMPLEMENTED', 'unknown method List'), s).reason).toBe(
      'unsupported',
    );
    expect(listFailure(grpcErr('INTERNAL', 'boom'), s).reason).toBe('api_error');
  });
});
