import { THROTTLE_REASONS, type ClockDomain, type ThrottleReason } from '../../agent/core/facts.js';
import { clamp01, laggedMean, trainingLoad, unitHash } from './load-curve.js';
import {
  activeTimeMs,
  affectsGpu,
  scenarioPhase,
  type Scenario,
  type ScenarioPhase,
} from './scenarios.js';

/** Readings of a GPU in one steady state (idle, or the profile's reference load). */
export interface OperatingPoint {
  /** Percent; undefined where the driver does not report it (MIG mode). */
  readonly utilizationGpu: number | undefined;
  readonly utilizationMemory: number | undefined;
  readonly temperatureC: number;
  readonly memoryTemperatureC: number | undefined;
  /** Averaged power draw (nvidia-smi power.draw / power.draw.average). */
  readonly powerW: number;
  readonly powerInstantW: number;
  readonly clocksMHz: Readonly<Record<ClockDomain, number>>;
  /** P-state number (P0 → 0). */
  readonly pstate: number;
}

/** A MIG device (GPU instance + compute instance) of a partitioned GPU. */
export interface MigDeviceSpec {
  readonly index: number;
  readonly gpuInstanceId: number;
  readonly computeInstanceId: number;
  readonly uuid: string;
  /** Profile as `nvidia-smi -L` prints it, e.g. `1g.18gb` or `1c.3g.71gb`. */
  readonly profile: string;
  readonly multiprocessorCount: number;
  /** Shared by all compute instances of the GPU instance. */
  readonly memoryTotalMiB: number;
  readonly idleUsedMiB: number;
  /** Extra used once a process runs in the instance (its contexts), beyond the processes. */
  readonly contextMiB: number;
}

/** Static identity and limits of one simulated GPU. */
export interface GpuSpec {
  readonly index: number;
  readonly uuid: string;
  readonly name: string;
  /** `00000000:0A:00.0` form. */
  readonly busId: string;
  readonly memoryTotalMiB: number;
  /** used + free as the driver reports them (total minus reserved, give or take rounding). */
  readonly memoryUsableMiB: number;
  /** Used with no compute process (display server, MIG bookkeeping). */
  readonly memoryIdleUsedMiB: number;
  /** Extra used once any process holds a context beyond what the processes report. */
  readonly memoryContextMiB: number;
  readonly powerLimitW: number;
  readonly idle: OperatingPoint;
  readonly load: OperatingPoint;
  /** Temperature at which thermal slowdown engages. */
  readonly slowdownTempC: number;
  /** Cumulative clocks-event counters at simulation start, microseconds. */
  readonly throttleCountersUs: Readonly<Partial<Record<ThrottleReason, number>>>;
  readonly migDevices: readonly MigDeviceSpec[];
  /** Board-to-board spread of temperature and power around the profile's values. */
  readonly temperatureOffsetC: number;
  readonly powerOffsetW: number;
}

/** A process holding a GPU context. */
export interface ProcessSpec {
  readonly pid: number;
  readonly gpuIndex: number;
  /** Undefined where the driver cannot tell (Windows WDDM). */
  readonly usedMemoryMiB: number | undefined;
  readonly name: string;
  /** `C` compute, `G` graphics, `C+G` both; only compute processes make load. */
  readonly type: 'C' | 'G' | 'C+G';
  readonly gpuInstanceId?: number;
  readonly computeInstanceId?: number;
}

/** Everything the world needs; all of it is fixed for the life of a process. */
export interface WorldConfig {
  readonly gpus: readonly GpuSpec[];
  readonly processes: readonly ProcessSpec[];
  readonly seed: number;
  /** Epoch ms the simulation began (GPULSE_SIM_START); scenario phases count from here. */
  readonly startMs: number;
  readonly scenario: Scenario;
}

/** Why the GPUs cannot be read at an instant. */
export type WorldFailure =
  | { readonly kind: 'gpu-lost'; readonly gpuIndex: number }
  | { readonly kind: 'hang'; readonly untilMs: number }
  | { readonly kind: 'no-driver' }
  | { readonly kind: 'no-devices' };

