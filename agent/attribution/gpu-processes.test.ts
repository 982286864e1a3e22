import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../test/helpers/log-sink.js';
import { FakeClock } from '../core/clock.js';
import type { Facts, GpuReading } from '../core/facts.js';
import { gpuAttributions, gpuProcessesDeriver } from './gpu-processes.js';
import { StateStore } from '../core/state-store.js';
import type { Sample } from '../core/types.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const GPU0 = 'GPU-00000000-0000-0000-0000-000000000000';
const GPU1 = 'GPU-11111111-1111-1111-1111-111111111111';
const MIB = 1024 * 1024;

function gpu(index: number, uuid: string): GpuReading {
  return { index, uuid, clocksHz: {}, maxClocksHz: {}, throttle: {}, throttleSeconds: {} };
}

function derive(facts: Partial<Facts>, docker?: Partial<Facts>): Sample[] {
  const store = new StateStore({ clock: new FakeClock(), log: silentLogger() });
  store.ok('nvidia-smi', { samples: [], facts });
  if (docker) store.ok('docker', { samples: [], facts: docker });
  return [...gpuProcessesDeriver.derive(store.current()).samples];
}

type Row = Record<string, string> & { value: number };
const rows = (samples: Sample[], name: string): Row[] =>
  samples.filter((s) => s.desc.name === name).map((s) => ({ ...s.labels, value: s.value }) as Row);

describe('gpuProcessesDeriver', () => {
  const gpus = [gpu(0, GPU0), gpu(1, GPU1)];
  const docker: Partial<Facts> = {
    containers: [
      { id: A, name: 'trainer', image: 'pytorch:2.5', pod: 'trainer-0', namespace: 'ml' },
      { id: B, name: 'server', image: 'vllm:0.8' },
    ],
  };
  const processes: Partial<Facts> = {
    gpus,
    gpuProcesses: [
      {
        pid: 10,
        gpuUuid: GPU0,
        gpuIndex: 0,
        processName: 'python',
        usedMemoryBytes: 1000 * MIB,
        containerId: A,
        containerRuntime: 'docker',
      },
      {
        pid: 11,
        gpuUuid: GPU0,
        gpuIndex: 0,
        processName: 'python',
        usedMemoryBytes: 500 * MIB,
        containerId: A,
        containerRuntime: 'docker',
      },
      {
        pid: 12,
        gpuUuid: GPU1,
        gpuIndex: 1,
        processName: 'python',
        usedMemoryBytes: 200 * MIB,
        containerId: A,
        containerRuntime: 'docker',
      },
      {
        pid: 20,
        gpuUuid: GPU1,
        gpuIndex: 1,
        processName: 'vllm',
        usedMemoryBytes: 3000 * MIB,
        containerId: B,
        containerRuntime: 'docker',
      },
      // In a container the engines do not know (a CRI pod on this node): the id only.
      {
        pid: 30,
        gpuUuid: GPU1,
        gpuIndex: 1,
        processName: 'triton',
        usedMemoryBytes: 100 * MIB,
        containerId: 'c'.repeat(64),
        containerRuntime: 'containerd',
      },
      { pid: 40, gpuUuid: GPU0, gpuIndex: 0, processName: 'Xorg', usedMemoryBytes: 50 * MIB },
    ],
    gpuProcessUtilization: [
      {
        pid: 10,
        gpuIndex: 0,
        processName: 'python',
        smRatio: 0.6,
        memoryRatio: 0.2,
        containerId: A,
      },
      {
        pid: 11,
        gpuIndex: 0,
        processName: 'python',
        smRatio: 0.55,
        memoryRatio: 0.1,
        containerId: A,
      },
      { pid: 20, gpuIndex: 1, processName: 'vllm', smRatio: 0.3, containerId: B },
      // MIG: pmon cannot tell: no utilization series at all.
      { pid: 12, gpuIndex: 1, processName: 'python', containerId: A },
      { pid: 40, gpuIndex: 0, processName: 'Xorg', smRatio: 0 },
    ],
  };

  it('labels process series with their container, or empty labels outside containers', () => {
    const out = rows(derive(processes, docker), 'gpulse_gpu_process_memory_used_bytes');
    expect(out).toContainEqual({
      gpu: '0',
      uuid: GPU0,
      pid: '10',
      process_name: 'python',
      container_id: A,
      container_name: 'trainer',
      image: 'pytorch:2.5',
      pod: 'trainer-0',
      namespace: 'ml',
      value: 1000 * MIB,
    });
    expect(out).toContainEqual({
      gpu: '1',
      uuid: GPU1,
      pid: '30',
      process_name: 'triton',
      container_id: 'c'.repeat(64),
      container_name: '',
      image: '',
      pod: '',
      namespace: '',
      value: 100 * MIB,
    });
    expect(out).toContainEqual({
      gpu: '0',
      uuid: GPU0,
      pid: '40',
      process_name: 'Xorg',
      container_id: '',
      container_name: '',
      image: '',
      pod: '',
      namespace: '',
      value: 50 * MIB,
    });
  });

  it('sums GPU memory per container and GPU', () => {
    const out = rows(derive(processes, docker), 'gpulse_container_gpu_memory_used_bytes');
    expect(out.map((r) => [r.container_name, r.gpu, r.value / MIB]).sort()).toEqual(
      [
        ['', '1', 100],
        ['server', '1', 3000],
        ['trainer', '0', 1500],
        ['trainer', '1', 200],
      ].sort(),
    );
  });

  it('per-container utilization is the sum of its processes (at most 1); unknown stays absent', () => {
    const samples = derive(processes, docker);
    const util = rows(samples, 'gpulse_container_gpu_utilization_ratio');
    expect(util.map((r) => [r.container_name, r.gpu, r.uuid, r.value]).sort()).toEqual(
      [
        ['trainer', '0', GPU0, 1],
        ['server', '1', GPU1, 0.3],
      ].sort(),
    );
    const perProcess = rows(samples, 'gpulse_gpu_process_utilization_ratio');
    expect(perProcess.find((r) => r.pid === '10')).toMatchObject({
      container_name: 'trainer',
      uuid: GPU0,
      value: 0.6,
    });
    expect(perProcess.find((r) => r.pid === '12')).toBeUndefined();
    expect(perProcess.find((r) => r.pid === '40')).toMatchObject({ container_name: '', value: 0 });
    expect(
      rows(samples, 'gpulse_gpu_process_memory_utilization_ratio').find((r) => r.pid === '11')
        ?.value,
    ).toBe(0.1);
  });

  it('a process repeated by its source (ticks read back to back) is one series, counted once', () => {
    const p = processes.gpuProcesses![0]!;
    const u = processes.gpuProcessUtilization![0]!;
    const samples = derive(
      { gpus, gpuProcesses: [p, p, p], gpuProcessUtilization: [u, u] },
      docker,
    );
    expect(rows(samples, 'gpulse_gpu_process_memory_used_bytes')).toHaveLength(1);
    expect(rows(samples, 'gpulse_container_gpu_memory_used_bytes').map((r) => r.value)).toEqual([
      1000 * MIB,
    ]);
    expect(rows(samples, 'gpulse_container_gpu_utilization_ratio').map((r) => r.value)).toEqual([
      0.6,
    ]);
  });

  it('without container facts (Docker down) processes still show their container id', () => {
    const out = rows(derive(processes), 'gpulse_gpu_process_memory_used_bytes');
    expect(out.find((r) => r.pid === '20')).toMatchObject({
      container_id: B,
      container_name: '',
      image: '',
    });
  });
});

