import { describe, expect, it } from 'vitest';
import type { GpuReading, ThrottleReason } from '../../core/facts.js';
import type { CollectorState, Sample } from '../../core/types.js';
import type { XidRecord, XidTotal } from '../../../collectors/xid.js';
import type { DcgmGpuFact } from '../../../collectors/dcgm/dcgm-reading.js';
import { gpuReadingSamples } from '../../../collectors/gpu-series.js';
import { GpuHealth } from './component.js';
import { gpuViews } from './gpu-views.js';
import { probe } from '../../../test/helpers/deriver-probe.js';
import {
  collectorState as state,
  snapshotOf as snapshot,
} from '../../../test/helpers/snapshots.js';

const T0 = 1_800_000_000_000;
const UUID = 'GPU-11111111-2222-3333-4444-555555555555';

function reading(over: Partial<GpuReading> = {}, active: ThrottleReason[] = []): GpuReading {
  return {
    index: 0,
    uuid: UUID,
    name: 'NVIDIA H100 80GB HBM3',
    pciBusId: '00000000:18:00.0',
    driverVersion: '590.48.01',
    utilizationRatio: 0.97,
    memoryUsedBytes: 40_000 * 1048576,
    memoryFreeBytes: 41_000 * 1048576,
    memoryTotalBytes: 81_559 * 1048576,
    temperatureCelsius: 70,
    powerDrawWatts: 650,
    clocksHz: { sm: 1_980_000_000, memory: 2_619_000_000 },
    maxClocksHz: {},
    throttle: {
      gpu_idle: false,
      sw_power_cap: false,
      hw_slowdown: false,
      sw_thermal_slowdown: active.includes('sw_thermal_slowdown'),
      hw_thermal_slowdown: active.includes('hw_thermal_slowdown'),
      hw_power_brake_slowdown: false,
      sync_boost: false,
      applications_clocks_setting: false,
      display_clock_setting: false,
    },
    throttleSeconds: {},
    ...over,
  };
}

