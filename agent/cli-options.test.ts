import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { durationArg, formatSize, intArg, numberArg, sizeArg } from './cli-options.js';

function why(parse: (v: string) => unknown, value: string): string {
  try {
    parse(value);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return (err as Error).message;
  }
  throw new Error(`${value} was accepted`);
}

describe('flag parsers', () => {
  it('read durations within bounds', () => {
    expect(durationArg()('1h30m')).toBe(5_400_000);
    expect(durationArg({ min: 60_000 })('180d')).toBe(180 * 86_400_000);
    expect(why(durationArg(), 'soon')).toBe(
      'Expected a duration, like 500ms, 30s, 10m, 1h30m or 180d.',
    );
    expect(why(durationArg({ min: 60_000 }), '5s')).toBe(
      'Expected a duration of at least 1m, like 500ms, 30s, 10m, 1h30m or 180d.',
    );
    expect(why(durationArg({ min: 1, max: 600_000 }), '1h')).toBe(
      'Expected a duration from 1ms to 10m, like 500ms, 30s, 10m, 1h30m or 180d.',
    );
  });

  it('read whole numbers and numbers', () => {
    expect(intArg(1, 32)(' 8 ')).toBe(8);
    expect(why(intArg(1, 32), '1.5')).toBe('Expected a whole number from 1 to 32.');
    expect(why(intArg(0), '-1')).toBe('Expected a whole number, at least 0.');
    expect(numberArg(0)('0.25')).toBe(0.25);
    expect(why(numberArg(0), '')).toBe('Expected a number, at least 0.');
  });

  it('read sizes and show them back as written', () => {
    expect(sizeArg(1)('64GiB')).toBe(64 * 1024 ** 3);
    expect(sizeArg(1)('10GB')).toBe(1e10);
    expect(sizeArg(1)('1048576')).toBe(1048576);
    expect(why(sizeArg(1), '12 parsecs')).toBe(
      'Expected a size of at least 1 bytes, like 1048576, 512MiB or 64GiB.',
    );
    expect([64 * 1024 ** 3, 1536 * 1024, 1000, 0].map(formatSize)).toEqual([
      '64GiB',
      '1536KiB',
      '1000',
      '0',
    ]);
  });
});
