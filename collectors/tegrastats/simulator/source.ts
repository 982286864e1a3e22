import { readFileSync } from 'node:fs';
import { jetsonDevice, JETSON_DEVICES, type JetsonDevice } from '../../simulation/jetson.js';
import { unitHash } from '../../simulation/load-curve.js';
import type { Scenario } from '../../simulation/scenarios.js';
import {
  worldAt,
  type GpuSpec,
  type OperatingPoint,
  type ProcessSpec,
  type WorldFailure,
} from '../../simulation/world.js';
import { parseTegrastatsLine } from '../parse.js';
import { readCollectorFixture } from './fixtures.js';
import { renderLine, tegrastatsTimestamp } from './render.js';

/** One line to print, or why none comes. */
export type Emission =
  | { readonly kind: 'line'; readonly text: string }
  | { readonly kind: 'hang'; readonly untilMs: number };

/** Where the simulated tegrastats gets its lines. */
export interface TegrastatsSource {
  /** The k-th line of this run (k from 0), at wall-clock `nowMs`. */
  line(k: number, nowMs: number): Emission;
}

/** Replays a captured tegrastats log, line after line, from the top again at the end. */
export class CaptureSource implements TegrastatsSource {
  private readonly lines: readonly string[];

  constructor(text: string, name: string) {
    this.lines = text.split('\n').filter((l) => l.trim() !== '');
    const first = this.lines[0];
    if (first === undefined) throw new Error(`capture ${name} has no lines`);
    if (parseTegrastatsLine(first) === undefined) {
      throw new Error(`capture ${name} is not tegrastats output (its first line has no field)`);
    }
  }

  line(k: number): Emission {
    return { kind: 'line', text: this.lines[k % this.lines.length] ?? '' };
  }
}

function lerp(a: number, b: number, t: number): number {
  return a + (b - a) * t;
}

// Jetson GPUs throttle in the high 80s °C (SoC thermal trip points); the world's
// thermal-throttle scenario drives the GPU sensor past this.
const SLOWDOWN_C = 87;
function operatingPoint(device: JetsonDevice, which: 'idle' | 'load'): OperatingPoint {
  const p = device[which];
  const gpuW = device.gpuRail === undefined ? 0 : (p.railsMw[device.gpuRail] ?? 0) / 1000;
  return {
    utilizationGpu: p.gpuPercent,
    utilizationMemory: p.emcPercent,
    temperatureC: p.gpuC,
    memoryTemperatureC: undefined,
    powerW: gpuW,
    powerInstantW: gpuW,
    clocksMHz: { graphics: p.gpuMHz, sm: p.gpuMHz, memory: 0, video: 0 },
    pstate: 0,
  };
}

/** The board as the shared world sees it: one GPU whose memory is the board's RAM. */
export function jetsonGpuSpec(device: JetsonDevice, ramTotalMB: number): GpuSpec {
  return {
    index: 0,
    uuid: '',
    name: device.model,
    busId: '00000000:00:00.0',
    memoryTotalMiB: ramTotalMB,
    memoryUsableMiB: ramTotalMB,
    memoryIdleUsedMiB: device.idle.ramUsedMB,
    memoryContextMiB: 0,
    powerLimitW: 1000,
    idle: operatingPoint(device, 'idle'),
    load: operatingPoint(device, 'load'),
    slowdownTempC: SLOWDOWN_C,
    throttleCountersUs: {},
    migDevices: [],
    temperatureOffsetC: 0,
    powerOffsetW: 0,
  };
}

/** The inference process a busy board runs by default: it holds the load point's extra RAM. */
export function defaultJetsonProcesses(device: JetsonDevice): ProcessSpec[] {
  return [
    {
      pid: 4242,
      gpuIndex: 0,
      usedMemoryMiB: Math.max(0, device.load.ramUsedMB - device.idle.ramUsedMB),
      name: 'python3',
      type: 'C',
    },
  ];
}

/** Settings of a profile run. */
export interface ProfileRun {
  readonly processes: readonly ProcessSpec[];
  readonly seed: number;
  readonly startMs: number;
  readonly scenario: Scenario;
  /** When this tegrastats process started (rail averages count from here). */
  readonly processStartMs: number;
}

/** A simulated board: the shared world's load, printed in the board's captured format. */
export class ProfileSource implements TegrastatsSource {
  private readonly template: string;
  private readonly spec: GpuSpec;
  private readonly railSums = new Map<string, { sum: number; n: number }>();
  private readonly capturedRam: { used: number; lfb: number };
  private readonly ramTotal: number;

