import { z } from 'zod';
import { DURATION_LIMITS, formatDuration, parseDuration } from './core/duration.js';

/**
 * A duration setting: "15s", "500ms", "1m" or milliseconds; parsed to milliseconds. Bounded
 * above (default 24 days) so that no setting, nor a few intervals of it, overflows a timer.
 */
export function zDuration(options: { min?: number; max?: number } = {}) {
  return kind('DURATION', zDurationSchema(options));
}

function zDurationSchema(options: { min?: number; max?: number }) {
  const min = options.min ?? 0;
  const max = options.max ?? DURATION_LIMITS.max;
  const wanted = 'expected a duration like "500ms", "15s" or "1m"';
  return z.union([z.string(), z.number()], { error: wanted }).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration like "500ms", "15s" or "1m", got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    if (ms < min) {
      ctx.addIssue({ code: 'custom', message: `must be at least ${min}ms, got ${ms}ms` });
      return z.NEVER;
    }
    if (ms > max) {
      ctx.addIssue({
        code: 'custom',
        message: `must be at most ${formatDuration(max)}, got ${formatDuration(ms)}`,
      });
      return z.NEVER;
    }
    return ms;
  });
}

/** A sampling interval: at least `min` ms, at most an hour. */
export function zInterval(min: number) {
  return zDuration({ min, max: DURATION_LIMITS.interval });
}

/** The limit of one call (a one-shot command, a request): 100 ms to 10 minutes. */
export function zTimeout() {
  return zDuration({ min: 100, max: DURATION_LIMITS.timeout });
}

/** A positive integer that may arrive as a string from the environment or a flag. */
export function zInt(options: { min?: number; max?: number } = {}) {
  return kind('N', zIntSchema(options));
}

function zIntSchema(options: { min?: number; max?: number }) {
  const wanted = 'expected an integer';
  return z.union([z.string(), z.number()], { error: wanted }).transform((value, ctx) => {
    const n = typeof value === 'number' ? value : Number(value.trim());
    if (!Number.isInteger(n)) {
      ctx.addIssue({
        code: 'custom',
        message: `expected an integer, got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    if (options.min !== undefined && n < options.min) {
      ctx.addIssue({ code: 'custom', message: `must be at least ${options.min}, got ${n}` });
      return z.NEVER;
    }
    if (options.max !== undefined && n > options.max) {
      ctx.addIssue({ code: 'custom', message: `must be at most ${options.max}, got ${n}` });
      return z.NEVER;
    }
    return n;
  });
}

/** A share: "5%" or 0.05 (from the environment or a flag too); parsed to a ratio in 0-1. */
export function zRatio() {
  return kind('RATIO', zRatioSchema());
}

function zRatioSchema() {
  const wanted = 'expected a share like "5%" or 0.05';
  return z.union([z.string(), z.number()], { error: wanted }).transform((value, ctx) => {
    const text = typeof value === 'number' ? '' : value.trim();
    const n = text.endsWith('%') ? Number(text.slice(0, -1)) / 100 : Number(value);
    if (!Number.isFinite(n) || n < 0 || n > 1 || (typeof value === 'string' && text === '')) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a share from 0 to 1 or 0% to 100% (e.g. "5%" or 0.05), got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    return n;
  });
}

/** A size in bytes: 1048576, "256MiB", "1GiB", "64KB"; at least `min` (default 0). */
export function zBytes(options: { min?: number; max?: number } = {}) {
  return kind('SIZE', zBytesSchema(options));
}

function zBytesSchema(options: { min?: number; max?: number }) {
  const units: Record<string, number> = {
    b: 1,
    kb: 1e3,
    mb: 1e6,
    gb: 1e9,
    kib: 1024,
    mib: 1024 ** 2,
    gib: 1024 ** 3,
  };
  const min = options.min ?? 0;
  const max = options.max ?? Number.MAX_SAFE_INTEGER;
  const wanted = 'expected a size like "256MiB" or a number of bytes';
  return z.union([z.string(), z.number()], { error: wanted }).transform((value, ctx) => {
    let bytes: number | undefined;
    if (typeof value === 'number') {
      bytes = Number.isFinite(value) ? Math.round(value) : undefined;
    } else {
      const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
      const factor = units[(m?.[2] ?? '').toLowerCase() || 'b'];
      bytes = m && factor !== undefined ? Math.round(Number(m[1]) * factor) : undefined;
    }
    if (bytes === undefined || (typeof value === 'number' && value < 0)) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a size like "256MiB" or a number of bytes, got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    if (bytes < min || bytes > max) {
      ctx.addIssue({
        code: 'custom',
        message:
          bytes < min
            ? `must be at least ${min}, got ${bytes}`
            : `must be at most ${max}, got ${bytes}`,
      });
      return z.NEVER;
    }
    return bytes;
  });
}

/** A path to a file of any kind (a binary, a socket, a device, a directory): not empty. */
export function zPath() {
  return kind('PATH', z.string().min(1));
}

/** A directory. */
export function zDir() {
  return kind('DIR', z.string().min(1));
}

/** A file. */
export function zFile() {
  return kind('FILE', z.string().min(1));
}

/** Intervals a collector's long-lived stream may stay silent before it is restarted (default 3). */
export function zStallIntervals() {
  return zInt({ min: 2, max: 100 }).default(3);
}

/** How a collector runs: `auto` runs and reports no_data when its source is absent. */
export const zCollectorMode = z.enum(['auto', 'required', 'off']);

/** Collector mode. */
export type CollectorMode = z.infer<typeof zCollectorMode>;

/**
 * How a setting is reached from the environment and the command line, written next to its schema
 * field with `setting()`; `agent/settings.generated.ts` gathers them for the CLI.
 */
export interface SettingMeta {
  /** Environment variable, e.g. GPULSE_NVIDIA_SMI. */
  readonly env?: string;
  /** Long flag without dashes, e.g. 'nvidia-smi'. */
  readonly flag?: string;
  /** Flag value placeholder for --help, e.g. 'PATH'; by default the one its kind implies. */
  readonly valueName?: string;
  readonly description: string;
  /** Comma-separated env/flag values become arrays. */
  readonly list?: boolean;
}

/** One setting reachable from the environment and/or a command-line flag. */
export interface SettingBinding extends SettingMeta {
  /** Path in the config object, e.g. ['collectors', 'nvidia-smi', 'binary']. */
  readonly path: readonly string[];
}

/**
 * The --help placeholder that a kind of setting implies ('DURATION' for every zDuration), taken
 * where a field's `setting()` mark names none; a z.enum implies its values joined by '|'.
 */
export const valueNameRegistry = z.registry<{ readonly valueName: string }>();

function kind<S extends z.ZodType>(valueName: string, schema: S): S {
  valueNameRegistry.add(schema, { valueName });
  return schema;
}

/** The env/flag bindings of schema fields (a registry, so the schemas stay plain zod). */
export const settingRegistry = z.registry<SettingMeta>();

/**
 * Binds a schema field to an environment variable and/or a flag. The CLI never reads this: it
 * reads the generated plain-data table (`npm run docs`), so the agent process needs no zod.
 */
export function setting<S extends z.ZodType>(schema: S, meta: SettingMeta): S {
  // add(), not schema.register(): register's meta type depends on S, which a generic leaves open.
  settingRegistry.add(schema, meta);
  return schema;
}