describe('gpuAttributions', () => {
  it('joins GPU processes and pmon rows with the containers the engines name, once per snapshot', () => {
    const store = new StateStore({ clock: new FakeClock(), log: silentLogger() });
    store.ok('nvidia-smi', {
      samples: [],
      facts: {
        gpus: [gpu(0, GPU0), gpu(1, GPU1)],
        gpuProcesses: [
          { pid: 10, gpuUuid: GPU0, processName: 'python', containerId: A },
          { pid: 10, gpuUuid: GPU0, processName: 'python', containerId: A },
          { pid: 12, gpuUuid: GPU0, processName: 'python' },
        ],
        // A process pmon sees (graphics, or between two process-list ticks): GPU by index.
        gpuProcessUtilization: [{ pid: 20, gpuIndex: 1, smRatio: 0.5, containerId: B }],
      },
    });
    store.ok('docker', {
      samples: [],
      facts: {
        containers: [{ id: A, name: 'trainer', image: 'x', pod: 'trainer-0', namespace: 'ml' }],
      },
    });
    const snap = store.current();
    const list = gpuAttributions(snap);
    expect(list).toEqual([
      {
        gpuUuid: GPU0,
        container: 'trainer',
        containerId: A,
        namespace: 'ml',
        pod: 'trainer-0',
        pid: 10,
      },
      // No engine knows B (containerd without a docker collector): its short id names it.
      { gpuUuid: GPU1, container: 'bbbbbbbbbbbb', containerId: B, pid: 20 },
    ]);
    expect(gpuAttributions(snap)).toBe(list);
  });
});
