// dcgm-exporter names under faults and partial sources: violation counters that never grow
// faster than wall time, the latest Xid of any source, MIG GPU instances, values only DCGM has.
import { describe, expect, it } from 'vitest';
import type { GpuReading, MigDeviceReading } from '../../agent/core/facts.js';
import { GpuHealth } from '../../agent/components/gpu-health/component.js';
import type { Sample } from '../../agent/core/types.js';
import type { XidRecord, XidTotal } from '../xid.js';
import { compatSamples, FROM_READING, type CompatGpu } from './compat.js';
import type { DcgmGpuFact } from './dcgm-reading.js';
import { violationNanoseconds } from './violations.js';
import { probe } from '../../test/helpers/deriver-probe.js';
import { collectorState as state, snapshotOf as snapshot } from '../../test/helpers/snapshots.js';

const T0 = 1_800_000_000_000;
const UUID = 'GPU-11111111-2222-3333-4444-555555555555';
const BUS = '00000000:18:00.0';

function reading(over: Partial<GpuReading> = {}): GpuReading {
  return {
    index: 0,
    uuid: UUID,
    name: 'NVIDIA H100 80GB HBM3',
    pciBusId: BUS,
    driverVersion: '590.48.01',
    temperatureCelsius: 70,
    powerDrawWatts: 650,
    memoryTotalBytes: 81_559 * 1048576,
    memoryUsedBytes: 40_000 * 1048576,
    memoryFreeBytes: 41_000 * 1048576,
    memoryReservedBytes: 559 * 1048576,
    clocksHz: { sm: 1_980_000_000 },
    maxClocksHz: {},
    throttle: {},
    throttleSeconds: {},
    ...over,
  };
}

function dcgmFact(
  at: number,
  fields: Record<string, number>,
  over: Partial<DcgmGpuFact> = {},
): DcgmGpuFact {
  return {
    gpuId: 0,
    at,
    reading: reading({
      driverVersion: undefined,
      energyJoules: fields.DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION! / 1000,
    }),
    fields,
    ...over,
  };
}

function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}) {
  const found = samples.filter(
    (s) => s.desc.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length > 1) throw new Error(`${name}: ${found.length} series`);
  return found[0]?.value;
}

const CTX = { hostname: 'node-7' };

describe('violation counters (DCGM 240-242) count wall time, at most 1 s per second', () => {
  // Thermal throttling as the driver counts it: SW and HW thermal slowdown active together for
  // the same 10 s, on top of different histories (seconds since the driver loaded).
  const before = reading({
    throttleSeconds: { sw_thermal_slowdown: 120, hw_thermal_slowdown: 4, sw_power_cap: 30 },
  });
  const after = reading({
    throttleSeconds: { sw_thermal_slowdown: 130, hw_thermal_slowdown: 14, sw_power_cap: 30 },
  });
  const elapsedNs = 10e9;

  it('thermal grows by the 10 s both thermal reasons held, not 20 s (their sum)', () => {
    const thermal = (r: GpuReading) => FROM_READING.DCGM_FI_DEV_THERMAL_VIOLATION!({ reading: r });
    const rate = (thermal(after)! - thermal(before)!) / elapsedNs;
    expect(rate).toBe(1);
    expect(thermal(after)).toBe(130e9);
    const power = (r: GpuReading) => FROM_READING.DCGM_FI_DEV_POWER_VIOLATION!({ reading: r });
    expect(power(after)! - power(before)!).toBe(0);
  });

  it('power counts the SW power cap and the HW power brake as one class', () => {
    const braking = (s: number) =>
      reading({ throttleSeconds: { sw_power_cap: 30, hw_power_brake_slowdown: s } });
    // A 5 s power-brake episode on a board whose power-cap history is longer.
    expect(violationNanoseconds(braking(0).throttleSeconds, 'DCGM_FI_DEV_POWER_VIOLATION')).toBe(
      30e9,
    );
    const start = braking(28).throttleSeconds;
    const end = braking(33).throttleSeconds;
    const grown =
      violationNanoseconds(end, 'DCGM_FI_DEV_POWER_VIOLATION')! -
      violationNanoseconds(start, 'DCGM_FI_DEV_POWER_VIOLATION')!;
    expect(grown).toBeGreaterThan(0);
    expect(grown).toBeLessThanOrEqual(5e9);
    expect(violationNanoseconds({}, 'DCGM_FI_DEV_THERMAL_VIOLATION')).toBeUndefined();
    expect(violationNanoseconds({ sync_boost: 2.5 }, 'DCGM_FI_DEV_SYNC_BOOST_VIOLATION')).toBe(
      2.5e9,
    );
  });
});