/** A process at an instant (memory may have grown). */
export interface ProcessState extends ProcessSpec {
  readonly usedMemoryMiB: number | undefined;
}

/** A MIG device at an instant. */
export interface MigDeviceState {
  readonly spec: MigDeviceSpec;
  readonly memoryUsedMiB: number;
  readonly memoryFreeMiB: number;
}

/** One GPU at an instant. */
export interface GpuState {
  readonly spec: GpuSpec;
  /** 0 idle … 1 the profile's reference load. */
  readonly activity: number;
  /** True while a compute process holds the GPU. */
  readonly busy: boolean;
  readonly utilizationGpu: number | undefined;
  readonly utilizationMemory: number | undefined;
  readonly memoryUsedMiB: number;
  readonly memoryFreeMiB: number;
  readonly temperatureC: number;
  readonly memoryTemperatureC: number | undefined;
  readonly powerDrawW: number;
  readonly powerInstantW: number;
  readonly clocksMHz: Readonly<Record<ClockDomain, number>>;
  readonly pstate: number;
  readonly throttle: Readonly<Record<ThrottleReason, boolean>>;
  readonly throttleCountersUs: Readonly<Partial<Record<ThrottleReason, number>>>;
  readonly processes: readonly ProcessState[];
  readonly migDevices: readonly MigDeviceState[];
  readonly lost: boolean;
}

/** All GPUs at an instant. */
export interface WorldState {
  readonly atMs: number;
  /** Since the simulation start. */
  readonly elapsedMs: number;
  readonly phase: ScenarioPhase;
  readonly failure: WorldFailure | undefined;
  readonly gpus: readonly GpuState[];
}

/** Temperature lags load like a heat sink: time constant of the exponential average. */
const THERMAL_TAU_MS = 20_000;
/** nvidia-smi's power.draw is a ~1 s average on recent drivers. */
const POWER_AVERAGE_TAU_MS = 1000;
/** Clock bins of current GPUs. */
const CLOCK_STEP_MHZ = 15;

function lerp(a: number, b: number, t: number): number {
  return a + (b - a) * t;
}

function lerpOptional(a: number | undefined, b: number | undefined, t: number): number | undefined {
  return a === undefined || b === undefined ? undefined : lerp(a, b, t);
}

function toClockBin(mhz: number, floor: number): number {
  return Math.max(floor, Math.round(mhz / CLOCK_STEP_MHZ) * CLOCK_STEP_MHZ);
}

/** The GPU a gpu-lost episode takes: the first listed, else GPU 0. */
export function lostGpuIndex(scenario: Scenario): number {
  return scenario.gpus?.[0] ?? 0;
}

/** The failure, if any, a scenario imposes at `nowMs` (simulation started at `startMs`). */
export function scenarioFailure(
  s: Scenario,
  startMs: number,
  nowMs: number,
): WorldFailure | undefined {
  if (scenarioPhase(s, nowMs - startMs).state !== 'active') return undefined;
  switch (s.name) {
    case 'gpu-lost':
      return { kind: 'gpu-lost', gpuIndex: lostGpuIndex(s) };
    case 'hang':
      return {
        kind: 'hang',
        untilMs: s.forMs === undefined ? Infinity : startMs + s.afterMs + s.forMs,
      };
    case 'no-driver':
      return { kind: 'no-driver' };
    case 'no-devices':
      return { kind: 'no-devices' };
    case 'none':
    case 'thermal-throttle':
    case 'power-brake':
    case 'memory-full':
      return undefined;
  }
}

function makesLoad(p: ProcessSpec): boolean {
  return p.type !== 'G';
}

