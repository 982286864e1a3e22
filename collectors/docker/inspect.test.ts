import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { containerLabels, gpuRequests, parseInspect, parseListEntry } from './inspect.js';

const FIX = join(import.meta.dirname, 'fixtures');
const load = (path: string): unknown => {
  const v = JSON.parse(readFileSync(join(FIX, path), 'utf8')) as unknown;
  return Array.isArray(v) ? v[0] : v;
};

describe('parseInspect', () => {
  it('a Kubernetes container (PAI): pod, namespace and container name from labels, GPU by UUID', () => {
    const c = parseInspect(
      load('docker/docker-inspect__nvidia-visible-devices-gpu-uuid__pai.json'),
    )!;
    expect(c.id).toBe('29fe36ad918457348a6429aa74283efc2beceb9d807722410e256d0968cd1d47');
    expect(c.name).toBe(
      'k8s_main_tensorflowcifar10-worker-0_default_69c72bad-46fa-11e9-8937-000d3ab38724_0',
    );
    expect(c.pod).toBe('tensorflowcifar10-worker-0');
    expect(c.namespace).toBe('default');
    expect(c.kubernetesContainer).toBe('main');
    // nvidia-docker 2's runtime: a GPU container even where no request says so (Jetson).
    expect(c.runtime).toBe('nvidia');
    expect(c.state).toBe('running');
    expect(c.pid).toBe(23774);
    expect(c.startedAt).toBe(Date.parse('2019-03-15T08:15:24.1282957Z'));
    expect(c.finishedAt).toBeUndefined();
    expect(c.memoryLimitBytes).toBe(34359738368);
    expect(c.cpuLimitCores).toBe(8);
    expect(c.gpus).toEqual([
      { device: 'GPU-dc0671b0-61a4-443e-f456-f8fa6359b788', source: 'nvidia_visible_devices' },
    ]);
    expect(containerLabels(c)).toEqual({
      container_id: c.id,
      container_name: 'main',
      image:
        'openpai/pai.example.tensorflow@sha256:cdc734b9c64bf2af3f0025db0e20a7b0c9bcb41551d3d6f64694a04d6eb46646',
      pod: 'tensorflowcifar10-worker-0',
      namespace: 'default',
    });
  });

  it('NVIDIA_VISIBLE_DEVICES=all baked into an image is "all" (a PAI GPU_ID label is not read)', () => {
    const c = parseInspect(
      load('docker/docker-inspect__nvidia-visible-devices-all-plus-gpu-id-label__pai.json'),
    )!;
    expect(c.gpus).toEqual([{ device: 'all', source: 'nvidia_visible_devices' }]);
    expect(c.memoryLimitBytes).toBeUndefined();
    expect(c.pod).toBeUndefined();
    expect(containerLabels(c).pod).toBe('');
  });

  it('NVIDIA_VISIBLE_DEVICES=void with /dev/nvidiaN devices: the device nodes are the truth', () => {
    const c = parseInspect(load('docker/docker-inspect__nvidia-visible-devices-void__pai.json'))!;
    expect(c.gpus).toEqual([
      { device: 'nvidia3', source: 'devices' },
      { device: 'nvidia2', source: 'devices' },
      { device: 'nvidia1', source: 'devices' },
      { device: 'nvidia0', source: 'devices' },
    ]);
    expect(c.cpuLimitCores).toBe(16);
    expect(c.networkMode).toBe('host');
    expect(c.tty).toBe(true);
    expect(c.logDriver).toBe('json-file');
  });

  it('the DLTS inspect: GPU UUID, pod named by labels', () => {
    const c = parseInspect(
      load('docker/docker-inspect__nvidia-visible-devices-gpu-uuid-dlts__pai.json'),
    )!;
    expect(c.gpus).toEqual([
      { device: 'GPU-7c583998-b3ff-a885-8979-2d32d334cde4', source: 'nvidia_visible_devices' },
    ]);
    expect(c.namespace).toBe('default');
  });

  it('moby doc example: "running" with ExitCode 9 keeps no exit code while running', () => {
    const c = parseInspect(
      load('docker-api/containers-id-json__api-v1.24-doc-example-exit-code-9__moby.json'),
    )!;
    expect(c.state).toBe('running');
    expect(c.exitCode).toBeUndefined();
    expect(c.restartCount).toBe(1);
    // Pid 0 while "running" (documentation inconsistency): no PID.
    expect(c.pid).toBeUndefined();
    expect(c.gpus).toEqual([]);
  });

  it('cgroup v2 host: memory limit, DeviceRequests null', () => {
    const c = parseInspect(
      load(
        'docker-api/containers-id-json__cgroup-v2-host__memory-limit-256m__devicerequests-null__otel-contrib.json',
      ),
    )!;
    expect(c.memoryLimitBytes).toBe(268435456);
    expect(c.gpus).toEqual([]);
    expect(c.image).toBe('alpine');
    expect(c.name).toBe('compassionate_mcnulty');
  });

  it('a Windows host inspect parses without GPUs or cgroup fields', () => {
    const c = parseInspect(
      load(
        'docker-api/containers-id-json__windows-hyperv-windowsfilter__api-v1.38__docker-java.json',
      ),
    )!;
    expect(c.state).toBe('running');
    expect(c.pid).toBe(1588);
    expect(c.gpus).toEqual([]);
  });

  it('docker-java 1.24 inspect', () => {
    const c = parseInspect(load('docker-api/containers-id-json__api-v1.24__docker-java.json'))!;
    expect(c.pid).toBe(10912);
    expect(c.image).toBe('busybox');
  });

  it('an exited OOM-killed container keeps exit code and flag', () => {
    const c = parseInspect({
      Id: 'c'.repeat(64),
      Name: '/oomtest',
      Config: { Image: 'busybox:test', Labels: null, Env: null },
      State: {
        Status: 'exited',
        Running: false,
        OOMKilled: true,
        Pid: 0,
        ExitCode: 137,
        StartedAt: '2026-11-28T12:41:52.511356548Z',
        FinishedAt: '2026-11-28T12:41:52.858168629Z',
      },
      HostConfig: { Memory: 16777216, DeviceRequests: null },
      RestartCount: 0,
    })!;
    expect(c).toMatchObject({
      state: 'exited',
      oomKilled: true,
      exitCode: 137,
      memoryLimitBytes: 16777216,
      pid: undefined,
      labels: {},
    });
    expect(c.finishedAt! - c.startedAt!).toBe(347);
  });

  it('garbage is no container', () => {
    expect(parseInspect(null)).toBeUndefined();
    expect(parseInspect({ Id: 42 })).toBeUndefined();
  });
});