describe('DCGM_FI_DEV_XID_ERRORS: the latest Xid of any source', () => {
  const xid = (seq: number, n: number, at: number, over: Partial<XidRecord> = {}): XidRecord => ({
    seq,
    source: 'kmsg',
    at,
    xid: n,
    severity: n === 13 ? 'info' : 'critical',
    pciBusId: '0000:18:00',
    text: `Xid ${n}`,
    ...over,
  });

  it('a kernel-log Xid reaches it while DCGM reports 0; a later DCGM change wins again', () => {
    const health = new GpuHealth({ compat: ['dcgm'], hostname: 'h' });
    const kmsg: XidRecord[] = [];
    const totals: XidTotal[] = [];
    const derive = (at: number, dcgm: DcgmGpuFact) =>
      probe(health).derive(
        snapshot(
          state('nvidia-smi', at, { samples: [], facts: { gpus: [reading()] } }),
          state('dcgm', at, {
            samples: [],
            facts: { dcgmGpus: [dcgm], xidErrors: [], xidTotals: [] },
          }),
          state('kmsg', at, {
            samples: [],
            facts: { xidErrors: [...kmsg], xidTotals: [...totals] },
          }),
        ),
      );
    const zero = dcgmFact(
      T0,
      { DCGM_FI_DEV_XID_ERRORS: 0, DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: 1 },
      { xidSince: T0 },
    );
    expect(value(derive(T0, zero), 'DCGM_FI_DEV_XID_ERRORS')).toBe(0);
    // The kernel logs Xid 13 at T0 + 1 s; DCGM still says 0 (its field saw nothing new).
    kmsg.push(xid(1, 13, T0 + 1000));
    totals.push({ source: 'kmsg', pciBusId: '0000:18:00', xid: 13, severity: 'info', count: 1 });
    expect(value(derive(T0 + 2000, { ...zero, at: T0 + 2000 }), 'DCGM_FI_DEV_XID_ERRORS')).toBe(13);
    // DCGM's field changes to 48 at T0 + 5 s, later than the kernel's 13: 48.
    const changed = dcgmFact(
      T0 + 5000,
      { DCGM_FI_DEV_XID_ERRORS: 48, DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: 1 },
      { xidSince: T0 + 5000 },
    );
    expect(value(derive(T0 + 5000, changed), 'DCGM_FI_DEV_XID_ERRORS')).toBe(48);
    // Once DCGM's 48 is counted (after its grace) the tracker agrees: still 48.
    expect(
      value(derive(T0 + 20_000, { ...changed, at: T0 + 20_000 }), 'DCGM_FI_DEV_XID_ERRORS'),
    ).toBe(48);
  });

  it('a GPU that fell off the bus keeps its Xid 79 (only that) while nvidia-smi lists the others', () => {
    const health = new GpuHealth({ compat: ['dcgm'], hostname: 'h' });
    const lostUuid = 'GPU-22222222-2222-3333-4444-555555555555';
    const lost: DcgmGpuFact = {
      gpuId: 1,
      at: T0,
      reading: reading({ index: 1, uuid: lostUuid, pciBusId: '00000000:2A:00.0' }),
      // A lost GPU's dmon row: N/A everywhere but the Xid that said so.
      fields: { DCGM_FI_DEV_XID_ERRORS: 79 },
      xidSince: T0,
    };
    const out = probe(health).derive(
      snapshot(
        state('nvidia-smi', T0, { samples: [], facts: { gpus: [reading()] } }),
        state('dcgm', T0, {
          samples: [],
          facts: {
            dcgmGpus: [
              dcgmFact(
                T0,
                { DCGM_FI_DEV_XID_ERRORS: 0, DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: 1 },
                { xidSince: T0 },
              ),
              lost,
            ],
          },
        }),
      ),
    );
    const ofLost = out.filter((x) => x.labels.UUID === lostUuid);
    expect(ofLost.map((x) => [x.desc.name, x.labels.gpu, x.value])).toEqual([
      ['DCGM_FI_DEV_XID_ERRORS', '1', 79],
    ]);
    expect(value(out, 'DCGM_FI_DEV_XID_ERRORS', { UUID })).toBe(0);
    expect(value(out, 'DCGM_FI_DEV_GPU_TEMP', { UUID })).toBe(70);
  });

  it("DCGM's value from before the agent started stands when no source counted an Xid", () => {
    const latest = (g: CompatGpu) => FROM_READING.DCGM_FI_DEV_XID_ERRORS!(g);
    const history = dcgmFact(
      T0,
      { DCGM_FI_DEV_XID_ERRORS: 79, DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: 1 },
      { xidSince: T0 },
    );
    expect(latest({ reading: reading(), dcgm: history, lastXid: 0 })).toBe(79);
    expect(latest({ reading: reading(), dcgm: history, lastXid: 13, lastXidAt: T0 + 1 })).toBe(13);
    expect(latest({ reading: reading(), lastXid: 13, lastXidAt: T0 })).toBe(13);
    expect(latest({ reading: reading() })).toBeUndefined();
  });
});