/** Computes every GPU at wall-clock time `nowMs`; pure, so processes started apart agree. */
export function worldAt(config: WorldConfig, nowMs: number): WorldState {
  const elapsedMs = nowMs - config.startMs;
  const phase = scenarioPhase(config.scenario, elapsedMs);
  const failure = scenarioFailure(config.scenario, config.startMs, nowMs);
  if (failure?.kind === 'no-driver' || failure?.kind === 'no-devices') {
    return { atMs: nowMs, elapsedMs, phase, failure, gpus: [] };
  }
  const gpus = config.gpus.map((spec) => gpuAt(config, spec, nowMs, elapsedMs, phase));
  return { atMs: nowMs, elapsedMs, phase, failure, gpus };
}

function gpuAt(
  config: WorldConfig,
  spec: GpuSpec,
  nowMs: number,
  elapsedMs: number,
  phase: ScenarioPhase,
): GpuState {
  const { scenario, seed } = config;
  const own = config.processes.filter((p) => p.gpuIndex === spec.index);
  const busy = own.some(makesLoad);
  const activityAt = (t: number): number => (busy ? trainingLoad(t, seed, spec.index) : 0);
  const activity = activityAt(nowMs);
  const heat = busy ? laggedMean(activityAt, nowMs, THERMAL_TAU_MS) : 0;
  const powerLoad = busy ? laggedMean(activityAt, nowMs, POWER_AVERAGE_TAU_MS, 4) : 0;
  const point = busy ? spec.load : spec.idle;
  const hit = scenario.name !== 'none' && affectsGpu(scenario, spec.index);

  let temperatureC = lerp(spec.idle.temperatureC, spec.load.temperatureC, heat);
  temperatureC += spec.temperatureOffsetC;
  let memoryTemperatureC = lerpOptional(
    spec.idle.memoryTemperatureC,
    spec.load.memoryTemperatureC,
    heat,
  );
  if (memoryTemperatureC !== undefined) memoryTemperatureC += spec.temperatureOffsetC;
  let powerDrawW = lerp(spec.idle.powerW, spec.load.powerW, powerLoad) + spec.powerOffsetW;
  // Instantaneous power jitters around the average; the jitter is a hash of the second.
  const jitter = 1 + (unitHash(seed, 'pwr', spec.index, Math.floor(nowMs / 1000)) - 0.5) * 0.01;
  let powerInstantW =
    (lerp(spec.idle.powerInstantW, spec.load.powerInstantW, activity) + spec.powerOffsetW) * jitter;
  const clocksMHz: Record<ClockDomain, number> = { ...point.clocksMHz };
  const throttle = Object.fromEntries(THROTTLE_REASONS.map((r) => [r, false])) as Record<
    ThrottleReason,
    boolean
  >;
  throttle.gpu_idle = !busy;
  const counters: Partial<Record<ThrottleReason, number>> = { ...spec.throttleCountersUs };
  const addCounter = (reason: ThrottleReason, us: number): void => {
    counters[reason] = (counters[reason] ?? 0) + us;
  };

  let memoryExtraMiB = 0;
  if (hit) {
    const episodeUs = activeTimeMs(scenario, elapsedMs) * 1000;
    const ramp = (sinceStartMs: number): number =>
      scenario.rampMs <= 0 ? 1 : clamp01(sinceStartMs / scenario.rampMs);
    switch (scenario.name) {
      case 'thermal-throttle': {
        // The die climbs past the slowdown threshold, the driver pulls clocks and power,
        // and after the episode the heat sink cools back with the same thermal lag.
        const hot = spec.slowdownTempC + 2;
        if (phase.state === 'active') {
          const r = ramp(phase.sinceStartMs);
          const delta = Math.max(0, hot - temperatureC) * r;
          temperatureC += delta;
          if (memoryTemperatureC !== undefined) memoryTemperatureC += delta * 0.5;
          throttle.hw_thermal_slowdown = true;
          throttle.sw_thermal_slowdown = true;
          clocksMHz.graphics = toClockBin(
            clocksMHz.graphics * (1 - 0.35 * r),
            spec.idle.clocksMHz.graphics,
          );
          clocksMHz.sm = toClockBin(clocksMHz.sm * (1 - 0.35 * r), spec.idle.clocksMHz.sm);
          powerDrawW *= 1 - 0.25 * r;
          powerInstantW *= 1 - 0.25 * r;
        } else if (phase.state === 'after') {
          const delta = Math.max(0, hot - temperatureC) * Math.exp(-phase.sinceEndMs / 8000);
          temperatureC += delta;
          if (memoryTemperatureC !== undefined) memoryTemperatureC += delta * 0.5;
        }
        addCounter('hw_thermal_slowdown', episodeUs);
        addCounter('sw_thermal_slowdown', episodeUs);
        break;
      }
      case 'power-brake': {
        // An external power-brake signal (PSU or chassis) forces the lowest clocks at once.
        if (phase.state === 'active') {
          const r = ramp(phase.sinceStartMs);
          throttle.hw_slowdown = true;
          throttle.hw_power_brake_slowdown = true;
          clocksMHz.graphics = toClockBin(
            lerp(clocksMHz.graphics, clocksMHz.graphics * 0.3, r),
            spec.idle.clocksMHz.graphics,
          );
          clocksMHz.sm = toClockBin(
            lerp(clocksMHz.sm, clocksMHz.sm * 0.3, r),
            spec.idle.clocksMHz.sm,
          );
          powerDrawW = lerp(powerDrawW, Math.max(spec.idle.powerW, powerDrawW * 0.4), r);
          powerInstantW = lerp(
            powerInstantW,
            Math.max(spec.idle.powerInstantW, powerInstantW * 0.4),
            r,
          );
        }
        addCounter('hw_power_brake_slowdown', episodeUs);
        addCounter('hw_slowdown', episodeUs);
        break;
      }
      case 'memory-full':
        if (phase.state === 'active') memoryExtraMiB = ramp(phase.sinceStartMs);
        break;
      case 'gpu-lost':
      case 'hang':
      case 'no-driver':
      case 'no-devices':
        break;
    }
  }

  const baseUsed = (p: ProcessSpec): number => p.usedMemoryMiB ?? 0;
  const procTotal = own.reduce((sum, p) => sum + baseUsed(p), 0);
  const normalUsed = Math.min(
    spec.memoryUsableMiB,
    spec.memoryIdleUsedMiB + (busy ? spec.memoryContextMiB : 0) + procTotal,
  );
  // memory-full: used climbs to the usable total; the processes' own numbers grow with it.
  const growMiB = Math.round((spec.memoryUsableMiB - normalUsed) * memoryExtraMiB);
  const memoryUsedMiB = normalUsed + growMiB;
  const processes = own.map((p): ProcessState => {
    if (growMiB === 0 || p.usedMemoryMiB === undefined) return p;
    const share = procTotal > 0 ? baseUsed(p) / procTotal : 1 / own.length;
    return { ...p, usedMemoryMiB: p.usedMemoryMiB + Math.round(growMiB * share) };
  });

  const migDevices = spec.migDevices.map((mig): MigDeviceState => {
    // Memory belongs to the GPU instance: every compute instance of it shows the same numbers.
    const inInstance = processes.filter((p) => p.gpuInstanceId === mig.gpuInstanceId);
    const used = Math.min(
      mig.memoryTotalMiB,
      mig.idleUsedMiB +
        (inInstance.length > 0 ? mig.contextMiB : 0) +
        inInstance.reduce((sum, p) => sum + (p.usedMemoryMiB ?? 0), 0),
    );
    return { spec: mig, memoryUsedMiB: used, memoryFreeMiB: mig.memoryTotalMiB - used };
  });

  return {
    spec,
    activity,
    busy,
    utilizationGpu: roundOptional(
      lerpOptional(spec.idle.utilizationGpu, spec.load.utilizationGpu, activity),
    ),
    utilizationMemory: roundOptional(
      lerpOptional(spec.idle.utilizationMemory, spec.load.utilizationMemory, activity),
    ),
    memoryUsedMiB,
    memoryFreeMiB: spec.memoryUsableMiB - memoryUsedMiB,
    temperatureC: Math.round(temperatureC),
    memoryTemperatureC: roundOptional(memoryTemperatureC),
    powerDrawW: Math.min(powerDrawW, spec.powerLimitW),
    powerInstantW: Math.min(powerInstantW, spec.powerLimitW * 1.05),
    clocksMHz,
    pstate: point.pstate,
    throttle,
    throttleCountersUs: counters,
    processes,
    migDevices,
    lost:
      config.scenario.name === 'gpu-lost' &&
      phase.state === 'active' &&
      lostGpuIndex(config.scenario) === spec.index,
  };
}