describe('gpuRequests', () => {
  it("--gpus 1 (the dockwatch DeviceRequests fragment) is one GPU of the runtime's choice", () => {
    const fragment = JSON.parse(
      readFileSync(
        join(
          FIX,
          'docker-api/hostconfig-devicerequests-fragment__driver-nvidia-count-1__jq-output__dockwatch-29.json',
        ),
        'utf8',
      ),
    ) as unknown;
    expect(gpuRequests({ HostConfig: { DeviceRequests: fragment } })).toEqual([
      { device: 'count:1', source: 'device_requests' },
    ]);
  });

  it('--gpus all, --gpus device=0,GPU-x; DeviceRequests win over the environment', () => {
    const env = { Env: ['NVIDIA_VISIBLE_DEVICES=3'] };
    expect(
      gpuRequests({
        Config: env,
        HostConfig: { DeviceRequests: [{ Driver: '', Count: -1, Capabilities: [['gpu']] }] },
      }),
    ).toEqual([{ device: 'all', source: 'device_requests' }]);
    expect(
      gpuRequests({
        Config: env,
        HostConfig: {
          DeviceRequests: [
            { Driver: 'nvidia', Count: 0, DeviceIDs: ['0', 'GPU-x'], Capabilities: null },
          ],
        },
      }),
    ).toEqual([
      { device: '0', source: 'device_requests' },
      { device: 'GPU-x', source: 'device_requests' },
    ]);
    expect(gpuRequests({ Config: env })).toEqual([
      { device: '3', source: 'nvidia_visible_devices' },
    ]);
  });

  it('other device requests and "none" are no GPU', () => {
    expect(
      gpuRequests({
        Config: { Env: ['NVIDIA_VISIBLE_DEVICES=none'] },
        HostConfig: { DeviceRequests: [{ Driver: 'cdi', Count: 1, Capabilities: [['tpu']] }] },
      }),
    ).toEqual([]);
  });
});

describe('parseInspect bounds the GPU requests of one container', () => {
  it('keeps the first maxGpuRequests of 5,000 NVIDIA_VISIBLE_DEVICES entries and counts the rest', () => {
    const devices = Array.from({ length: 5000 }, (_, i) => String(i));
    const c = parseInspect(
      { Id: 'c1', Config: { Env: [`NVIDIA_VISIBLE_DEVICES=${devices.join(',')}`] } },
      64,
    )!;
    expect(c.gpus).toHaveLength(64);
    expect(c.gpus[63]).toEqual({ device: '63', source: 'nvidia_visible_devices' });
    expect(c.gpusDropped).toBe(5000 - 64);
  });

  it('drops device names no GPU has (a megabyte of text) before the real ones', () => {
    const c = parseInspect(
      { Id: 'c2', Config: { Env: [`NVIDIA_VISIBLE_DEVICES=${'x'.repeat(1 << 20)},GPU-1`] } },
      1,
    )!;
    expect(c.gpus).toEqual([{ device: 'GPU-1', source: 'nvidia_visible_devices' }]);
    expect(c.gpusDropped).toBe(1);
  });

  it('a real container keeps all its requests and drops nothing', () => {
    const c = parseInspect({
      Id: 'c3',
      HostConfig: { DeviceRequests: [{ Driver: 'nvidia', DeviceIDs: ['0', '1'] }] },
    })!;
    expect(c.gpus).toHaveLength(2);
    expect(c.gpusDropped).toBe(0);
  });
});

describe('parseListEntry (GET /containers/json)', () => {
  const list = (f: string) =>
    JSON.parse(readFileSync(join(FIX, 'docker-api', f), 'utf8')) as unknown[];
  it('moby v1.24 example: four exited containers', () => {
    expect(list('containers-json__api-v1.24-doc-example__moby.json').map(parseListEntry)).toEqual([
      { id: '8dfafdbc3a40', state: 'exited' },
      { id: '9cd87474be90', state: 'exited' },
      { id: '3176a2479c92', state: 'exited' },
      { id: '4cb07b47f9fb', state: 'exited' },
    ]);
  });
  it('cgroup v2 host: running', () => {
    expect(
      list('containers-json__cgroup-v2-host__state-field__otel-contrib.json').map(parseListEntry),
    ).toEqual([
      { id: 'f97ed5bca0a5a0b85bfd52c4144b96174e825c92a138bc0458f0e196f2c7c1b4', state: 'running' },
    ]);
  });
  it('API 1.22 has no State field: id only', () => {
    const [entry] = list('containers-json__size-fields__api-v1.22__docker-java.json').map(
      parseListEntry,
    );
    expect(entry?.state).toBeUndefined();
    expect(entry?.id).toMatch(/^095351af/);
  });
});
