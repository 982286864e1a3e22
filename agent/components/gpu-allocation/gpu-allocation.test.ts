import { describe, expect, it } from 'vitest';
import type {
  AllocatableDevice,
  DeviceAllocation,
  GpuReading,
  LostGpu,
  MigDeviceReading,
} from '../../core/facts.js';
import type { Sample } from '../../core/types.js';
import { probe } from '../../../test/helpers/deriver-probe.js';
import { collectorState, snapshotOf } from '../../../test/helpers/snapshots.js';
import type { AgentContext } from '../../core/component.js';
import type { Deriver } from '../../core/types.js';
import { createGpuAllocation, GpuAllocation, type GpuAllocationOptions } from './component.js';
import { IdleTracker, spoken } from './idle.js';

const T0 = 1_800_000_000_000;
const UUID0 = 'GPU-00000000-1111-2222-3333-444444444444';
const UUID1 = 'GPU-11111111-1111-2222-3333-444444444444';
const UUID2 = 'GPU-22222222-1111-2222-3333-444444444444';
const MIG1 = 'MIG-aaaaaaaa-1111-2222-3333-444444444444';
const MIG2 = 'MIG-bbbbbbbb-1111-2222-3333-444444444444';

function gpu(index: number, uuid: string, over: Partial<GpuReading> = {}): GpuReading {
  return {
    index,
    uuid,
    utilizationRatio: 0,
    clocksHz: {},
    maxClocksHz: {},
    throttle: {},
    throttleSeconds: {},
    ...over,
  };
}

function mig(index: number, gi: number, uuid: string): MigDeviceReading {
  return { index, gpuInstanceId: gi, computeInstanceId: 0, uuid };
}

function alloc(deviceId: string, over: Partial<DeviceAllocation> = {}): DeviceAllocation {
  return {
    resourceName: 'nvidia.com/gpu',
    deviceId,
    pod: 'trainer-0',
    namespace: 'ml',
    container: 'main',
    ...over,
  };
}

interface Facts {
  readonly gpus?: GpuReading[];
  readonly lostGpus?: LostGpu[];
  readonly allocations?: DeviceAllocation[];
  readonly allocatable?: AllocatableDevice[];
}

/** A snapshot at `at` of nvidia-smi's GPUs and the kubelet's allocations (absent: no facts). */
function snap(at: number, f: Facts) {
  return snapshotOf(
    collectorState('nvidia-smi', at, {
      samples: [],
      facts: { gpus: f.gpus ?? [], ...(f.lostGpus ? { lostGpus: f.lostGpus } : {}) },
    }),
    collectorState(
      'pod-resources',
      at,
      f.allocations
        ? {
            samples: [],
            facts: {
              deviceAllocations: f.allocations,
              ...(f.allocatable ? { allocatableDevices: f.allocatable } : {}),
            },
          }
        : { samples: [] },
      f.allocations ? 'ok' : 'error',
    ),
  );
}

function values(samples: readonly Sample[], name: string): [Record<string, string>, number][] {
  return samples.filter((s) => s.desc.name === name).map((s) => [{ ...s.labels }, s.value]);
}

const IDLE = 'gpulse_gpu_allocated_idle_seconds_total';
const IDLE_FLAG = 'gpulse_gpu_allocation_idle';
const OPTIONS: GpuAllocationOptions = { idleBelow: 0.05, idleAfter: 600_000 };
const POD = { pod: 'trainer-0', namespace: 'ml', container: 'main' };

/** Drives one allocation of GPU 0 at a utilization per step of `stepMs`; returns the probe. */
function driver(options: GpuAllocationOptions = OPTIONS) {
  const allocation = new GpuAllocation(options);
  const p = probe(allocation);
  let t = T0;
  return {
    probe: p,
    get t() {
      return t;
    },
    /** One snapshot `stepMs` after the last one, GPU 0 at `utilization`. */
    step(utilization: number | undefined, stepMs = 10_000, allocations = [alloc(UUID0)]) {
      t += stepMs;
      return p.derive(
        snap(t, { gpus: [gpu(0, UUID0, { utilizationRatio: utilization })], allocations }),
      );
    },
  };
}

