import { parseDuration } from '../../agent/core/duration.js';

/** Fault scenarios the simulated GPUs can play. */
export const SCENARIO_NAMES = [
  'none',
  'thermal-throttle',
  'power-brake',
  'gpu-lost',
  'hang',
  'memory-full',
  'no-driver',
  'no-devices',
] as const;

/** One scenario name. */
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

/** A parsed scenario spec (`name[:key=value,...]`). */
export interface Scenario {
  readonly name: ScenarioName;
  /** Episode start, relative to the simulation start (GPULSE_SIM_START). */
  readonly afterMs: number;
  /** Episode length; undefined: lasts forever. */
  readonly forMs: number | undefined;
  /** GPUs the episode touches (by index); undefined: all of them. */
  readonly gpus: readonly number[] | undefined;
  /** Time to reach the full effect (memory-full climb, thermal climb). */
  readonly rampMs: number;
  /** Ignore SIGTERM while hung, as a process stuck in the driver (D state) does. */
  readonly ignoreSigterm: boolean;
  /**
   * What NVML answers for a lost GPU's handle (gpu-lost): `unknown` ("Unknown Error", what
   * current drivers print after Xid 79) or `lost` ("GPU is lost.  Reboot the system ...").
   */
  readonly lostError: LostError;
}

/** NVML's answer for the handle of a lost GPU. */
export type LostError = 'unknown' | 'lost';

/** Where an instant falls relative to a scenario's episode. */
export type ScenarioPhase =
  | { readonly state: 'before'; readonly untilStartMs: number }
  | { readonly state: 'active'; readonly sinceStartMs: number; readonly untilEndMs: number }
  | { readonly state: 'after'; readonly sinceEndMs: number };

/** A malformed GPULSE_SIM_SCENARIO value. */
export class ScenarioError extends Error {
  readonly code = 'GPULSE_SIM_SCENARIO';
  constructor(message: string) {
    super(message);
    this.name = 'ScenarioError';
  }
}

/** Scenario without faults. */
export const NO_SCENARIO: Scenario = {
  name: 'none',
  afterMs: 0,
  forMs: undefined,
  gpus: undefined,
  rampMs: 0,
  ignoreSigterm: false,
  lostError: 'unknown',
};

// Throttles clear after 20 s so an episode has a start and an end; the failure scenarios stay
// until told otherwise because that is what a lost GPU or a missing driver does.
const DEFAULT_FOR_MS: Readonly<Record<ScenarioName, number | undefined>> = {
  none: undefined,
  'thermal-throttle': 20_000,
  'power-brake': 20_000,
  'gpu-lost': undefined,
  hang: undefined,
  'memory-full': undefined,
  'no-driver': undefined,
  'no-devices': undefined,
};

// A host without a driver or without devices is that way from boot, not after 10 s.
const DEFAULT_AFTER_MS: Readonly<Record<ScenarioName, number>> = {
  none: 0,
  'thermal-throttle': 10_000,
  'power-brake': 10_000,
  'gpu-lost': 10_000,
  hang: 10_000,
  'memory-full': 10_000,
  'no-driver': 0,
  'no-devices': 0,
};

const DEFAULT_RAMP_MS: Readonly<Record<ScenarioName, number>> = {
  none: 0,
  'thermal-throttle': 5000,
  'power-brake': 1000,
  'gpu-lost': 0,
  hang: 0,
  'memory-full': 20_000,
  'no-driver': 0,
  'no-devices': 0,
};

function isScenarioName(name: string): name is ScenarioName {
  return (SCENARIO_NAMES as readonly string[]).includes(name);
}

function durationParam(key: string, value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined)
    throw new ScenarioError(`scenario parameter ${key}=${value}: not a duration`);
  return ms;
}

/**
 * Parses `name[:key=value,...]`, e.g. `thermal-throttle:after=10s,for=20s,gpu=3`.
 * Keys: after, for (`for=inf` never ends), gpu (`gpu=0+3` for several), ramp, sigterm=ignore,
 * error=unknown|lost (gpu-lost only).
 */
export function parseScenario(spec: string | undefined): Scenario {
  const text = spec?.trim() ?? '';
  if (text === '') return NO_SCENARIO;
  const colon = text.indexOf(':');
  const name = colon < 0 ? text : text.slice(0, colon);
  if (!isScenarioName(name)) {
    throw new ScenarioError(`unknown scenario "${name}" (known: ${SCENARIO_NAMES.join(', ')})`);
  }
  let afterMs = DEFAULT_AFTER_MS[name];
  let forMs = DEFAULT_FOR_MS[name];
  let rampMs = DEFAULT_RAMP_MS[name];
  let gpus: number[] | undefined;
  let ignoreSigterm = false;
  let lostError: LostError = 'unknown';
  const params = colon < 0 ? '' : text.slice(colon + 1);
  for (const pair of params.split(',')) {
    if (pair.trim() === '') continue;
    const eq = pair.indexOf('=');
    if (eq < 0) throw new ScenarioError(`scenario parameter "${pair}" is not key=value`);
    const key = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    switch (key) {
      case 'after':
        afterMs = durationParam(key, value);
        break;
      case 'for':
        forMs = value === 'inf' || value === 'forever' ? undefined : durationParam(key, value);
        break;
      case 'ramp':
        rampMs = durationParam(key, value);
        break;
      case 'gpu':
      case 'gpus':
        gpus = value.split(/[+;/ ]/).map((part) => {
          const n = Number(part);
          if (!Number.isInteger(n) || n < 0) throw new ScenarioError(`scenario gpu=${value}`);
          return n;
        });
        break;
      case 'sigterm':
        if (value !== 'ignore' && value !== 'exit') {
          throw new ScenarioError(`scenario sigterm=${value} (ignore|exit)`);
        }
        ignoreSigterm = value === 'ignore';
        break;
      case 'error':
        if (value !== 'unknown' && value !== 'lost') {
          throw new ScenarioError(`scenario error=${value} (unknown|lost)`);
        }
        lostError = value;
        break;
      default:
        throw new ScenarioError(`unknown scenario parameter "${key}"`);
    }
  }
  return { name, afterMs, forMs, gpus, rampMs, ignoreSigterm, lostError };
}

/** Phase of the scenario `elapsedMs` after the simulation started. */
export function scenarioPhase(scenario: Scenario, elapsedMs: number): ScenarioPhase {
  if (scenario.name === 'none' || elapsedMs < scenario.afterMs) {
    return { state: 'before', untilStartMs: Math.max(0, scenario.afterMs - elapsedMs) };
  }
  const sinceStartMs = elapsedMs - scenario.afterMs;
  if (scenario.forMs === undefined || sinceStartMs < scenario.forMs) {
    return {
      state: 'active',
      sinceStartMs,
      untilEndMs: scenario.forMs === undefined ? Infinity : scenario.forMs - sinceStartMs,
    };
  }
  return { state: 'after', sinceEndMs: sinceStartMs - scenario.forMs };
}

/** Milliseconds of the episode that have elapsed by `elapsedMs` (0 before, capped at `for`). */
export function activeTimeMs(scenario: Scenario, elapsedMs: number): number {
  if (scenario.name === 'none') return 0;
  const since = Math.max(0, elapsedMs - scenario.afterMs);
  return scenario.forMs === undefined ? since : Math.min(since, scenario.forMs);
}

/** True when the scenario touches the GPU with this index. */
export function affectsGpu(scenario: Scenario, gpuIndex: number): boolean {
  return scenario.gpus === undefined || scenario.gpus.includes(gpuIndex);
}