function roundOptional(x: number | undefined): number | undefined {
  return x === undefined ? undefined : Math.round(x);
}

/** A malformed GPULSE_SIM_PROCESSES value. */
export class ProcessListError extends Error {
  readonly code = 'GPULSE_SIM_PROCESSES';
  constructor(message: string) {
    super(message);
    this.name = 'ProcessListError';
  }
}

/**
 * Parses GPULSE_SIM_PROCESSES: comma-separated `pid:gpuIndex:MiB[:name]` (name may contain
 * colons, as Windows paths do). These are real PIDs the tests want reported as GPU processes.
 */
export function parseProcessList(text: string): ProcessSpec[] {
  const out: ProcessSpec[] = [];
  for (const item of text.split(',')) {
    if (item.trim() === '') continue;
    const [pidText = '', gpuText = '', memText = '', ...nameParts] = item.trim().split(':');
    const pid = Number(pidText);
    const gpuIndex = Number(gpuText);
    const mem = Number(memText);
    if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(gpuIndex) || gpuIndex < 0) {
      throw new ProcessListError(`GPULSE_SIM_PROCESSES entry "${item}": want pid:gpu:MiB[:name]`);
    }
    if (!Number.isFinite(mem) || mem < 0 || memText === '') {
      throw new ProcessListError(`GPULSE_SIM_PROCESSES entry "${item}": bad MiB "${memText}"`);
    }
    const name = nameParts.join(':');
    out.push({
      pid,
      gpuIndex,
      usedMemoryMiB: Math.round(mem),
      name: name === '' ? 'python' : name,
      type: 'C',
    });
  }
  return out;
}

