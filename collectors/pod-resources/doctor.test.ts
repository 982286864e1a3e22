// The doctor's pod-resources check against the stand-in kubelet: each state a node can be in gets
// its own finding and, where something is wrong, the fix.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../agent/config.js';
import { runDoctor } from '../../agent/doctor/run-doctor.js';
import {
  gpuPod,
  startPodResourcesServer,
  type PodResourcesServer,
  type PodResourcesServerOptions,
} from '../../test/helpers/pod-resources-server.js';
import { tempDirs } from '../../test/helpers/temp-dirs.js';
import { podResourcesCheck } from './doctor.js';

const GPU_A = 'GPU-5a3ec6a3-9c4b-4b8f-8a3e-0c1c4d5e6f70';
const GPU_B = 'GPU-0d7b2f1e-3a44-4e2b-9d1c-7e6f5a4b3c21';

const tmp = tempDirs('gpulse-pod-resources-doctor-');
const servers: PodResourcesServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function kubelet(options: PodResourcesServerOptions): Promise<PodResourcesServer> {
  const server = await startPodResourcesServer(options);
  servers.push(server);
  return server;
}

/** The check's result on the config these variables make, with `env` as the process's. */
async function check(vars: Record<string, string>, env: NodeJS.ProcessEnv = {}) {
  const { config } = loadConfig({ env: vars });
  const report = await runDoctor({
    config,
    env,
    version: 'test',
    timeoutMs: 2000,
    checks: [podResourcesCheck],
  });
  return report.checks[0]!;
}

describe('doctor pod-resources check', () => {
  it('counts GPU allocations and allocatable GPUs', async () => {
    const server = await kubelet({
      pods: [gpuPod('train-0', 'ml', 't', [GPU_A])],
      allocatable: [{ resource_name: 'nvidia.com/gpu', device_ids: [GPU_A, GPU_B] }],
    });
    const result = await check({ GPULSE_POD_RESOURCES_SOCKET: server.socket });
    expect(result).toMatchObject({
      id: 'pod-resources',
      status: 'ok',
      required: false,
      finding: `kubelet at ${server.socket}: 1 GPU devices allocated to 1 pods, 2 allocatable`,
      details: {
        socket: server.socket,
        allocations: 1,
        pods: 1,
        allocatableSupported: true,
        allocatable: 2,
      },
    });
  });

  it('warns when the kubelet cannot say what is allocatable', async () => {
    const server = await kubelet({ allocatableMode: 'unimplemented' });
    const result = await check({ GPULSE_POD_RESOURCES_SOCKET: server.socket });
    expect(result.status).toBe('warn');
    expect(result.details).toMatchObject({ allocatableSupported: false, allocations: 0 });
    expect(result.fix).toContain('Kubernetes 1.23');
  });

  it('skips a host without the socket outside Kubernetes, and warns with the mount inside a pod', async () => {
    const socket = join(tmp(), 'pod-resources', 'kubelet.sock');
    const vars = { GPULSE_POD_RESOURCES_SOCKET: socket };
    expect(await check(vars)).toMatchObject({ status: 'skip', required: false });
    const inPod = await check(vars, { KUBERNETES_SERVICE_HOST: '10.96.0.1' });
    expect(inPod).toMatchObject({ status: 'warn', required: false });
    expect(inPod.fix).toContain(`mount the host's ${join(socket, '..')} read-only`);
    const required = await check({ ...vars, GPULSE_POD_RESOURCES_MODE: 'required' });
    expect(required).toMatchObject({ status: 'fail', required: true });
  });

  it('fails with the fix for a directory in place of the socket and for a dead kubelet', async () => {
    const socket = join(tmp(), 'kubelet.sock');
    mkdirSync(socket);
    const wrong = await check({ GPULSE_POD_RESOURCES_SOCKET: socket });
    expect(wrong).toMatchObject({ status: 'fail', details: { reason: 'not_a_socket' } });
    expect(wrong.fix).toContain('not the socket file');

    // A kubelet killed outright leaves its socket file behind: connections are refused.
    const stale = join(tmp(), 'kubelet.sock');
    const script = `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`;
    spawnSync(process.execPath, ['-e', script]);
    const dead = await check({ GPULSE_POD_RESOURCES_SOCKET: stale });
    expect(dead).toMatchObject({ status: 'fail', details: { reason: 'unreachable' } });
    expect(dead.fix).toContain('systemctl status kubelet');
  });

  it('says so when the collector is off', async () => {
    expect(await check({ GPULSE_POD_RESOURCES_MODE: 'off' })).toMatchObject({ status: 'skip' });
  });
});
