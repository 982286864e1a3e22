import type { ThrottleReason } from '../../agent/core/facts.js';

/**
 * NVML's clocks-event reason bits (nvml.h `nvmlClocksEventReason*`), as DCGM's bitmask and
 * nvidia-smi's `*_reasons.active` have them.
 */
// Written out again from nvml.h rather than imported from agent/facts.ts: the simulators encode
// with the source's table, so tests that decode with it would only echo a wrong bit.
export const NVML_REASON_BITS: Readonly<Record<ThrottleReason, number>> = {
  gpu_idle: 0x1,
  applications_clocks_setting: 0x2,
  sw_power_cap: 0x4,
  hw_slowdown: 0x8,
  sync_boost: 0x10,
  sw_thermal_slowdown: 0x20,
  hw_thermal_slowdown: 0x40,
  hw_power_brake_slowdown: 0x80,
  display_clock_setting: 0x100,
};