describe('MIG GPU instances under dcgm-exporter names', () => {
  const mig = (
    index: number,
    gi: number,
    ci: number,
    profile: string | undefined,
    usedMiB: number,
    totalMiB: number,
  ): MigDeviceReading => ({
    index,
    gpuInstanceId: gi,
    computeInstanceId: ci,
    ...(profile ? { profile } : {}),
    memoryTotalBytes: totalMiB * 1048576,
    memoryUsedBytes: usedMiB * 1048576,
    memoryFreeBytes: (totalMiB - usedMiB) * 1048576,
  });
  // The real H200 MIG capture's layout: GI 2 holds two compute instances (1c and 2c of 3g.71gb).
  const h200 = reading({
    migEnabled: true,
    migDevices: [
      mig(0, 2, 0, '1c.3g.71gb', 22, 71_424),
      mig(1, 2, 1, '2c.3g.71gb', 22, 71_424),
      mig(2, 3, 0, '2g.35gb', 17, 33_280),
      mig(3, 9, 0, '1g.18gb', 9, 16_384),
    ],
  });

  it('one series set per GPU instance with GPU_I_PROFILE and GPU_I_ID, beside the GPU-level one', () => {
    const dcgm = dcgmFact(T0, {
      DCGM_FI_PROF_GR_ENGINE_ACTIVE: 0.5,
      DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: 5e7,
    });
    const out = compatSamples([{ reading: h200, dcgm, lastXid: 0 }], CTX);
    const temps = out.filter((s) => s.desc.name === 'DCGM_FI_DEV_GPU_TEMP');
    expect(temps.map((s) => [s.labels.GPU_I_PROFILE, s.labels.GPU_I_ID, s.value])).toEqual([
      ['', '', 70],
      ['3g.71gb', '2', 70],
      ['2g.35gb', '3', 70],
      ['1g.18gb', '9', 70],
    ]);
    // Memory is the instance's own; device-level fields are the parent GPU's (as DCGM remaps them).
    expect(value(out, 'DCGM_FI_DEV_FB_USED', { GPU_I_ID: '2' })).toBe(22);
    expect(value(out, 'DCGM_FI_DEV_FB_TOTAL', { GPU_I_ID: '3' })).toBe(33_280);
    expect(value(out, 'DCGM_FI_DEV_FB_FREE', { GPU_I_ID: '9' })).toBe(16_375);
    expect(value(out, 'DCGM_FI_DEV_FB_USED', { GPU_I_ID: '' })).toBe(40_000);
    expect(value(out, 'DCGM_FI_DEV_POWER_USAGE', { GPU_I_ID: '9' })).toBe(650);
    expect(value(out, 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION', { GPU_I_ID: '3' })).toBe(5e7);
    expect(value(out, 'DCGM_FI_DEV_XID_ERRORS', { GPU_I_ID: '9' })).toBe(0);
    // Profiling is per instance in DCGM; gpulse watches whole GPUs, so instances get none.
    expect(value(out, 'DCGM_FI_PROF_GR_ENGINE_ACTIVE', { GPU_I_ID: '' })).toBe(0.5);
    expect(value(out, 'DCGM_FI_PROF_GR_ENGINE_ACTIVE', { GPU_I_ID: '2' })).toBeUndefined();
    expect(value(out, 'DCGM_FI_DEV_FB_RESERVED', { GPU_I_ID: '2' })).toBeUndefined();
    expect(temps[1]?.labels).toMatchObject({
      gpu: '0',
      UUID,
      device: 'nvidia0',
      modelName: 'NVIDIA H100 80GB HBM3',
      Hostname: 'node-7',
    });
  });

  it('no instance series before the profiles are known (they would collide with the GPU’s)', () => {
    const unnamed = reading({ migDevices: [mig(0, 2, 0, undefined, 22, 71_424)] });
    const out = compatSamples([{ reading: unnamed }], CTX);
    expect(out.filter((s) => s.desc.name === 'DCGM_FI_DEV_GPU_TEMP')).toHaveLength(1);
  });
});

describe('values only DCGM has are served natively too (energy)', () => {
  const energyMj = 4.2e10;
  const dcgm = dcgmFact(T0, { DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: energyMj });

  it('fills nvidia-smi’s missing energy counter from DCGM on every surface', () => {
    const health = new GpuHealth({ compat: ['dcgm'], hostname: 'h' });
    const snap = snapshot(
      state('nvidia-smi', T0, { samples: [], facts: { gpus: [reading()] } }),
      state('dcgm', T0, { samples: [], facts: { dcgmGpus: [dcgm] } }),
    );
    const out = probe(health).derive(snap);
    expect(out.filter((s) => s.desc.name === 'gpulse_gpu_energy_joules_total')).toEqual([
      expect.objectContaining({ labels: { gpu: '0', uuid: UUID }, value: energyMj / 1000 }),
    ]);
    expect(value(out, 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION')).toBe(energyMj);
    expect(health.json(snap).gpus[0]?.values.energyJoules).toBe(energyMj / 1000);
  });

  it('leaves the counter to nvidia-smi where it reports one (its collector serves it)', () => {
    const health = new GpuHealth({ compat: [] });
    const out = probe(health).derive(
      snapshot(
        state('nvidia-smi', T0, { samples: [], facts: { gpus: [reading({ energyJoules: 7 })] } }),
        state('dcgm', T0, { samples: [], facts: { dcgmGpus: [dcgm] } }),
      ),
    );
    expect(out.filter((s) => s.desc.name === 'gpulse_gpu_energy_joules_total')).toEqual([]);
  });
});
