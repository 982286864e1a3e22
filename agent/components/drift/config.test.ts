import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config.js';

describe('drift settings from the environment', () => {
  it('takes one hysteresis bound alone and keeps the other at its default', () => {
    const { config } = loadConfig({ env: { GPULSE_DRIFT_HYSTERESIS_RAISE: '2' } });
    expect(config.drift.hysteresis).toEqual({ raise: 2, clear: 3 });
    const other = loadConfig({ env: { GPULSE_DRIFT_HYSTERESIS_CLEAR: '5' } }).config;
    expect(other.drift.hysteresis).toEqual({ raise: 3, clear: 5 });
  });
});