describe('joining allocations to GPUs', () => {
  it('names the GPU or MIG device of every id form, and keeps unknown ids with what is known', () => {
    const gpus = [
      gpu(0, UUID0),
      gpu(1, UUID1, {
        migEnabled: true,
        utilizationRatio: undefined,
        migDevices: [mig(0, 1, MIG1), mig(1, 2, MIG2)],
      }),
    ];
    const allocations = [
      alloc(UUID0),
      alloc(MIG1, { resourceName: 'nvidia.com/mig-1g.10gb', pod: 'a' }),
      alloc('1:1', { resourceName: 'nvidia.com/mig-1g.10gb', pod: 'b' }),
      alloc('0', { pod: 'c' }),
      alloc(`MIG-${UUID1}/1/0`, { resourceName: 'nvidia.com/mig-1g.10gb', pod: 'd' }),
      alloc(`${UUID0}::3`, { resourceName: 'nvidia.com/gpu.shared', pod: 'e' }),
      // Ids of devices this agent does not see.
      alloc(UUID2, { pod: 'u1' }),
      alloc('MIG-cccccccc-1111-2222-3333-444444444444', {
        resourceName: 'nvidia.com/mig-1g.10gb',
        pod: 'u2',
      }),
      alloc('7', { pod: 'u3' }),
      alloc('1:5', { resourceName: 'nvidia.com/mig-1g.10gb', pod: 'u4' }),
      alloc('fpga-0', { resourceName: 'example.com/thing', pod: 'u5' }),
    ];
    const allocatable: AllocatableDevice[] = [
      { resourceName: 'nvidia.com/gpu', deviceId: UUID0 },
      { resourceName: 'nvidia.com/gpu', deviceId: UUID2 },
      { resourceName: 'nvidia.com/gpu', deviceId: 'GPU-99999999-1111-2222-3333-444444444444' },
      { resourceName: 'nvidia.com/mig-1g.10gb', deviceId: MIG1 },
      { resourceName: 'nvidia.com/mig-1g.10gb', deviceId: MIG2 },
    ];
    const samples = probe(new GpuAllocation(OPTIONS)).derive(
      snap(T0, { gpus, allocations, allocatable }),
    );
    const info = (pod: string) =>
      values(samples, 'gpulse_gpu_allocation_info')
        .filter(([l]) => l.pod === pod)
        .map(([l, v]) => [l.gpu, l.uuid, l.mig_uuid, l.device, l.resource, v]);
    expect(info('trainer-0')).toEqual([['0', UUID0, '', UUID0, 'nvidia.com/gpu', 1]]);
    expect(info('a')).toEqual([['1', UUID1, MIG1, MIG1, 'nvidia.com/mig-1g.10gb', 1]]);
    expect(info('b')).toEqual([['1', UUID1, MIG2, '1:1', 'nvidia.com/mig-1g.10gb', 1]]);
    expect(info('c')).toEqual([['0', UUID0, '', '0', 'nvidia.com/gpu', 1]]);
    expect(info('d')).toEqual([
      ['1', UUID1, MIG1, `MIG-${UUID1}/1/0`, 'nvidia.com/mig-1g.10gb', 1],
    ]);
    expect(info('e')).toEqual([['0', UUID0, '', `${UUID0}::3`, 'nvidia.com/gpu.shared', 1]]);
    expect(info('u1')).toEqual([['', UUID2, '', UUID2, 'nvidia.com/gpu', 1]]);
    expect(info('u2')).toEqual([
      [
        '',
        '',
        'MIG-cccccccc-1111-2222-3333-444444444444',
        'MIG-cccccccc-1111-2222-3333-444444444444',
        'nvidia.com/mig-1g.10gb',
        1,
      ],
    ]);
    expect(info('u3')).toEqual([['7', '', '', '7', 'nvidia.com/gpu', 1]]);
    // GPU 1 is there, its MIG device 5 is not (MIG reconfigured under the kubelet).
    expect(info('u4')).toEqual([['1', UUID1, '', '1:5', 'nvidia.com/mig-1g.10gb', 1]]);
    expect(info('u5')).toEqual([['', '', '', 'fpga-0', 'example.com/thing', 1]]);

    expect(values(samples, 'gpulse_gpu_allocatable_devices')).toEqual([
      [{ resource: 'nvidia.com/gpu' }, 3],
      [{ resource: 'nvidia.com/mig-1g.10gb' }, 2],
    ]);
    expect(values(samples, 'gpulse_gpu_allocated_devices')).toEqual([
      [{ resource: 'nvidia.com/gpu' }, 4],
      [{ resource: 'nvidia.com/mig-1g.10gb' }, 5],
      [{ resource: 'nvidia.com/gpu.shared' }, 1],
      [{ resource: 'example.com/thing' }, 1],
    ]);
    expect(values(samples, 'gpulse_gpu_allocated_unknown_devices')).toEqual([
      [{ resource: 'nvidia.com/gpu' }, 2],
      [{ resource: 'nvidia.com/mig-1g.10gb' }, 2],
      [{ resource: 'nvidia.com/gpu.shared' }, 0],
      [{ resource: 'example.com/thing' }, 1],
    ]);

    // Idle series: whole GPUs the agent sees (UUID, index, shared replica), none for MIG devices
    // or devices it does not see.
    expect(values(samples, IDLE).map(([l]) => [l.pod, l.gpu, l.uuid])).toEqual([
      ['trainer-0', '0', UUID0],
      ['c', '0', UUID0],
      ['e', '0', UUID0],
    ]);
  });

  it('serves nothing without an answer from the kubelet, and zeros when it lists no allocation', () => {
    const allocation = new GpuAllocation(OPTIONS);
    expect(probe(allocation).derive(snap(T0, { gpus: [gpu(0, UUID0)] }))).toEqual([]);
    const samples = probe(allocation).derive(
      snap(T0 + 1000, {
        gpus: [gpu(0, UUID0)],
        allocations: [],
        allocatable: [{ resourceName: 'nvidia.com/gpu', deviceId: UUID0 }],
      }),
    );
    expect(samples.map((s) => [s.desc.name, s.value])).toEqual([
      ['gpulse_gpu_allocatable_devices', 1],
      ['gpulse_gpu_allocated_devices', 0],
      ['gpulse_gpu_allocated_unknown_devices', 0],
    ]);
  });

  it('one series for two replicas of a shared GPU in one container', () => {
    const samples = probe(new GpuAllocation(OPTIONS)).derive(
      snap(T0, {
        gpus: [gpu(0, UUID0)],
        allocations: [alloc(`${UUID0}::0`), alloc(`${UUID0}::1`)],
      }),
    );
    expect(values(samples, 'gpulse_gpu_allocation_info').map(([l]) => l.device)).toEqual([
      `${UUID0}::0`,
      `${UUID0}::1`,
    ]);
    expect(values(samples, IDLE)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 0]]);
  });
});