function series(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): Sample[] {
  return samples.filter(
    (s) => s.desc.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

describe('throttling: integrated seconds and episodes', () => {
  it('integrates throttle seconds where the driver has no counter and emits one episode with start and end', () => {
    const health = new GpuHealth({ compat: [] });
    const hot: ThrottleReason[] = ['hw_thermal_slowdown', 'sw_thermal_slowdown'];
    const temps = [70, 84, 88, 91, 89, 75, 71];
    const power = [650, 600, 520, 500, 510, 640, 650];
    const active = [false, true, true, true, true, false, false];
    let samples: Sample[] = [];
    for (let i = 0; i < temps.length; i++) {
      const r = reading(
        { temperatureCelsius: temps[i], powerDrawWatts: power[i] },
        active[i] ? hot : [],
      );
      const snap = snapshot(
        state('nvidia-smi', T0 + i * 1000, { samples: [], facts: { gpus: [r] } }),
      );
      samples = probe(health).derive(snap) as Sample[];
      // The same sample seen again (another collector changed) counts once.
      probe(health).derive(snapshot(...snap.collectors.values()));
    }
    const hw = series(samples, 'gpulse_gpu_throttle_seconds_total', {
      reason: 'hw_thermal_slowdown',
      uuid: UUID,
    });
    // On at samples 1..4: 3 whole seconds plus two half seconds at the edges.
    expect(hw.map((s) => s.value)).toEqual([4]);
    expect(
      series(samples, 'gpulse_gpu_throttle_seconds_total', { reason: 'gpu_idle' })[0]?.value,
    ).toBe(0);
    const events = probe(health).drainEvents();
    expect(events.map((e) => e.type)).toEqual(['gpu.throttle_start', 'gpu.throttle_episode']);
    const episode = events[1]!;
    expect(episode).toMatchObject({
      severity: 'critical',
      labels: { gpu: '0', uuid: UUID },
      ts: T0 + 5000,
      data: {
        start: new Date(T0 + 1000).toISOString(),
        end: new Date(T0 + 5000).toISOString(),
        durationSeconds: 4,
        reasons: ['hw_thermal_slowdown', 'sw_thermal_slowdown'],
        peakTemperatureCelsius: 91,
        peakPowerWatts: 600,
      },
    });
    expect(probe(health).drainEvents()).toEqual([]);
  });

  it('leaves reasons with a driver counter to the collector, and does not bridge a collector gap', () => {
    const health = new GpuHealth({ compat: [] });
    const withCounter = (i: number, on: boolean) =>
      snapshot(
        state('nvidia-smi', T0 + i, {
          samples: [],
          facts: {
            gpus: [
              reading(
                { throttleSeconds: { hw_thermal_slowdown: 12.5 } },
                on ? ['hw_thermal_slowdown'] : [],
              ),
            ],
          },
        }),
      );
    probe(health).derive(withCounter(0, true));
    let out = probe(health).derive(withCounter(1000, true));
    expect(
      series(out, 'gpulse_gpu_throttle_seconds_total', { reason: 'hw_thermal_slowdown' }),
    ).toEqual([]);
    // Two minutes without samples: not counted as throttled.
    out = probe(health).derive(withCounter(121_000, true));
    expect(
      series(out, 'gpulse_gpu_throttle_seconds_total', { reason: 'sw_thermal_slowdown' })[0]?.value,
    ).toBe(0);
  });

  it('idle, application clocks, sync boost and the software power cap are not episodes', () => {
    const health = new GpuHealth({ compat: [] });
    for (let i = 0; i < 3; i++) {
      const r = reading();
      const benign = {
        ...r,
        throttle: {
          ...r.throttle,
          gpu_idle: true,
          sw_power_cap: true,
          sync_boost: true,
          applications_clocks_setting: true,
        },
      };
      probe(health).derive(
        snapshot(state('nvidia-smi', T0 + i * 1000, { samples: [], facts: { gpus: [benign] } })),
      );
    }
    expect(probe(health).drainEvents()).toEqual([]);
  });
});

function xidRecord(
  seq: number,
  xid: number,
  severity: XidRecord['severity'],
  over: Partial<XidRecord> = {},
): XidRecord {
  return {
    seq,
    source: 'kmsg',
    at: T0 + seq,
    xid,
    severity,
    pciBusId: '0000:18:00',
    text: `text ${xid}`,
    ...over,
  };
}

describe('Xid counting and events', () => {
  it('maps kernel-log Xids to the GPU by bus id, counts them and emits one event per Xid', () => {
    const health = new GpuHealth({ compat: [] });
    const gpus = state('nvidia-smi', T0, { samples: [], facts: { gpus: [reading()] } });
    const totals: XidTotal[] = [
      { source: 'kmsg', pciBusId: '0000:18:00', xid: 79, severity: 'critical', count: 2 },
    ];
    const kmsg = state('kmsg', T0, {
      samples: [],
      facts: {
        xidErrors: [xidRecord(1, 79, 'critical'), xidRecord(2, 79, 'critical')],
        xidTotals: totals,
      },
    });
    const out = probe(health).derive(snapshot(gpus, kmsg));
    expect(series(out, 'gpulse_gpu_xid_errors_total')).toEqual([
      expect.objectContaining({
        labels: { gpu: '0', uuid: UUID, xid: '79', severity: 'critical' },
        value: 2,
      }),
    ]);
    const events = probe(health).drainEvents();
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({
      type: 'gpu.xid',
      severity: 'critical',
      labels: { gpu: '0', uuid: UUID },
      data: {
        xid: 79,
        severity: 'critical',
        text: 'text 79',
        pciBusId: '0000:18:00',
        source: 'kmsg',
      },
    });
    // The same facts again: nothing new.
    probe(health).derive(snapshot(gpus, kmsg));
    expect(probe(health).drainEvents()).toEqual([]);
    // The GPU falls off the bus and vanishes from nvidia-smi: its Xids keep its labels.
    const later = state('kmsg', T0 + 10, {
      samples: [],
      facts: {
        xidErrors: [xidRecord(3, 79, 'critical')],
        xidTotals: [{ ...totals[0]!, count: 3 }],
      },
    });
    const out2 = probe(health).derive(
      snapshot(state('nvidia-smi', T0 + 10, { samples: [], facts: { gpus: [] } }), later),
    );
    expect(series(out2, 'gpulse_gpu_xid_errors_total')[0]).toMatchObject({
      labels: { gpu: '0', uuid: UUID },
      value: 3,
    });
    expect(probe(health).drainEvents()).toHaveLength(1);
  });

  it('counts a DCGM Xid once its grace is over, unless the kernel log reported the same Xid', () => {
    const health = new GpuHealth({ compat: [] });
    const gpus = (at: number) =>
      state('nvidia-smi', at, { samples: [], facts: { gpus: [reading()] } });
    const dcgmRecords: XidRecord[] = [];
    const dcgm = (at: number) =>
      state('dcgm', at, { samples: [], facts: { xidErrors: [...dcgmRecords], xidTotals: [] } });
    const kmsgRecords: XidRecord[] = [];
    const kmsgTotals: XidTotal[] = [];
    const kmsg = (at: number) =>
      state('kmsg', at, {
        samples: [],
        facts: { xidErrors: [...kmsgRecords], xidTotals: [...kmsgTotals] },
      });
    const derive = (at: number) => probe(health).derive(snapshot(gpus(at), dcgm(at), kmsg(at)));
    const count = (out: readonly Sample[], xid: string) =>
      series(out, 'gpulse_gpu_xid_errors_total', { xid })[0]?.value;

    // Xid 48: the kernel log has it (at T0 + 100), DCGM reports it a few seconds later.
    kmsgRecords.push(xidRecord(1, 48, 'critical', { at: T0 + 100 }));
    kmsgTotals.push({
      source: 'kmsg',
      pciBusId: '0000:18:00',
      xid: 48,
      severity: 'critical',
      count: 1,
    });
    derive(T0 + 200);
    dcgmRecords.push(
      xidRecord(1, 48, 'critical', { source: 'dcgm', at: T0 + 4000, gpuUuid: UUID, gpuIndex: 0 }),
    );
    derive(T0 + 4000);
    // Xid 79: DCGM only (the kernel log lost it).
    dcgmRecords.push(
      xidRecord(2, 79, 'critical', { source: 'dcgm', at: T0 + 5000, gpuUuid: UUID, gpuIndex: 0 }),
    );
    let out = derive(T0 + 5000);
    expect(count(out, '48')).toBe(1);
    // Still within the grace: 79 waits.
    expect(count(out, '79')).toBeUndefined();
    expect(
      probe(health)
        .drainEvents()
        .map((e) => [e.data?.xid, e.source]),
    ).toEqual([[48, 'kmsg']]);
    out = derive(T0 + 16_000);
    expect(count(out, '48')).toBe(1);
    expect(count(out, '79')).toBe(1);
    expect(
      probe(health)
        .drainEvents()
        .map((e) => [e.data?.xid, e.source, e.labels]),
    ).toEqual([[79, 'dcgm', { gpu: '0', uuid: UUID }]]);
    // Seen again: nothing new.
    expect(count(derive(T0 + 30_000), '79')).toBe(1);
    expect(probe(health).drainEvents()).toEqual([]);
  });
});

describe('GPU views and DCGM-only GPUs', () => {
  const dcgmFact = (over: Partial<GpuReading> = {}): DcgmGpuFact => ({
    gpuId: 0,
    at: T0,
    reading: reading({ driverVersion: undefined, ...over }),
    fields: {
      DCGM_FI_PROF_SM_ACTIVE: 0.9,
      DCGM_FI_DEV_GPU_UTIL: 97,
      DCGM_FI_DEV_PCIE_REPLAY_COUNTER: 3,
    },
  });

  it('joins DCGM to the nvidia-smi GPU with the same UUID and serves standard series only for DCGM-only GPUs', () => {
    const health = new GpuHealth({ compat: [] });
    const both = snapshot(
      state('nvidia-smi', T0, { samples: [], facts: { gpus: [reading()] } }),
      state('dcgm', T0, { samples: [], facts: { dcgmGpus: [dcgmFact()] } }),
    );
    expect(gpuViews(both).map((v) => v.sources)).toEqual([['nvidia-smi', 'dcgm']]);
    expect(series(probe(health).derive(both), 'gpulse_gpu_utilization_ratio')).toEqual([]);
    // nvidia-smi starting: DCGM does not stand in (no switch of source a second after start).
    const starting = snapshot(
      state('nvidia-smi', T0, { samples: [] }, 'starting'),
      state('dcgm', T0, { samples: [], facts: { dcgmGpus: [dcgmFact()] } }),
    );
    expect(series(probe(health).derive(starting), 'gpulse_gpu_utilization_ratio')).toEqual([]);
    // nvidia-smi failing (hung, its series dropped): DCGM still reports the GPU, so it serves it.
    const failing = snapshot(
      state('nvidia-smi', T0, { samples: [] }, 'error'),
      state('dcgm', T0, { samples: [], facts: { dcgmGpus: [dcgmFact()] } }),
    );
    expect(series(probe(health).derive(failing), 'gpulse_gpu_utilization_ratio')).toEqual([
      expect.objectContaining({ labels: { gpu: '0', uuid: UUID }, value: 0.97 }),
    ]);
    // nvidia-smi absent here (no GPU driver tools): DCGM serves the GPU.
    const noSmi = snapshot(
      state('nvidia-smi', T0, { samples: [] }, 'no_data'),
      state('dcgm', T0, { samples: [], facts: { dcgmGpus: [dcgmFact()] } }),
    );
    expect(series(probe(health).derive(noSmi), 'gpulse_gpu_utilization_ratio')).toHaveLength(1);
    const alone = snapshot(state('dcgm', T0, { samples: [], facts: { dcgmGpus: [dcgmFact()] } }));
    expect(series(probe(health).derive(alone), 'gpulse_gpu_utilization_ratio')).toEqual([
      expect.objectContaining({ labels: { gpu: '0', uuid: UUID }, value: 0.97 }),
    ]);
  });

  it('keeps nvidia-smi’s identity while DCGM stands in: the info series stays one series', () => {
    const health = new GpuHealth({ compat: [] });
    const info = (samples: readonly Sample[]) =>
      series(samples, 'gpulse_gpu_info').map((x) => x.labels);
    const smi = reading({
      cudaVersion: '13.1',
      vbiosVersion: '96.00.A5.00.01',
      computeCapability: '9.0',
    });
    const before = info(
      probe(health).derive(
        snapshot(
          state('nvidia-smi', T0, { samples: gpuReadingSamples([smi]), facts: { gpus: [smi] } }),
          state('dcgm', T0, { samples: [], facts: { dcgmGpus: [dcgmFact()] } }),
        ),
      ),
    );
    // gpu-health adds no info while nvidia-smi serves the GPU; the collector's own is `before`.
    expect(before).toEqual([]);
    const during = probe(health).derive(
      snapshot(
        state('nvidia-smi', T0 + 1000, { samples: [] }, 'error'),
        state('dcgm', T0 + 1000, { samples: [], facts: { dcgmGpus: [dcgmFact({ index: 5 })] } }),
      ),
    );
    expect(info(during)).toEqual(info(gpuReadingSamples([smi])));
    expect(series(during, 'gpulse_gpu_utilization_ratio')).toEqual([
      expect.objectContaining({ labels: { gpu: '0', uuid: UUID }, value: 0.97 }),
    ]);
  });

  it('serves dcgm-exporter names, units and labels from nvidia-smi values, and DCGM’s own where it has them', () => {
    const health = new GpuHealth({ compat: ['dcgm'], hostname: 'node-7' });
    const r = reading({ minorNumber: 3, energyJoules: 1234.5, memoryReservedBytes: 512 * 1048576 });
    const out = probe(health).derive(
      snapshot(
        state('nvidia-smi', T0, { samples: [], facts: { gpus: [r] } }),
        state('dcgm', T0, { samples: [], facts: { dcgmGpus: [dcgmFact()] } }),
        state('kmsg', T0, { samples: [], facts: { xidErrors: [], xidTotals: [] } }),
      ),
    );
    const one = (name: string) => series(out, name)[0];
    expect(one('DCGM_FI_DEV_GPU_UTIL')?.labels).toEqual({
      gpu: '0',
      UUID,
      pci_bus_id: '00000000:18:00.0',
      device: 'nvidia3',
      modelName: 'NVIDIA H100 80GB HBM3',
      GPU_I_PROFILE: '',
      GPU_I_ID: '',
      Hostname: 'node-7',
      DCGM_FI_DRIVER_VERSION: '590.48.01',
      container: '',
      namespace: '',
      pod: '',
    });
    expect(one('DCGM_FI_DEV_GPU_UTIL')?.value).toBe(97);
    expect(one('DCGM_FI_DEV_FB_USED')?.value).toBe(40_000);
    expect(one('DCGM_FI_DEV_FB_FREE')?.value).toBe(41_000);
    expect(one('DCGM_FI_DEV_FB_RESERVED')?.value).toBe(512);
    expect(one('DCGM_FI_DEV_SM_CLOCK')?.value).toBe(1980);
    expect(one('DCGM_FI_DEV_MEM_CLOCK')?.value).toBe(2619);
    expect(one('DCGM_FI_DEV_POWER_USAGE')?.value).toBe(650);
    expect(one('DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION')?.value).toBe(1_234_500);
    expect(one('DCGM_FI_DEV_XID_ERRORS')?.value).toBe(0);
    expect(one('DCGM_FI_PROF_SM_ACTIVE')?.value).toBe(0.9);
    expect(one('DCGM_FI_DEV_PCIE_REPLAY_COUNTER')?.value).toBe(3);
    expect(one('DCGM_FI_DEV_CLOCK_THROTTLE_REASONS')?.value).toBe(0);
    expect(one('DCGM_FI_DEV_VGPU_LICENSE_STATUS')).toBeUndefined();
    expect(one('DCGM_FI_DEV_GPU_UTIL')?.desc.type).toBe('gauge');
  });

  // What the collectors report: nvidia-smi the GPU processes with the container their cgroup
  // names, the docker collector the containers' names (and pods, from the kubelet's labels).
  const TRAINER = 'a'.repeat(64);
  const OTHER = 'b'.repeat(64);
  const containers = state('docker', T0, {
    samples: [],
    facts: {
      containers: [
        { id: TRAINER, name: 'trainer', image: 'pytorch', pod: 'trainer-0', namespace: 'ml' },
        { id: OTHER, name: 'sidecar', image: 'busybox' },
      ],
    },
  });
  const proc = (pid: number, containerId?: string) => ({
    pid,
    gpuUuid: UUID,
    gpuIndex: 0,
    processName: 'python',
    usedMemoryBytes: 1048576,
    ...(containerId ? { containerId, containerRuntime: 'docker' as const } : {}),
  });
  const smi = (...processes: ReturnType<typeof proc>[]) =>
    state('nvidia-smi', T0, { samples: [], facts: { gpus: [reading()], gpuProcesses: processes } });

  it('labels the compat series with the container when exactly one uses the GPU', () => {
    const health = new GpuHealth({ compat: ['dcgm'], hostname: 'h' });
    const out = probe(health).derive(
      snapshot(smi(proc(4242, TRAINER), proc(4243, TRAINER), proc(99)), containers),
    );
    expect(series(out, 'DCGM_FI_DEV_GPU_UTIL')[0]?.labels).toMatchObject({
      container: 'trainer',
      namespace: 'ml',
      pod: 'trainer-0',
    });
    // No Xid source read: the last-Xid gauge is absent, not a reassuring zero.
    expect(series(out, 'DCGM_FI_DEV_XID_ERRORS')).toEqual([]);
    // Two containers on one GPU: dcgm-exporter's single label cannot say which; it stays empty.
    const shared = probe(new GpuHealth({ compat: ['dcgm'], hostname: 'h' })).derive(
      snapshot(smi(proc(4242, TRAINER), proc(5000, OTHER)), containers),
    );
    expect(series(shared, 'DCGM_FI_DEV_GPU_UTIL')[0]?.labels).toMatchObject({
      container: '',
      namespace: '',
      pod: '',
    });
  });

  // The kubelet's allocations (the pod-resources collector's facts), as the device plugin names them.
  const kubelet = (...allocations: { deviceId: string; pod: string; container: string }[]) =>
    state('pod-resources', T0, {
      samples: [],
      facts: {
        deviceAllocations: allocations.map((a) => ({
          resourceName: 'nvidia.com/gpu',
          namespace: 'ml',
          ...a,
        })),
      },
    });

  it('labels the compat series with the pod the kubelet gave the GPU, even with no process on it', () => {
    const health = new GpuHealth({ compat: ['dcgm'], hostname: 'h' });
    const idle = probe(health).derive(
      snapshot(smi(), kubelet({ deviceId: UUID, pod: 'infer-7', container: 'server' })),
    );
    expect(series(idle, 'DCGM_FI_DEV_GPU_UTIL')[0]?.labels).toMatchObject({
      container: 'server',
      namespace: 'ml',
      pod: 'infer-7',
    });
    // By index id too (DEVICE_ID_STRATEGY=index), and the allocation wins over a process of
    // another container (dcgm-exporter labels from the kubelet alone).
    const byIndex = probe(new GpuHealth({ compat: ['dcgm'], hostname: 'h' })).derive(
      snapshot(
        smi(proc(5000, OTHER)),
        containers,
        kubelet({ deviceId: '0', pod: 'infer-7', container: 'server' }),
      ),
    );
    expect(series(byIndex, 'DCGM_FI_DEV_GPU_UTIL')[0]?.labels).toMatchObject({
      container: 'server',
      pod: 'infer-7',
    });
    // Shared by two pods (time-slicing replicas): no single pod, so the process's container.
    const shared = probe(new GpuHealth({ compat: ['dcgm'], hostname: 'h' })).derive(
      snapshot(
        smi(proc(4242, TRAINER)),
        containers,
        kubelet(
          { deviceId: `${UUID}::0`, pod: 'a', container: 'x' },
          { deviceId: `${UUID}::1`, pod: 'b', container: 'x' },
        ),
      ),
    );
    expect(series(shared, 'DCGM_FI_DEV_GPU_UTIL')[0]?.labels).toMatchObject({
      container: 'trainer',
      pod: 'trainer-0',
    });
    const g = health.json(
      snapshot(smi(), kubelet({ deviceId: UUID, pod: 'infer-7', container: 'server' })),
    );
    expect(g.gpus[0]?.allocations).toEqual([
      {
        pod: 'infer-7',
        namespace: 'ml',
        container: 'server',
        resource: 'nvidia.com/gpu',
        device: UUID,
        migUuid: null,
      },
    ]);
  });

  it('names the container of each GPU process in the API, by its short id where no engine knows it', () => {
    const health = new GpuHealth({ compat: [] });
    const unknown = 'c'.repeat(64);
    const snap = snapshot(smi(proc(4242, TRAINER), proc(7, unknown), proc(99)), containers);
    probe(health).derive(snap);
    const g = health.json(snap).gpus[0]!;
    expect(g.processes).toEqual([
      {
        pid: 4242,
        name: 'python',
        usedMemoryBytes: 1048576,
        container: { name: 'trainer', id: TRAINER, namespace: 'ml', pod: 'trainer-0' },
      },
      {
        pid: 7,
        name: 'python',
        usedMemoryBytes: 1048576,
        container: { name: 'cccccccccccc', id: unknown, namespace: null, pod: null },
      },
      { pid: 99, name: 'python', usedMemoryBytes: 1048576, container: null },
    ]);
    expect(g.containers).toEqual([
      { name: 'trainer', id: TRAINER, namespace: 'ml', pod: 'trainer-0' },
      { name: 'cccccccccccc', id: unknown, namespace: null, pod: null },
    ]);
  });
});

describe('a lost GPU', () => {
  const LOST_UUID = 'GPU-99999999-2222-3333-4444-555555555555';
  const lostIdentity: GpuReading = {
    index: 1,
    uuid: LOST_UUID,
    name: 'NVIDIA H100 80GB HBM3',
    pciBusId: '00000000:3B:00.0',
    driverVersion: '590.48.01',
    clocksHz: {},
    maxClocksHz: {},
    throttle: {},
    throttleSeconds: {},
  };
  const smi = (lost: boolean, at = T0) =>
    state('nvidia-smi', at, {
      samples: [],
      facts: lost
        ? {
            gpus: [reading()],
            lostGpus: [{ reading: lostIdentity, reason: 'Unknown Error', since: T0 - 5000 }],
          }
        : {
            gpus: [reading(), reading({ index: 1, uuid: LOST_UUID, pciBusId: '00000000:3B:00.0' })],
          },
    });
  // DCGM as its simulator and dcgm-exporter show a lost GPU: every field blank but its Xid.
  const dcgm = (at = T0) =>
    state('dcgm', at, {
      samples: [],
      facts: {
        dcgmGpus: [
          { gpuId: 0, at, reading: reading(), fields: { DCGM_FI_DEV_GPU_UTIL: 97 } },
          { gpuId: 1, at, reading: lostIdentity, fields: { DCGM_FI_DEV_XID_ERRORS: 79 } },
        ],
      },
    });

  it('is one view, joined with DCGM, lost; its compat series are its Xid alone, never zeros', () => {
    const health = new GpuHealth({ compat: ['dcgm'], hostname: 'h' });
    const snap = snapshot(smi(true), dcgm());
    const views = gpuViews(snap);
    expect(views.map((v) => [v.reading.index, v.sources, v.lost?.reason])).toEqual([
      [0, ['nvidia-smi', 'dcgm'], undefined],
      [1, ['nvidia-smi', 'dcgm'], 'Unknown Error'],
    ]);
    const out = probe(health).derive(snap);
    const compat = out.filter((x) => x.desc.name.startsWith('DCGM_FI_') && x.labels.gpu === '1');
    expect(compat.map((x) => [x.desc.name, x.labels.UUID, x.value])).toEqual([
      ['DCGM_FI_DEV_XID_ERRORS', LOST_UUID, 79],
    ]);
    expect(series(out, 'DCGM_FI_DEV_GPU_UTIL').map((x) => [x.labels.gpu, x.value])).toEqual([
      ['0', 97],
    ]);
    // Up 0 and its identity as before; DCGM's blank row never becomes a DCGM-only GPU with
    // standard series (no value series at all, no zeros).
    expect(series(out, 'gpulse_gpu_up').map((x) => [x.labels, x.value])).toEqual([
      [{ gpu: '1', uuid: LOST_UUID }, 0],
    ]);
    expect(series(out, 'gpulse_gpu_info').map((x) => x.labels)).toEqual([
      {
        gpu: '1',
        uuid: LOST_UUID,
        name: 'NVIDIA H100 80GB HBM3',
        driver_version: '590.48.01',
        cuda_version: '',
        pci_bus_id: '00000000:3B:00.0',
        vbios_version: '',
        compute_capability: '',
      },
    ]);
    expect(
      out
        .filter((x) => x.labels.gpu === '1')
        .map((x) => x.desc.name)
        .sort(),
    ).toEqual(['DCGM_FI_DEV_XID_ERRORS', 'gpulse_gpu_info', 'gpulse_gpu_up']);
  });

  it('under nvidia_gpu_exporter’s names: its identity only, no values or zeros (Xids count as on any GPU)', () => {
    const health = new GpuHealth({ compat: ['nvidia-gpu-exporter'], hostname: 'h' });
    const out = probe(health).derive(snapshot(smi(true), dcgm()));
    const lostUuid = '99999999-2222-3333-4444-555555555555';
    expect(
      out
        .filter((x) => x.desc.name.startsWith('nvidia_smi_') && x.labels.uuid === lostUuid)
        .map((x) => x.desc.name),
    ).toEqual(['nvidia_smi_gpu_info']);
    // The GPU that answers is the only one counted.
    expect(series(out, 'nvidia_smi_count').map((x) => x.value)).toEqual([1]);
  });

  it('takes the name DCGM knows for a GPU lost before nvidia-smi could name it', () => {
    const health = new GpuHealth({ compat: ['dcgm'], hostname: 'h' });
    const nameless: GpuReading = {
      index: 1,
      uuid: '',
      pciBusId: '00000000:3B:00.0',
      clocksHz: {},
      maxClocksHz: {},
      throttle: {},
      throttleSeconds: {},
    };
    const snap = snapshot(
      state('nvidia-smi', T0, {
        samples: [],
        facts: {
          gpus: [reading()],
          lostGpus: [{ reading: nameless, reason: 'Unknown Error', since: T0 }],
        },
      }),
      dcgm(),
    );
    const out = probe(health).derive(snap);
    expect(series(out, 'gpulse_gpu_up', { gpu: '1' }).map((x) => x.labels.uuid)).toEqual([
      LOST_UUID,
    ]);
    expect(series(out, 'DCGM_FI_DEV_XID_ERRORS', { gpu: '1' }).map((x) => x.labels.UUID)).toEqual([
      LOST_UUID,
    ]);
    expect(health.json(snap).gpus[1]).toMatchObject({ uuid: LOST_UUID, up: false });
  });

  it('says so in GET /api/v1/gpus: up false, since when and why, no values', () => {
    const health = new GpuHealth({ compat: [] });
    const snap = snapshot(smi(true), dcgm());
    probe(health).derive(snap);
    const [ok, lost] = health.json(snap).gpus;
    expect(ok).toMatchObject({ index: 0, up: true, lost: null });
    expect(lost).toMatchObject({
      index: 1,
      uuid: LOST_UUID,
      name: 'NVIDIA H100 80GB HBM3',
      up: false,
      lost: { since: new Date(T0 - 5000).toISOString(), reason: 'Unknown Error' },
      values: {},
      processes: [],
    });
  });

  it('is one gpu.lost event when it goes, one gpu.recovered when it answers again', () => {
    const health = new GpuHealth({ compat: [] });
    probe(health).derive(snapshot(smi(false), dcgm()));
    expect(probe(health).drainEvents()).toEqual([]);
    probe(health).derive(snapshot(smi(true), dcgm()));
    probe(health).derive(snapshot(smi(true, T0 + 1000), dcgm(T0 + 1000)));
    const events = probe(health).drainEvents();
    expect(events).toEqual([
      expect.objectContaining({
        type: 'gpu.lost',
        severity: 'critical',
        source: 'nvidia-smi',
        ts: T0 - 5000,
        labels: { gpu: '1', uuid: LOST_UUID },
        data: {
          reason: 'Unknown Error',
          since: new Date(T0 - 5000).toISOString(),
          pciBusId: '00000000:3B:00.0',
        },
      }),
    ]);
    expect(events[0]?.message).toMatch(
      /^GPU 1 \(NVIDIA H100 80GB HBM3\) at 00000000:3B:00.0 is lost: "Unknown Error"/,
    );
    probe(health).derive(snapshot(smi(false, T0 + 2000), dcgm(T0 + 2000)));
    expect(probe(health).drainEvents()).toEqual([
      expect.objectContaining({
        type: 'gpu.recovered',
        severity: 'info',
        labels: { gpu: '1', uuid: LOST_UUID },
      }),
    ]);
  });

  it('stays one gpu.lost while nvidia-smi restarts: a GPU missing from every list is still lost', () => {
    const health = new GpuHealth({ compat: [] });
    probe(health).derive(snapshot(smi(true), dcgm()));
    // The nvidia-smi stream is restarting (its facts are dropped); DCGM's view alone is no answer,
    // on the series and the API as in the events.
    const restarting = snapshot(dcgm(T0 + 1000));
    const during = probe(health).derive(restarting);
    expect(
      during.filter((x) => x.desc.name === 'gpulse_gpu_up').map((x) => [x.labels.uuid, x.value]),
    ).toEqual([
      [UUID, 1],
      [LOST_UUID, 0],
    ]);
    expect(health.json(restarting).gpus.map((g) => [g.uuid, g.up])).toEqual([
      [UUID, true],
      [LOST_UUID, false],
    ]);
    probe(health).derive(snapshot(smi(true, T0 + 2000), dcgm(T0 + 2000)));
    expect(
      probe(health)
        .drainEvents()
        .map((e) => e.type),
    ).toEqual(['gpu.lost']);
    probe(health).derive(snapshot(smi(false, T0 + 3000), dcgm(T0 + 3000)));
    expect(
      probe(health)
        .drainEvents()
        .map((e) => e.type),
    ).toEqual(['gpu.recovered']);
  });
});

describe('GET /api/v1/gpus', () => {
  it('gives identity, values, throttling, recent Xids and processes per GPU', () => {
    const health = new GpuHealth({ compat: [] });
    const snap = snapshot(
      state('nvidia-smi', T0, {
        samples: [],
        facts: {
          gpus: [reading({}, ['hw_thermal_slowdown'])],
          gpuProcesses: [
            {
              pid: 4242,
              gpuUuid: UUID,
              gpuIndex: 0,
              processName: 'python',
              usedMemoryBytes: 1048576,
            },
          ],
        },
      }),
      state('kmsg', T0, {
        samples: [],
        facts: {
          xidErrors: [xidRecord(1, 13, 'info')],
          xidTotals: [
            { source: 'kmsg', pciBusId: '0000:18:00', xid: 13, severity: 'info', count: 1 },
          ],
        },
      }),
    );
    probe(health).derive(snap);
    const json = health.json(snap);
    expect(json.gpus).toHaveLength(1);
    const g = json.gpus[0]!;
    expect(g).toMatchObject({
      index: 0,
      uuid: UUID,
      name: 'NVIDIA H100 80GB HBM3',
      pciBusId: '00000000:18:00.0',
      sources: ['nvidia-smi'],
      values: { utilizationRatio: 0.97, powerDrawWatts: 650, clocksHz: { sm: 1_980_000_000 } },
      throttle: {
        active: ['hw_thermal_slowdown'],
        episode: {
          start: new Date(T0).toISOString(),
          reasons: ['hw_thermal_slowdown'],
          severity: 'critical',
        },
      },
      xids: {
        total: { info: 1 },
        recent: [{ xid: 13, severity: 'info', source: 'kmsg', text: 'text 13' }],
      },
      processes: [{ pid: 4242, name: 'python', usedMemoryBytes: 1048576, container: null }],
      containers: [],
    });
    expect(g.throttle.secondsTotal.hw_thermal_slowdown).toBe(0);
  });
});

describe('both peer namings at once', () => {
  it('serves dcgm-exporter and nvidia_gpu_exporter names from one snapshot, Xids and faults included', () => {
    const health = new GpuHealth({ compat: ['dcgm', 'nvidia-gpu-exporter'], hostname: 'h' });
    const dcgm: DcgmGpuFact = {
      gpuId: 0,
      at: T0,
      reading: reading(),
      fields: { DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: 2_000_500, DCGM_FI_PROF_PCIE_RX_BYTES: 7e8 },
    };
    const kmsg = state('kmsg', T0, {
      samples: [],
      facts: {
        xidErrors: [xidRecord(1, 79, 'critical', { at: T0 - 2500 })],
        xidTotals: [
          { source: 'kmsg', pciBusId: '0000:18:00', xid: 79, severity: 'critical', count: 1 },
        ],
      },
    });
    const u = { uuid: '11111111-2222-3333-4444-555555555555' };
    const out = probe(health).derive(
      snapshot(
        state('nvidia-smi', T0, { samples: [], facts: { gpus: [reading()] } }),
        state('dcgm', T0, { samples: [], facts: { dcgmGpus: [dcgm] } }),
        kmsg,
      ),
    );
    expect(series(out, 'DCGM_FI_DEV_GPU_UTIL')[0]?.value).toBe(97);
    expect(series(out, 'nvidia_smi_utilization_gpu_ratio', u)[0]?.value).toBe(0.97);
    expect(series(out, 'nvidia_smi_energy_joules_total', u)[0]?.value).toBe(2000.5);
    expect(series(out, 'nvidia_smi_pcie_throughput_rx_bytes_per_second', u)[0]?.value).toBe(7e8);
    expect(series(out, 'nvidia_smi_xid_errors_total', { ...u, xid: '79' })[0]?.value).toBe(1);
    expect(
      series(out, 'nvidia_smi_xid_last_timestamp_seconds', { ...u, xid: '79' })[0]?.value,
    ).toBe((T0 - 2500) / 1000);
    expect(series(out, 'nvidia_smi_command_exit_code')[0]?.value).toBe(0);

    // The GPU fell off the bus: nvidia-smi exits 15. Its GPU series go (never stale ones), the
    // exit code says why, the failure is counted, and the Xid counter stays.
    const lost: CollectorState = {
      ...state('nvidia-smi', T0 + 1000, { samples: [] }, 'error'),
      reason: 'gpu_lost',
      lastSuccessAt: T0,
      errors: new Map([['gpu_lost', 1]]),
    };
    const after = probe(health).derive(snapshot(lost, kmsg));
    expect(series(after, 'nvidia_smi_utilization_gpu_ratio')).toEqual([]);
    expect(series(after, 'nvidia_smi_gpu_info')).toEqual([]);
    expect(series(after, 'nvidia_smi_command_exit_code')[0]?.value).toBe(15);
    expect(series(after, 'nvidia_smi_last_collect_success')[0]?.value).toBe(0);
    expect(series(after, 'nvidia_smi_failed_scrapes_total')[0]?.value).toBe(1);
    expect(series(after, 'nvidia_smi_xid_errors_total', { ...u, xid: '79' })[0]?.value).toBe(1);
  });

  it('reuses a GPU’s compat samples while its reading is unchanged', () => {
    const health = new GpuHealth({ compat: ['nvidia-gpu-exporter'] });
    const gpus = state('nvidia-smi', T0, { samples: [], facts: { gpus: [reading()] } });
    const first = series(probe(health).derive(snapshot(gpus)), 'nvidia_smi_utilization_gpu_ratio');
    const again = series(probe(health).derive(snapshot(gpus)), 'nvidia_smi_utilization_gpu_ratio');
    expect(first[0]).toBeDefined();
    expect(again[0]).toBe(first[0]);
  });
});
