import type { GpuReading } from '../../agent/core/facts.js';
// Seeded (mulberry32), so sizes measured in tests are stable.
import { seededRandom as prng } from '../../agent/components/drift/synthetic.js';

function uuid(random: () => number): string {
  const hex = (n: number) =>
    Array.from({ length: n }, () => Math.floor(random() * 16).toString(16)).join('');
  return `GPU-${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`;
}

/**
 * H100 SXM readings as nvidia-smi reports them (values in base units), with random UUIDs and
 * loads: the shape of a busy 8-GPU box, for payload-size and end-to-end tests.
 */
export function h100Readings(count: number, seed = 1, t = 0): GpuReading[] {
  const random = prng(seed);
  return Array.from({ length: count }, (_, index) => ({
    index,
    uuid: uuid(random),
    name: 'NVIDIA H100 80GB HBM3',
    pciBusId: `00000000:${(0x18 + index * 0x10).toString(16).toUpperCase().padStart(2, '0')}:00.0`,
    driverVersion: '550.54.15',
    cudaVersion: '12.4',
    vbiosVersion: '96.00.99.00.01',
    computeCapability: '9.0',
    utilizationRatio: Math.round(random() * 100) / 100,
    memoryUtilizationRatio: Math.round(random() * 100) / 100,
    encoderUtilizationRatio: 0,
    decoderUtilizationRatio: 0,
    memoryTotalBytes: 85_520_809_984,
    memoryUsedBytes: Math.round(random() * 80_000) * 1_048_576,
    memoryFreeBytes: Math.round(random() * 1_000) * 1_048_576,
    memoryReservedBytes: 551_550_976,
    temperatureCelsius: 35 + Math.round(random() * 40),
    memoryTemperatureCelsius: 40 + Math.round(random() * 40),
    powerDrawWatts: Math.round(random() * 70_000) / 100,
    powerLimitWatts: 700,
    enforcedPowerLimitWatts: 700,
    energyJoules: Math.round((123_456_789.123 + t * 500) * 1000) / 1000,
    clocksHz: { graphics: 1_980e6, sm: 1_980e6, memory: 2_619e6, video: 1_545e6 },
    maxClocksHz: { graphics: 1_980e6, sm: 1_980e6, memory: 2_619e6, video: 1_965e6 },
    fanSpeedRatio: undefined,
    pstate: 0,
    throttle: {
      gpu_idle: false,
      applications_clocks_setting: false,
      sw_power_cap: random() > 0.5,
      hw_slowdown: false,
      sync_boost: false,
      sw_thermal_slowdown: false,
      hw_thermal_slowdown: false,
      hw_power_brake_slowdown: false,
      display_clock_setting: false,
    },
    throttleSeconds: {
      gpu_idle: 12_345.678,
      applications_clocks_setting: 0,
      sw_power_cap: 2_345.12,
      hw_slowdown: 0,
      sync_boost: 0,
      sw_thermal_slowdown: 0,
      hw_thermal_slowdown: 0,
      hw_power_brake_slowdown: 0,
      display_clock_setting: 0,
    },
    pcieLinkGen: 5,
    pcieLinkWidth: 16,
    persistenceMode: true,
    migEnabled: false,
    ecc: {
      enabled: true,
      correctedVolatile: 0,
      uncorrectedVolatile: 0,
      correctedAggregate: 3,
      uncorrectedAggregate: 0,
    },
    retiredPagesSingleBit: 0,
    retiredPagesDoubleBit: 0,
    retiredPagesPending: false,
    remappedRowsCorrectable: 0,
    remappedRowsUncorrectable: 0,
    remappedRowsPending: false,
    remappedRowsFailure: false,
  }));
}