  constructor(
    private readonly device: JetsonDevice,
    private readonly run: ProfileRun,
  ) {
    const template = readCollectorFixture('tegrastats', device.tegrastatsCapture)
      .split('\n')
      .find((l) => l.trim() !== '');
    const reading = template === undefined ? undefined : parseTegrastatsLine(template);
    if (template === undefined || reading?.ram === undefined) {
      throw new Error(`profile ${device.profile}: capture ${device.tegrastatsCapture} has no RAM`);
    }
    this.template = template;
    const mib = 1024 * 1024;
    this.ramTotal = reading.ram.totalBytes / mib;
    this.capturedRam = {
      used: reading.ram.usedBytes / mib,
      lfb: reading.ram.largestFreeBlocks ?? 0,
    };
    this.spec = jetsonGpuSpec(device, this.ramTotal);
  }

  line(_k: number, nowMs: number): Emission {
    const { run, device } = this;
    const world = worldAt(
      {
        gpus: [this.spec],
        processes: run.processes,
        seed: run.seed,
        startMs: run.startMs,
        scenario: run.scenario,
      },
      nowMs,
    );
    const failure: WorldFailure | undefined = world.failure;
    // tegrastats reads sysfs, not NVML: only a hang (a stuck kernel read) silences it.
    if (failure?.kind === 'hang') return { kind: 'hang', untilMs: failure.untilMs };
    const gpu = world.gpus[0];
    if (gpu === undefined) return { kind: 'hang', untilMs: nowMs + 1000 };
    const a = gpu.activity;
    const idle = device.idle;
    const load = device.load;
    const second = Math.floor(nowMs / 1000);
    const heatRise = gpu.temperatureC - idle.gpuC;
    const freeNow = this.ramTotal - gpu.memoryUsedMiB;
    const freeCaptured = Math.max(1, this.ramTotal - this.capturedRam.used);
    const text = renderLine(this.template, {
      timestamp: tegrastatsTimestamp(nowMs),
      ramUsedMB: gpu.memoryUsedMiB,
      ramLargestFreeBlocks: (this.capturedRam.lfb * freeNow) / freeCaptured,
      cpus: idle.cpuPercent.map((p, core) => ({
        percent: Math.max(
          0,
          lerp(p, load.cpuPercent[core] ?? p, a) +
            (unitHash(run.seed, 'cpu', core, second) - 0.5) * 4,
        ),
        mhz: a > 0.05 ? load.cpuMHz : idle.cpuMHz,
      })),
      emcPercent: lerp(idle.emcPercent, load.emcPercent, a),
      gpuPercent: gpu.utilizationGpu ?? 0,
      gpuMHz: gpu.clocksMHz.graphics,
      temperature: (sensor, captured) => {
        // An offline zone stays offline, except the GPU's own once the GPU runs.
        if (captured <= -200)
          return sensor.toUpperCase() === 'GPU' && gpu.busy ? gpu.temperatureC : undefined;
        if (sensor.toUpperCase() === 'PMIC') return undefined;
        if (sensor.toUpperCase() === 'GPU') return gpu.temperatureC;
        // The rest of the SoC warms with the GPU; the board less so.
        const share = /board|diode/i.test(sensor) ? 0.4 : 0.8;
        return captured + heatRise * share;
      },
      rail: (name) => {
        const lo = idle.railsMw[name];
        const hi = load.railsMw[name];
        if (lo === undefined || hi === undefined) return undefined;
        const current = name === device.gpuRail ? gpu.powerDrawW * 1000 : lerp(lo, hi, a);
        const acc = this.railSums.get(name) ?? { sum: 0, n: 0 };
        acc.sum += current;
        acc.n += 1;
        this.railSums.set(name, acc);
        return { currentMw: current, averageMw: acc.sum / acc.n };
      },
    });
    return { kind: 'line', text };
  }
}

/** The board of GPULSE_SIM_PROFILE, with the names that exist when it is not a Jetson. */
export function requireJetson(profile: string): JetsonDevice {
  const device = jetsonDevice(profile);
  if (device === undefined) {
    throw new Error(
      `profile "${profile}" is not a Jetson (tegrastats profiles: ${Object.keys(JETSON_DEVICES).join(', ')})`,
    );
  }
  return device;
}

/** Loads GPULSE_SIM_CAPTURE as a tegrastats log. */
export function captureSource(path: string): CaptureSource {
  return new CaptureSource(readFileSync(path, 'utf8'), path);
}
