/**
 * DCGM's violation counters (fields 240-242) and the clocks-event reasons each one stands for.
 *
 * DCGM reads them from NVML's perf-policy counters (NVML_FI_DEV_PERF_POLICY_*): wall time, in
 * nanoseconds, during which one class of limiter held the clocks below the application clocks.
 * A class counts each instant once however many of its reasons are active, so a counter grows at
 * most 1 s per second (`dcgmi stats` shows them as "Runtime % at reduced clocks"). NVML's
 * TOTAL_APP_CLOCKS is "any limiter of classes 0-5", so every hardware slowdown falls in a class:
 * the HW power brake in power, HW thermal slowdown in thermal.
 *
 * The driver's own per-reason counters (`clocks_event_reasons_counters.*`, microseconds) overlap
 * within a class: SW and HW thermal slowdown are usually active together. Adding them counts the
 * shared time twice; the larger of the two is a counter too, never grows faster than wall time,
 * and equals the class's time whenever one reason's episodes contain the other's (the case in
 * every simulated scenario, and the usual one: the HW slowdown engages only past the SW limit).
 */
import type { ThrottleReason } from '../../agent/core/facts.js';

/** Each violation field and the per-reason driver counters that make it up. */
export const VIOLATION_REASONS = {
  DCGM_FI_DEV_POWER_VIOLATION: ['sw_power_cap', 'hw_power_brake_slowdown'],
  DCGM_FI_DEV_THERMAL_VIOLATION: ['sw_thermal_slowdown', 'hw_thermal_slowdown'],
  DCGM_FI_DEV_SYNC_BOOST_VIOLATION: ['sync_boost'],
} as const satisfies Readonly<Record<string, readonly ThrottleReason[]>>;

/** A violation field's name. */
export type ViolationField = keyof typeof VIOLATION_REASONS;

/**
 * A violation counter in DCGM's unit (nanoseconds) from the driver's per-reason seconds: the
 * largest of its class (see the module comment); undefined when the driver reports none of them.
 */
export function violationNanoseconds(
  seconds: Readonly<Partial<Record<ThrottleReason, number>>>,
  field: ViolationField,
): number | undefined {
  let max: number | undefined;
  for (const reason of VIOLATION_REASONS[field]) {
    const s = seconds[reason];
    if (s !== undefined && (max === undefined || s > max)) max = s;
  }
  return max === undefined ? undefined : Math.round(max * 1e9);
}
