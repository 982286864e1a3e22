// Value parsers for command-line flags. Each throws commander's InvalidArgumentError, so a bad
// value ends the command with "error: option '--x <V>' argument 'v' is invalid. <why>" and exit
// status 2 (main.ts), never with a stack trace; and durations and sizes are shown as such in --help.
import { InvalidArgumentError, Option } from 'commander';
import { formatDuration, parseDuration } from './core/duration.js';

/** A duration flag ("30s", "10m", "180d"), parsed to milliseconds. */
export function durationArg(options: { readonly min?: number; readonly max?: number } = {}) {
  const min = options.min ?? 0;
  return (value: string): number => {
    const ms = parseDuration(value);
    const range =
      options.max !== undefined
        ? ` from ${formatDuration(min)} to ${formatDuration(options.max)}`
        : min > 0
          ? ` of at least ${formatDuration(min)}`
          : '';
    if (ms === undefined || ms < min || (options.max !== undefined && ms > options.max)) {
      throw new InvalidArgumentError(
        `Expected a duration${range}, like 500ms, 30s, 10m, 1h30m or 180d.`,
      );
    }
    return ms;
  };
}

/** A whole-number flag within bounds. */
export function intArg(min: number, max: number = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value.trim());
    if (!/^-?\d+$/.test(value.trim()) || n < min || n > max) {
      throw new InvalidArgumentError(
        max === Number.MAX_SAFE_INTEGER
          ? `Expected a whole number, at least ${min}.`
          : `Expected a whole number from ${min} to ${max}.`,
      );
    }
    return n;
  };
}

/** A decimal number flag, at least `min`. */
export function numberArg(min: number) {
  return (value: string): number => {
    const n = Number(value.trim());
    if (value.trim() === '' || !Number.isFinite(n) || n < min) {
      throw new InvalidArgumentError(`Expected a number, at least ${min}.`);
    }
    return n;
  };
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** A size flag: a number of bytes or "512MiB", "64GiB", "10GB". */
export function sizeArg(min: number) {
  return (value: string): number => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
    const factor = SIZE_UNITS[(m?.[2] ?? '?').toLowerCase()];
    const bytes = m && factor !== undefined ? Math.round(Number(m[1]) * factor) : NaN;
    if (!Number.isSafeInteger(bytes) || bytes < min) {
      throw new InvalidArgumentError(
        `Expected a size of at least ${min} bytes, like 1048576, 512MiB or 64GiB.`,
      );
    }
    return bytes;
  };
}

/** Formats bytes the way sizeArg reads them back ("64GiB", "1536KiB", "1000"). */
export function formatSize(bytes: number): string {
  for (const [unit, factor] of [
    ['TiB', 1024 ** 4],
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes > 0 && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return String(bytes);
}

/** A duration option whose default --help shows as a duration ("180d"), not milliseconds. */
export function durationOption(
  flags: string,
  description: string,
  defaultMs?: number,
  bounds: { readonly min?: number; readonly max?: number } = {},
): Option {
  const option = new Option(flags, description).argParser(durationArg(bounds));
  if (defaultMs === undefined) return option;
  return option.default(defaultMs, defaultMs === 0 ? '0s' : formatDuration(defaultMs));
}

/** A size option whose default --help shows as a size ("64GiB"), not a byte count. */
export function sizeOption(
  flags: string,
  description: string,
  defaultBytes: number,
  min = 1,
): Option {
  return new Option(flags, description)
    .argParser(sizeArg(min))
    .default(defaultBytes, formatSize(defaultBytes));
}
