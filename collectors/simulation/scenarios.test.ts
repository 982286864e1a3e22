import { describe, expect, it } from 'vitest';
import {
  activeTimeMs,
  affectsGpu,
  NO_SCENARIO,
  parseScenario,
  ScenarioError,
  scenarioPhase,
} from './scenarios.js';

describe('parseScenario', () => {
  it('treats an empty or missing spec as no scenario', () => {
    expect(parseScenario(undefined)).toEqual(NO_SCENARIO);
    expect(parseScenario('  ')).toEqual(NO_SCENARIO);
  });

  it('applies scenario-specific defaults', () => {
    const thermal = parseScenario('thermal-throttle');
    expect(thermal).toMatchObject({ name: 'thermal-throttle', afterMs: 10_000, forMs: 20_000 });
    expect(parseScenario('gpu-lost')).toMatchObject({ afterMs: 10_000, forMs: undefined });
    expect(parseScenario('no-driver')).toMatchObject({ afterMs: 0, forMs: undefined });
    expect(parseScenario('memory-full').rampMs).toBe(20_000);
  });

  it('reads after, for, gpu, ramp and sigterm', () => {
    expect(parseScenario('thermal-throttle:after=5s,for=1m,gpu=2+5,ramp=500ms')).toEqual({
      name: 'thermal-throttle',
      afterMs: 5000,
      forMs: 60_000,
      gpus: [2, 5],
      rampMs: 500,
      ignoreSigterm: false,
      lostError: 'unknown',
    });
    expect(parseScenario('hang:for=inf,sigterm=ignore')).toMatchObject({
      forMs: undefined,
      ignoreSigterm: true,
    });
  });

  it('reads what NVML answers for a lost GPU (error=unknown|lost)', () => {
    expect(parseScenario('gpu-lost').lostError).toBe('unknown');
    expect(parseScenario('gpu-lost:error=lost').lostError).toBe('lost');
    expect(() => parseScenario('gpu-lost:error=melted')).toThrow(/error=melted \(unknown\|lost\)/);
  });

  it('rejects unknown names, keys and bad durations', () => {
    expect(() => parseScenario('meltdown')).toThrow(ScenarioError);
    expect(() => parseScenario('hang:color=red')).toThrow(/unknown scenario parameter "color"/);
    expect(() => parseScenario('hang:after=soon')).toThrow(/not a duration/);
    expect(() => parseScenario('hang:after')).toThrow(/key=value/);
    expect(() => parseScenario('gpu-lost:gpu=x')).toThrow(ScenarioError);
  });
});

describe('scenarioPhase', () => {
  const s = parseScenario('power-brake:after=10s,for=20s');

  it('is before, active, then after, with the times to the next edge', () => {
    expect(scenarioPhase(s, 4000)).toEqual({ state: 'before', untilStartMs: 6000 });
    expect(scenarioPhase(s, 10_000)).toEqual({
      state: 'active',
      sinceStartMs: 0,
      untilEndMs: 20_000,
    });
    expect(scenarioPhase(s, 29_999)).toMatchObject({ state: 'active', untilEndMs: 1 });
    expect(scenarioPhase(s, 35_000)).toEqual({ state: 'after', sinceEndMs: 5000 });
  });

  it('never ends without for', () => {
    const lost = parseScenario('gpu-lost:after=1s');
    expect(scenarioPhase(lost, 1e9)).toMatchObject({ state: 'active', untilEndMs: Infinity });
  });

  it('counts the episode time, capped at for', () => {
    expect(activeTimeMs(s, 5000)).toBe(0);
    expect(activeTimeMs(s, 15_000)).toBe(5000);
    expect(activeTimeMs(s, 90_000)).toBe(20_000);
  });

  it('targets listed GPUs only', () => {
    const one = parseScenario('thermal-throttle:gpu=3');
    expect(affectsGpu(one, 3)).toBe(true);
    expect(affectsGpu(one, 0)).toBe(false);
    expect(affectsGpu(parseScenario('thermal-throttle'), 7)).toBe(true);
  });
});
