import cron from 'node-cron';
import { parse as parseShell } from 'shell-quote';
import { z } from 'zod';
import { zBytes, zDuration, zInt, setting } from '../../agent/config-schema.js';
import { DEFAULT_FETCH, type FetchSettings } from './fetcher.js';
import { DEFAULT_HEALTH, type HealthSettings } from './health.js';
import { NAME_RE } from './manifest.js';
import { DEFAULT_RELOAD, type ReloadSettings } from './reload.js';

/**
 * Splits a command line into an argument array without a shell: quotes are honoured, but pipes,
 * redirections, globs and variables are refused, since nothing here runs through a shell.
 */
export function splitCommand(text: string): string[] {
  const parts = parseShell(text, (name) => `$${name}`);
  const out: string[] = [];
  for (const p of parts) {
    if (typeof p !== 'string')
      throw new Error(
        `command ${JSON.stringify(text)} uses shell syntax (${JSON.stringify(p)}); give a plain command with arguments`,
      );
    out.push(p);
  }
  if (out.length === 0) throw new Error('command is empty');
  return out;
}

const zCommand = z.union([z.string(), z.array(z.string()).min(1)]).transform((v, ctx) => {
  if (Array.isArray(v)) return v;
  try {
    return splitCommand(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const zUrl = z
  .string()
  .refine((s) => /^https?:\/\//.test(s) && URL.canParse(s), 'expected an http:// or https:// URL');

const SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGTERM', 'SIGINT'] as const;

const healthSchema = z
  .object({
    command: zCommand.optional(),
    commandTimeout: zDuration({ min: 100 }).default(DEFAULT_HEALTH.commandTimeoutMs),
    url: zUrl.optional(),
    urlTimeout: zDuration({ min: 100 }).default(DEFAULT_HEALTH.urlTimeoutMs),
    probeInterval: zDuration({ min: 100 }).default(DEFAULT_HEALTH.probeIntervalMs),
    goldenCommand: zCommand.optional(),
    goldenTimeout: zDuration({ min: 100 }).default(DEFAULT_HEALTH.goldenTimeoutMs),
    container: z.string().min(1).optional(),
    trialWindow: zDuration().default(DEFAULT_HEALTH.trialWindowMs),
    maxTrialStarts: zInt({ min: 1, max: 100 }).default(DEFAULT_HEALTH.maxTrialStarts),
    xid: z.enum(['any', 'off']).default('any'),
  })
  .strict();

const reloadSchema = z
  .object({
    container: z.string().min(1).optional(),
    signal: z
      .object({ pidFile: z.string().min(1), signal: z.enum(SIGNALS).default('SIGHUP') })
      .strict()
      .optional(),
    url: zUrl.optional(),
    method: z.enum(['POST', 'PUT', 'GET']).default('POST'),
    timeout: zDuration({ min: 100 }).default(DEFAULT_RELOAD.timeoutMs),
  })
  .strict();

/** One model the daemon keeps up to date (an item of the `models:` list). */
export const modelConfigSchema = z
  .object({
    name: z.string().regex(NAME_RE, 'letters, digits, . _ + - only'),
    source: zUrl,
    dir: z.string().min(1),
    /** Trusted public keys (PEM files from `gpulse model keygen`). */
    trust: z.union([
      z
        .string()
        .min(1)
        .transform((s) => [s]),
      z.array(z.string().min(1)).min(1),
    ]),
    /** node-cron expression for checks; `off` checks only on MQTT commands. */
    schedule: z
      .string()
      .default('*/15 * * * *')
      .refine(
        (s) => s === 'off' || cron.validate(s),
        'expected a cron expression like "*/15 * * * *" or "off"',
      ),
    /** Check once when the agent starts (also finishes an update a crash interrupted). */
    onStart: z.enum(['check', 'resume', 'off']).default('check'),
    parallel: zInt({ min: 1, max: 32 }).default(DEFAULT_FETCH.parallel),
    transport: z.enum(['ranges', 'chunks']).default(DEFAULT_FETCH.transport),
    stallTimeout: zDuration({ min: 100 }).default(DEFAULT_FETCH.stallTimeoutMs),
    requestTimeout: zDuration({ min: 100 }).default(DEFAULT_FETCH.requestTimeoutMs),
    retries: zInt({ min: 0, max: 100 }).default(DEFAULT_FETCH.retries),
    maxBytes: zBytes().default(64 * 1024 ** 3),
    maxManifestBytes: zBytes().default(64 * 1024 ** 2),
    clockSkew: zDuration().default(300_000),
    dockerSocket: z.string().default('/var/run/docker.sock'),
    health: healthSchema.default(healthSchema.parse({})),
    reload: reloadSchema.default(reloadSchema.parse({})),
  })
  .strict();

/** A JSON array in GPULSE_MODELS (compose files and DaemonSets set variables, not YAML lists). */
const zJsonList = z.unknown().transform((v, ctx) => {
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v) as unknown;
  } catch (err) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a JSON array of models: ${(err as Error).message}`,
    });
    return z.NEVER;
  }
});

/** The `models:` section: a list of models, unique by name and by directory. */
export const modelsConfigSchema = setting(
  zJsonList
    .pipe(z.array(modelConfigSchema))
    .default([])
    .superRefine((list, ctx) => {
      const names = new Set<string>();
      const dirs = new Set<string>();
      list.forEach((m, i) => {
        if (names.has(m.name))
          ctx.addIssue({
            code: 'custom',
            path: [i, 'name'],
            message: `model ${m.name} is listed twice`,
          });
        if (dirs.has(m.dir))
          ctx.addIssue({
            code: 'custom',
            path: [i, 'dir'],
            message: `directory ${m.dir} is used by two models`,
          });
        names.add(m.name);
        dirs.add(m.dir);
      });
    }),
  {
    env: 'GPULSE_MODELS',
    valueName: 'JSON',
    description:
      'models kept up to date, as a JSON array of `models:` entries (see edge/models/README.md)',
  },
);

/** One configured model, parsed. */
export type ModelConfig = z.infer<typeof modelConfigSchema>;

/** Health settings from a parsed model config. */
export function healthSettings(c: ModelConfig['health']): HealthSettings {
  return {
    command: c.command,
    commandTimeoutMs: c.commandTimeout,
    url: c.url,
    urlTimeoutMs: c.urlTimeout,
    probeIntervalMs: c.probeInterval,
    goldenCommand: c.goldenCommand,
    goldenTimeoutMs: c.goldenTimeout,
    container: c.container,
    trialWindowMs: c.trialWindow,
    maxTrialStarts: c.maxTrialStarts,
    xid: c.xid,
  };
}

/** Reload settings from a parsed model config. */
export function reloadSettings(c: ModelConfig['reload']): ReloadSettings {
  return {
    container: c.container,
    signal: c.signal,
    url: c.url,
    method: c.method,
    timeoutMs: c.timeout,
  };
}

/** Fetch settings from a parsed model config. */
export function fetchSettings(c: ModelConfig): FetchSettings {
  return {
    ...DEFAULT_FETCH,
    parallel: c.parallel,
    transport: c.transport,
    stallTimeoutMs: c.stallTimeout,
    requestTimeoutMs: c.requestTimeout,
    retries: c.retries,
  };
}
