import { describe, expect, it } from 'vitest';
import { energySinceStartJoules } from './energy.js';
import { parseScenario } from './scenarios.js';
import {
  parseProcessList,
  ProcessListError,
  syntheticProcesses,
  worldAt,
  type GpuSpec,
  type ProcessSpec,
  type WorldConfig,
} from './world.js';

const START = Date.UTC(2026, 6, 14, 8, 0, 0);

/** An H100 as the 590.48.01 capture reports it idle and under gpu-burn. */
function h100(index: number): GpuSpec {
  return {
    index,
    uuid: `GPU-${index}`,
    name: 'NVIDIA H100 80GB HBM3',
    busId: `00000000:0${index}:00.0`,
    memoryTotalMiB: 81559,
    memoryUsableMiB: 81081,
    memoryIdleUsedMiB: 0,
    memoryContextMiB: 20,
    powerLimitW: 700,
    idle: {
      utilizationGpu: 0,
      utilizationMemory: 0,
      temperatureC: 41,
      memoryTemperatureC: 48,
      powerW: 69.85,
      powerInstantW: 69.62,
      clocksMHz: { graphics: 345, sm: 345, memory: 2619, video: 765 },
      pstate: 0,
    },
    load: {
      utilizationGpu: 100,
      utilizationMemory: 11,
      temperatureC: 59,
      memoryTemperatureC: 54,
      powerW: 631.95,
      powerInstantW: 625.68,
      clocksMHz: { graphics: 1980, sm: 1980, memory: 2619, video: 1545 },
      pstate: 0,
    },
    slowdownTempC: 89,
    throttleCountersUs: { sw_power_cap: 0, hw_thermal_slowdown: 0, sw_thermal_slowdown: 0 },
    migDevices: [],
    temperatureOffsetC: 0,
    powerOffsetW: 0,
  };
}

function config(scenario = '', processes?: ProcessSpec[]): WorldConfig {
  return {
    gpus: [h100(0), h100(1)],
    processes: processes ?? [
      { pid: 4100, gpuIndex: 0, usedMemoryMiB: 20_000, name: 'python', type: 'C' },
    ],
    seed: 1,
    startMs: START,
    scenario: parseScenario(scenario),
  };
}

describe('worldAt', () => {
  it('keeps a GPU without processes idle, as the idle capture shows it', () => {
    const idle = worldAt(config(), START + 5000).gpus[1];
    expect(idle).toMatchObject({
      busy: false,
      utilizationGpu: 0,
      memoryUsedMiB: 0,
      memoryFreeMiB: 81081,
      temperatureC: 41,
      pstate: 0,
    });
    expect(idle?.clocksMHz.sm).toBe(345);
    expect(idle?.throttle.gpu_idle).toBe(true);
  });

  it('loads a GPU that holds a compute process, near the load capture', () => {
    const busy = worldAt(config(), START + 600_000).gpus[0];
    expect(busy?.busy).toBe(true);
    expect(busy?.throttle.gpu_idle).toBe(false);
    expect(busy?.memoryUsedMiB).toBe(20_020);
    expect(busy?.memoryFreeMiB).toBe(81081 - 20_020);
    expect(busy?.clocksMHz.sm).toBe(1980);
    expect(busy?.utilizationGpu).toBeGreaterThanOrEqual(0);
    expect(busy?.utilizationGpu).toBeLessThanOrEqual(100);
    expect(busy?.temperatureC).toBeGreaterThan(41);
    expect(busy?.temperatureC).toBeLessThanOrEqual(59);
    expect(busy?.powerDrawW).toBeGreaterThan(69);
    expect(busy?.powerDrawW).toBeLessThanOrEqual(700);
  });

  it('agrees with itself: two evaluations of one instant are equal', () => {
    expect(worldAt(config(), START + 77_777)).toEqual(worldAt(config(), START + 77_777));
  });

  it('throttles thermally during the episode only, and counts the time', () => {
    const c = config('thermal-throttle:after=10s,for=20s');
    const before = worldAt(c, START + 9000).gpus[0];
    const during = worldAt(c, START + 25_000).gpus[0];
    const after = worldAt(c, START + 60_000).gpus[0];
    const later = worldAt(c, START + 200_000).gpus[0];
    expect(before?.throttle.hw_thermal_slowdown).toBe(false);
    expect(during?.throttle.hw_thermal_slowdown).toBe(true);
    expect(during?.throttle.sw_thermal_slowdown).toBe(true);
    expect(during?.temperatureC).toBeGreaterThanOrEqual(89);
    expect(during?.clocksMHz.sm).toBeLessThan(before?.clocksMHz.sm ?? 0);
    expect(during?.throttleCountersUs.hw_thermal_slowdown).toBe(15_000_000);
    expect(after?.throttle.hw_thermal_slowdown).toBe(false);
    expect(after?.throttle.sw_thermal_slowdown).toBe(false);
    expect(after?.clocksMHz.sm).toBe(1980);
    expect(after?.throttleCountersUs.sw_thermal_slowdown).toBe(20_000_000);
    expect(later?.temperatureC).toBeLessThan(during?.temperatureC ?? 0);
  });

  it('power-brakes: hw_slowdown and hw_power_brake_slowdown, clocks and power drop', () => {
    const c = config('power-brake:after=10s,for=20s');
    const before = worldAt(c, START + 5000).gpus[0];
    const during = worldAt(c, START + 20_000).gpus[0];
    expect(during?.throttle.hw_slowdown).toBe(true);
    expect(during?.throttle.hw_power_brake_slowdown).toBe(true);
    expect(during?.clocksMHz.sm).toBeLessThanOrEqual(600);
    expect(during?.powerDrawW).toBeLessThan((before?.powerDrawW ?? 0) * 0.6);
    expect(worldAt(c, START + 31_000).gpus[0]?.throttle.hw_power_brake_slowdown).toBe(false);
  });

  it('fills memory during memory-full and grows the processes with it', () => {
    const c = config('memory-full:after=10s,ramp=20s');
    const half = worldAt(c, START + 20_000).gpus[0];
    const full = worldAt(c, START + 40_000).gpus[0];
    expect(half?.memoryUsedMiB).toBeGreaterThan(20_020);
    expect(half?.memoryUsedMiB).toBeLessThan(81081);
    expect(full?.memoryUsedMiB).toBe(81081);
    expect(full?.memoryFreeMiB).toBe(0);
    expect(full?.processes[0]?.usedMemoryMiB).toBe(81061);
  });

  it('reports gpu-lost for the targeted board and hang with its end', () => {
    const lost = worldAt(config('gpu-lost:after=10s,gpu=1'), START + 11_000);
    expect(lost.failure).toEqual({ kind: 'gpu-lost', gpuIndex: 1 });
    expect(lost.gpus[1]?.lost).toBe(true);
    expect(lost.gpus[0]?.lost).toBe(false);
    expect(worldAt(config('gpu-lost'), START + 1000).failure).toBeUndefined();
    expect(worldAt(config('hang:after=1s,for=4s'), START + 2000).failure).toEqual({
      kind: 'hang',
      untilMs: START + 5000,
    });
    expect(worldAt(config('no-driver'), START).gpus).toEqual([]);
  });
});

