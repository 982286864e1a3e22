import { describe, expect, it } from 'vitest';
import {
  decodeThrottleMask,
  definedOnly,
  gpuIdentity,
  isMissing,
  missingReason,
  parseBool,
  parseInteger,
  parseMask,
  parseNumber,
  parsePstate,
  parseQuantity,
  parseText,
  toBytes,
  toCelsius,
  toHertz,
  toJoules,
  toRatio,
  toSeconds,
  toWatts,
} from './values.js';

describe('missingReason / isMissing', () => {
  it.each([
    ['N/A', 'not_available'],
    ['[N/A]', 'not_available'],
    ['n/a', 'not_available'],
    ['', 'not_available'],
    ['   ', 'not_available'],
    ['-', 'not_available'],
    ['Not Found', 'not_available'],
    ['[Not Supported]', 'not_supported'],
    ['Not Supported', 'not_supported'],
    ['[NOT SUPPORTED]', 'not_supported'],
    ['[Function Not Found]', 'not_supported'],
    ['[Requested functionality has been deprecated]', 'deprecated'],
    ['Requested functionality has been deprecated', 'deprecated'],
    ['[Insufficient Permissions]', 'insufficient_permissions'],
    ['[Unknown Error]', 'unknown_error'],
    ['Unknown Error', 'unknown_error'],
    ['[GPU requires reset]', 'gpu_requires_reset'],
    ['[GPU is lost]', 'error'],
    ['ERR!', 'error'],
    [' [ N/A ] ', 'not_available'],
  ])('%j → %s', (raw, reason) => {
    expect(missingReason(raw)).toBe(reason);
    expect(isMissing(raw)).toBe(true);
  });

  it('treats an absent cell as not available', () => {
    expect(missingReason(undefined)).toBe('not_available');
    expect(isMissing(undefined)).toBe(true);
  });

  it.each([
    '0',
    '0 %',
    'P8',
    'Disabled',
    'GPU-00000000-0000-0000-0000-000000000000',
    '[x]',
    'N/A x',
    'constructor',
    '[__proto__]',
  ])('%j is a value', (raw) => {
    expect(missingReason(raw)).toBeUndefined();
    expect(isMissing(raw)).toBe(false);
  });
});

describe('parseText', () => {
  it('trims values and drops the missing spellings', () => {
    expect(parseText('  NVIDIA H200 ')).toBe('NVIDIA H200');
    expect(parseText('[N/A]')).toBeUndefined();
    expect(parseText(undefined)).toBeUndefined();
  });
});

describe('parseQuantity / parseNumber', () => {
  it.each([
    ['2566 MiB', 2566, 'MiB'],
    ['78.28 W', 78.28, 'W'],
    ['100.00 %', 100, '%'],
    ['345 MHz', 345, 'MHz'],
    ['0 us', 0, 'us'],
    ['28 C', 28, 'C'],
    ['16x', 16, 'x'],
    ['1066699 KB/s', 1066699, 'KB/s'],
    ['-3.5', -3.5, undefined],
    ['.5', 0.5, undefined],
    ['7.', 7, undefined],
    ['0x0000000000000004', 4, undefined],
    ['0x1E8110DE', 0x1e8110de, undefined],
  ])('%j → %d %s', (raw, value, unit) => {
    expect(parseQuantity(raw)).toEqual(unit === undefined ? { value } : { value, unit });
    expect(parseNumber(raw)).toBe(value);
  });

  it.each([
    '[N/A]',
    'ERR!',
    'abc',
    '1e5',
    'Infinity',
    'NaN',
    '12 34',
    '1.2.3',
    '0x',
    '0xZZ',
    '12 MiB extra',
    undefined,
  ])('%j → undefined', (raw) => {
    expect(parseQuantity(raw)).toBeUndefined();
    expect(parseNumber(raw)).toBeUndefined();
  });

  it('refuses hex beyond what a double holds exactly', () => {
    expect(parseNumber('0x001FFFFFFFFFFFFF')).toBe(Number.MAX_SAFE_INTEGER);
    expect(parseNumber('0x0020000000000000')).toBeUndefined();
    expect(parseNumber('0xFFFFFFFFFFFFFFFF')).toBeUndefined();
  });
});

describe('parseInteger', () => {
  it.each([
    ['0', 0],
    ['21180', 21180],
    [' 7 ', 7],
  ])('%j → %d', (raw, value) => expect(parseInteger(raw)).toBe(value));

  it.each(['-1', '1.5', '2 MiB', '0x10', '[N/A]', '99999999999999999999', undefined])(
    '%j → undefined',
    (raw) => expect(parseInteger(raw)).toBeUndefined(),
  );
});

describe('parseMask', () => {
  it('keeps all 64 bits', () => {
    expect(parseMask('0x8000000000000001')).toBe(0x8000000000000001n);
    expect(parseMask('0x00000000000001FF')).toBe(0x1ffn);
    expect(parseMask('260')).toBe(260n);
  });

  it.each(['[N/A]', 'Active', '0x', '-4', undefined])('%j → undefined', (raw) => {
    expect(parseMask(raw)).toBeUndefined();
  });
});