/** Names the synthetic processes cycle through, as the real load captures show them. */
const SYNTHETIC_NAMES = ['python', './gpu_burn', '/root/tools/memhog', 'python3'];

/**
 * `count` synthetic compute processes spread round-robin over the GPUs, with PIDs and sizes
 * derived from the seed; together they keep under 80 % of each GPU's memory.
 */
export function syntheticProcesses(
  count: number,
  gpus: readonly GpuSpec[],
  seed: number,
): ProcessSpec[] {
  if (gpus.length === 0) return [];
  const perGpu = Math.ceil(count / gpus.length);
  const pidBase = 10_000 + Math.floor(unitHash(seed, 'pid') * 40_000);
  const out: ProcessSpec[] = [];
  for (let k = 0; k < count; k++) {
    const gpu = gpus[k % gpus.length];
    if (gpu === undefined) continue;
    const migCount = gpu.migDevices.length;
    const mig = gpu.migDevices[Math.floor(k / gpus.length) % Math.max(1, migCount)];
    // On a MIG GPU a process lives in one instance and can only use that instance's memory.
    const budget = mig
      ? (mig.memoryTotalMiB * 0.8) / Math.ceil(perGpu / migCount)
      : (gpu.memoryUsableMiB * 0.8) / perGpu;
    out.push({
      pid: pidBase + k * 3 + Math.floor(unitHash(seed, 'pidgap', k) * 3),
      gpuIndex: gpu.index,
      usedMemoryMiB: Math.max(256, Math.floor(budget * (0.5 + 0.5 * unitHash(seed, 'mem', k)))),
      name: SYNTHETIC_NAMES[k % SYNTHETIC_NAMES.length] ?? 'python',
      type: 'C',
      ...(mig
        ? { gpuInstanceId: mig.gpuInstanceId, computeInstanceId: mig.computeInstanceId }
        : {}),
    });
  }
  return out;
}