describe('parseProcessList', () => {
  it('reads pid:gpu:MiB[:name], names may contain colons', () => {
    expect(parseProcessList('123:0:2048,456:1:512:C:\\app\\run.exe')).toEqual([
      { pid: 123, gpuIndex: 0, usedMemoryMiB: 2048, name: 'python', type: 'C' },
      { pid: 456, gpuIndex: 1, usedMemoryMiB: 512, name: 'C:\\app\\run.exe', type: 'C' },
    ]);
    expect(parseProcessList('')).toEqual([]);
  });

  it('rejects malformed entries', () => {
    expect(() => parseProcessList('abc:0:1')).toThrow(ProcessListError);
    expect(() => parseProcessList('1:0')).toThrow(/bad MiB/);
  });
});

describe('syntheticProcesses', () => {
  it('spreads 64 processes over 8 GPUs, unique PIDs, within memory', () => {
    const gpus = [0, 1, 2, 3, 4, 5, 6, 7].map(h100);
    const procs = syntheticProcesses(64, gpus, 1);
    expect(procs).toHaveLength(64);
    expect(new Set(procs.map((p) => p.pid)).size).toBe(64);
    for (const g of gpus) {
      const own = procs.filter((p) => p.gpuIndex === g.index);
      expect(own).toHaveLength(8);
      const total = own.reduce((s, p) => s + (p.usedMemoryMiB ?? 0), 0);
      expect(total).toBeLessThanOrEqual(g.memoryUsableMiB * 0.8);
    }
    expect(syntheticProcesses(64, gpus, 1)).toEqual(procs);
  });
});

describe('energySinceStartJoules', () => {
  /** The power draw of each GPU integrated by hand, 100 ms at a time. */
  function integrated(c: WorldConfig, toMs: number): number[] {
    const joules = c.gpus.map(() => 0);
    for (let t = c.startMs; t < toMs; t += 100) {
      worldAt(c, t).gpus.forEach((g, i) => (joules[i]! += g.powerDrawW * 0.1));
    }
    return joules;
  }

  it('grows by the power each GPU draws, idle and busy', () => {
    const c = config();
    const joules = energySinceStartJoules(c, START + 300_000);
    const expected = integrated(c, START + 300_000);
    // The busy GPU draws ~600 W, the idle one 69.85 W: the counters are 5 minutes of each.
    expect(joules[0]! / 300).toBeGreaterThan(500);
    expect(joules[1]! / 300).toBeCloseTo(69.85, 5);
    expect(joules[0]! / expected[0]!).toBeCloseTo(1, 2);
  });

  it('is 0 at the start and the same whether a process integrates once or row by row', () => {
    expect(energySinceStartJoules(config(), START)).toEqual([0, 0]);
    expect(energySinceStartJoules(config(), START - 5000)).toEqual([0, 0]);
    const stream = config();
    let last = [0, 0];
    for (let t = START; t <= START + 120_000; t += 5000) {
      const now = energySinceStartJoules(stream, t);
      now.forEach((j, i) => expect(j).toBeGreaterThanOrEqual(last[i]!));
      last = now;
    }
    expect(energySinceStartJoules(config(), START + 120_000)).toEqual(last);
  });

  it('slows while a thermal throttle pulls the power down', () => {
    const calm = config();
    const hot = config('thermal-throttle:after=0s,for=10m,ramp=0s');
    const calmJ = energySinceStartJoules(calm, START + 120_000)[0]!;
    const hotJ = energySinceStartJoules(hot, START + 120_000)[0]!;
    // The throttled GPU draws a quarter less power, so it used a quarter less energy.
    expect(hotJ / calmJ).toBeCloseTo(0.75, 2);
  });

  it('adds nothing while the driver is gone', () => {
    const gone = config('no-driver:after=0s');
    expect(energySinceStartJoules(gone, START + 60_000)).toEqual([0, 0]);
  });
});