describe('parseBool', () => {
  it.each([
    ['Enabled', true],
    ['Disabled', false],
    ['Active', true],
    ['Not Active', false],
    ['Yes', true],
    ['No', false],
    ['On', true],
    ['Off', false],
    ['ENABLED', true],
    ['not active', false],
    ['True', true],
    ['false', false],
  ])('%j → %s', (raw, value) => expect(parseBool(raw)).toBe(value));

  it.each(['[N/A]', 'Supported', 'Default', '1', 'toString', 'constructor', undefined])(
    '%j → undefined',
    (raw) => expect(parseBool(raw)).toBeUndefined(),
  );
});

describe('parsePstate', () => {
  it.each([
    ['P0', 0],
    ['P2', 2],
    ['P8', 8],
    ['P15', 15],
    ['p12', 12],
  ])('%j → %d', (raw, value) => expect(parsePstate(raw)).toBe(value));

  it.each(['P16', 'P32', 'Unknown', '8', 'P', '[N/A]', undefined])('%j → undefined', (raw) => {
    expect(parsePstate(raw)).toBeUndefined();
  });
});

describe('unit conversion to base units', () => {
  it.each([
    [toBytes, '2566 MiB', 2566 * 1048576],
    [toBytes, '2566', 2566 * 1048576],
    [toBytes, '4 GiB', 4 * 1073741824],
    [toBytes, '1 TiB', 1099511627776],
    [toBytes, '512 KiB', 524288],
    [toBytes, '7 B', 7],
    [toRatio, '38 %', 0.38],
    [toRatio, '100', 1],
    [toRatio, '100.00 %', 1],
    [toHertz, '1410 MHz', 1410e6],
    [toHertz, '765', 765e6],
    [toHertz, '2.1 GHz', 2.1e9],
    [toHertz, '10 kHz', 10e3],
    [toHertz, '50 Hz', 50],
    [toSeconds, '212553937 us', 212.553937],
    [toSeconds, '15814595384', 15814.595384],
    [toSeconds, '1500 ms', 1.5],
    [toSeconds, '2 s', 2],
    [toSeconds, '1000 ns', 1e-6],
    [toSeconds, '5 µs', 5e-6],
    [toWatts, '70.89 W', 70.89],
    [toWatts, '350.00', 350],
    [toWatts, '500 mW', 0.5],
    [toWatts, '1.2 kW', 1200],
    [toCelsius, '35 C', 35],
    [toCelsius, '26', 26],
    [toJoules, '123456 mJ', 123.456],
    [toJoules, '42 J', 42],
    [toJoules, '3 kJ', 3000],
  ])('%o(%j) = %d', (convert, raw, expected) => {
    expect(convert(raw)).toBeCloseTo(expected, 12);
  });

  it('is exact where the fixtures need it', () => {
    expect(toBytes('81559 MiB')).toBe(85520809984);
    expect(toRatio('9 %')).toBe(0.09);
    expect(toSeconds('212553937 us')).toBe(212.553937);
  });

  it.each([
    [toBytes, '2566 MB'],
    [toBytes, '[N/A]'],
    [toRatio, '38 MiB'],
    [toHertz, '1410 W'],
    [toSeconds, '3 h'],
    [toWatts, '70 A'],
    [toCelsius, '95 F'],
    [toJoules, '42'],
    [toJoules, '42 Wh'],
    [toBytes, '5 constructor'],
    [toWatts, '5 valueOf'],
  ])('%o(%j) refuses an unexpected or missing unit', (convert, raw) => {
    expect(convert(raw)).toBeUndefined();
  });
});

describe('decodeThrottleMask', () => {
  it('decodes every NVML bit', () => {
    expect(decodeThrottleMask(0x1ffn)).toEqual({
      gpu_idle: true,
      applications_clocks_setting: true,
      sw_power_cap: true,
      hw_slowdown: true,
      sync_boost: true,
      sw_thermal_slowdown: true,
      hw_thermal_slowdown: true,
      hw_power_brake_slowdown: true,
      display_clock_setting: true,
    });
    expect(decodeThrottleMask(0x4n)).toMatchObject({ sw_power_cap: true, gpu_idle: false });
    expect(Object.values(decodeThrottleMask(0n)).every((v) => !v)).toBe(true);
  });

  it('ignores bits NVML has no reason for', () => {
    expect(decodeThrottleMask(0x8000000000000000n)).toEqual(decodeThrottleMask(0n));
  });

  it('leaves reasons outside the supported mask absent', () => {
    expect(decodeThrottleMask(0x1n, 0x5n)).toEqual({ gpu_idle: true, sw_power_cap: false });
  });
});

describe('definedOnly', () => {
  it('drops undefined keys and keeps falsy values', () => {
    expect(definedOnly({ a: 0, b: undefined, c: false, d: '' })).toStrictEqual({
      a: 0,
      c: false,
      d: '',
    });
  });
});

describe('gpuIdentity', () => {
  it('prefers the UUID and marks the PCI bus id stand-in', () => {
    expect(gpuIdentity('GPU-a', '00000000:0C:00.0')).toBe('GPU-a');
    expect(gpuIdentity('[GPU requires reset]', '00000000:0C:00.0')).toBe('pci:00000000:0C:00.0');
    expect(gpuIdentity(undefined, '00000000:0C:00.0')).toBe('pci:00000000:0C:00.0');
    expect(gpuIdentity('[N/A]', '[N/A]')).toBeUndefined();
    expect(gpuIdentity(undefined, undefined)).toBeUndefined();
  });
});