describe('idle allocated GPUs', () => {
  it('turns idle after the window at 0 %, with one warning event and exact seconds', () => {
    const d = driver();
    d.step(0, 0); // first sight: nothing to count yet
    for (let i = 1; i < 60; i++) {
      const s = d.step(0);
      expect(values(s, IDLE_FLAG)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 0]]);
    }
    expect(d.probe.drainEvents()).toEqual([]);
    const s = d.step(0); // 600 s after first sight
    expect(values(s, IDLE)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 600]]);
    expect(values(s, IDLE_FLAG)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 1]]);
    expect(d.probe.drainEvents()).toEqual([
      {
        type: 'gpu.allocation_idle',
        severity: 'warning',
        source: 'gpu-allocation',
        ts: T0 + 600_000,
        message:
          `GPU 0 (${UUID0}) is allocated to ml/trainer-0 (container main) but has run under 5 % ` +
          'utilization for 10 min: the GPU is reserved and unused. Scale the workload down or free ' +
          'the GPU for another pod.',
        labels: { gpu: '0', uuid: UUID0, ...POD },
        data: {
          idleSeconds: 600,
          utilizationRatio: 0,
          resource: 'nvidia.com/gpu',
          deviceId: UUID0,
        },
      },
    ]);
    // Still idle: no second event, the counter keeps counting.
    expect(values(d.step(0.01), IDLE)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 610]]);
    expect(d.probe.drainEvents()).toEqual([]);
  });

  it('is never idle under load, nor at exactly the threshold', () => {
    for (const utilization of [0.5, 0.05]) {
      const d = driver();
      let s: readonly Sample[] = [];
      for (let i = 0; i < 120; i++) s = d.step(utilization);
      expect(values(s, IDLE)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 0]]);
      expect(values(s, IDLE_FLAG)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 0]]);
      expect(d.probe.drainEvents()).toEqual([]);
    }
  });

  it('a short busy spell restarts the window but not the counter', () => {
    const d = driver();
    d.step(0, 0);
    for (let i = 0; i < 50; i++) d.step(0); // 500 s idle
    d.step(0.9); // busy
    let s: readonly Sample[] = [];
    for (let i = 0; i < 59; i++) s = d.step(0); // 590 s idle again
    expect(values(s, IDLE)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 1090]]);
    expect(values(s, IDLE_FLAG)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 0]]);
    expect(d.probe.drainEvents()).toEqual([]);
    expect(values(d.step(0), IDLE_FLAG)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 1]]);
    expect(d.probe.drainEvents().map((e) => e.type)).toEqual(['gpu.allocation_idle']);
  });

  it('goes idle → active → idle with one event each, the counter only growing', () => {
    const d = driver({ ...OPTIONS, idleAfter: 60_000 });
    d.step(0, 0);
    for (let i = 0; i < 9; i++) d.step(0);
    const events = () => d.probe.drainEvents().map((e) => [e.type, e.severity, e.data]);
    expect(events()).toEqual([
      [
        'gpu.allocation_idle',
        'warning',
        { idleSeconds: 60, utilizationRatio: 0, resource: 'nvidia.com/gpu', deviceId: UUID0 },
      ],
    ]);
    const busy = d.step(0.6);
    expect(values(busy, IDLE)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 90]]);
    expect(values(busy, IDLE_FLAG)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 0]]);
    const active = d.probe.drainEvents();
    expect(active).toEqual([
      {
        type: 'gpu.allocation_active',
        severity: 'info',
        source: 'gpu-allocation',
        ts: d.t,
        message: `GPU 0 (${UUID0}) allocated to ml/trainer-0 (container main) is in use again after 1 min idle`,
        labels: { gpu: '0', uuid: UUID0, ...POD },
        data: {
          idleSeconds: 90,
          utilizationRatio: 0.6,
          resource: 'nvidia.com/gpu',
          deviceId: UUID0,
        },
      },
    ]);
    const seen: number[] = [];
    for (let i = 0; i < 7; i++) seen.push(values(d.step(0), IDLE)[0]![1]);
    expect(seen).toEqual([100, 110, 120, 130, 140, 150, 160]);
    expect(events()).toEqual([
      [
        'gpu.allocation_idle',
        'warning',
        { idleSeconds: 60, utilizationRatio: 0, resource: 'nvidia.com/gpu', deviceId: UUID0 },
      ],
    ]);
  });

  it('counts a stalled agent as one capped step, not hours', () => {
    const d = driver({ ...OPTIONS, maxStep: 60_000 });
    d.step(0, 0);
    d.step(0, 10_000);
    const s = d.step(0, 7_200_000);
    expect(values(s, IDLE)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 70]]);
    expect(values(s, IDLE_FLAG)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 0]]);
  });

  it('unknown utilization and lost GPUs are not idle; MIG allocations get no idle series', () => {
    const d = driver({ ...OPTIONS, idleAfter: 0 });
    d.step(undefined, 0);
    let s = d.step(undefined);
    expect(values(s, IDLE)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 0]]);
    expect(values(s, IDLE_FLAG)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 0]]);

    const allocation = new GpuAllocation({ ...OPTIONS, idleAfter: 0 });
    const p = probe(allocation);
    const lost: LostGpu = {
      reading: gpu(0, UUID0, { utilizationRatio: undefined }),
      reason: 'GPU is lost',
      since: T0,
    };
    p.derive(snap(T0, { gpus: [gpu(0, UUID0)], allocations: [alloc(UUID0)] }));
    expect(p.drainEvents().map((e) => e.type)).toEqual(['gpu.allocation_idle']);
    s = p.derive(snap(T0 + 10_000, { gpus: [], lostGpus: [lost], allocations: [alloc(UUID0)] }));
    expect(values(s, IDLE_FLAG)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 0]]);
    expect(values(s, IDLE)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 0]]);
    // Lost is not "in use again": no active event.
    expect(p.drainEvents()).toEqual([]);

    s = probe(new GpuAllocation({ ...OPTIONS, idleAfter: 0 })).derive(
      snap(T0, {
        gpus: [gpu(1, UUID1, { migDevices: [mig(0, 1, MIG1)] })],
        allocations: [alloc(MIG1, { resourceName: 'nvidia.com/mig-1g.10gb' })],
      }),
    );
    expect(values(s, IDLE)).toEqual([]);
    expect(values(s, IDLE_FLAG)).toEqual([]);
  });

  it('keeps an allocation whose GPU goes unseen, under the labels it had, as not idle', () => {
    const allocation = new GpuAllocation(OPTIONS);
    const p = probe(allocation);
    p.derive(snap(T0, { gpus: [gpu(0, UUID0)], allocations: [alloc('0')] }));
    let s = p.derive(snap(T0 + 10_000, { gpus: [gpu(0, UUID0)], allocations: [alloc('0')] }));
    expect(values(s, IDLE)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 10]]);
    // nvidia-smi fails: the index id names no GPU now.
    s = p.derive(snap(T0 + 20_000, { allocations: [alloc('0')] }));
    expect(values(s, 'gpulse_gpu_allocation_info').map(([l]) => [l.gpu, l.uuid])).toEqual([
      ['0', ''],
    ]);
    expect(values(s, IDLE)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 10]]);
    expect(values(s, IDLE_FLAG)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 0]]);
  });

  it('keeps its counter while the kubelet blinks, and drops it once the allocation is gone', () => {
    const allocation = new GpuAllocation({ ...OPTIONS, forgetAfter: 300_000 });
    const p = probe(allocation);
    const at = (t: number, allocations?: DeviceAllocation[]) =>
      values(p.derive(snap(T0 + t, { gpus: [gpu(0, UUID0)], allocations })), IDLE);
    at(0, [alloc(UUID0)]);
    expect(at(30_000, [alloc(UUID0)])).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 30]]);
    // The pod-resources collector fails for a minute, then the container is listed again.
    expect(at(40_000)).toEqual([]);
    expect(at(90_000)).toEqual([]);
    expect(at(100_000, [alloc(UUID0)])).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 30]]);
    expect(at(110_000, [alloc(UUID0)])).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 40]]);
    // The pod goes away (listed without it) for longer than forgetAfter: a new one starts at 0.
    expect(at(120_000, [])).toEqual([]);
    expect(at(420_000, [])).toEqual([]);
    expect(at(430_000, [alloc(UUID0)])).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 0]]);
  });

  it('bounds its state to the allocations listed lately', () => {
    const allocation = new GpuAllocation({ ...OPTIONS, forgetAfter: 60_000 });
    const p = probe(allocation);
    const many = Array.from({ length: 50 }, (_, i) => alloc(UUID0, { pod: `p${i}` }));
    p.derive(snap(T0, { gpus: [gpu(0, UUID0)], allocations: many }));
    expect(
      values(p.derive(snap(T0 + 1, { gpus: [gpu(0, UUID0)], allocations: many })), IDLE),
    ).toHaveLength(50);
    p.derive(snap(T0 + 2, { gpus: [gpu(0, UUID0)], allocations: [] }));
    p.derive(snap(T0 + 60_002, { gpus: [gpu(0, UUID0)], allocations: [] }));
    // Gone for forgetAfter: a pod of the same name starts over.
    const back = p.derive(snap(T0 + 70_000, { gpus: [gpu(0, UUID0)], allocations: [many[0]!] }));
    expect(values(back, IDLE)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD, pod: 'p0' }, 0]]);
  });

  it('forgets the allocations gone longest first past its bound', () => {
    const tracker = new IdleTracker({
      idleBelow: 0.05,
      idleAfter: 0,
      maxStep: 60_000,
      forgetAfter: 3_600_000,
      maxTracked: 2,
    });
    const obs = (key: string) => ({
      key,
      labels: { gpu: '0', uuid: UUID0, pod: key, namespace: 'ml', container: 'main' },
      utilization: 0,
      resource: 'nvidia.com/gpu',
      deviceId: UUID0,
    });
    tracker.update(T0, [obs('a'), obs('b'), obs('c')]);
    tracker.update(T0 + 1000, [obs('b'), obs('c')]); // a gone
    tracker.update(T0 + 2000, [obs('c')]); // b gone; a, gone longest, is dropped
    expect([tracker.has('a'), tracker.has('b'), tracker.has('c')]).toEqual([false, true, true]);
    expect(tracker.samples().map((s) => s.labels.pod)).toEqual(['c', 'c']);
  });

  it('says durations as people do', () => {
    expect([0, 45_500, 600_000, 3_600_000, 7_500_000].map(spoken)).toEqual([
      '0 s',
      '45 s',
      '10 min',
      '1 h',
      '2 h 5 min',
    ]);
  });
});

describe('the component', () => {
  it('adds its deriver to the store, and starts and stops with nothing to open', async () => {
    const derivers: Deriver[] = [];
    const component = createGpuAllocation({ idleBelow: 0.05, idleAfter: 0 });
    const ctx = {
      store: { addDeriver: (d: Deriver) => derivers.push(d) },
    } as unknown as AgentContext;
    component.register?.(ctx);
    await component.start(ctx);
    expect(component.name).toBe('gpu-allocation');
    expect(derivers.map((d) => d.name)).toEqual(['gpu-allocation']);
    const { samples, events } = derivers[0]!.derive(
      snap(T0, { gpus: [gpu(0, UUID0)], allocations: [alloc(UUID0)] }),
    );
    expect(values(samples, IDLE_FLAG)).toEqual([[{ gpu: '0', uuid: UUID0, ...POD }, 1]]);
    expect(events?.map((e) => e.type)).toEqual(['gpu.allocation_idle']);
    await component.stop();
  });
});
