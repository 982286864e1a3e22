import { closeSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import { z } from 'zod';
import { loadCollectorSchemas, type CollectorSchemas } from '../collectors/index.js';
import { metricsConfigSchema } from '../exporters/prometheus/config.js';
import { mqttConfigSchema } from '../edge/config.js';
import { gatewayConfigSchema } from '../edge/gateway/config.js';
import { driftConfigSchema } from './components/drift/config.js';
import { modelsConfigSchema } from '../edge/models/config.js';
import { httpConfigSchema } from './http/config.js';
import { setting, type SettingBinding, zPath } from './config-schema.js';
import { describeIssue, didYouMean, Provenance } from './config-messages.js';
import { ConfigError, errorMessage } from './core/errors.js';
import { applyEdgePreset, zPreset } from './preset.js';
import { settings } from './settings.generated.js';

const LISTEN_RE = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/;

/** Parsed listen address. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses "HOST:PORT", "[IPv6]:PORT" or ":PORT", the Go exporters' form for every interface
 * (node_exporter, dcgm-exporter), which becomes 0.0.0.0 like the default.
 */
export function parseListen(text: string): ListenAddress | undefined {
  const m = LISTEN_RE.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

const LISTEN_FORMS =
  'expected HOST:PORT such as "0.0.0.0:9489", "127.0.0.1:9489", "[::1]:9489" or ":9489" (every interface)';

const zListen = z.string({ error: LISTEN_FORMS }).transform((value, ctx) => {
  const parsed = parseListen(value);
  if (!parsed) {
    ctx.addIssue({
      code: 'custom',
      message: `${LISTEN_FORMS}, got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return parsed;
});

/** The `collectors:` section: each collector owns the key of its name, defaults where left out. */
export function collectorsSchemaOf<S extends Record<string, z.ZodType>>(schemas: S) {
  return z
    .object(
      Object.fromEntries(
        Object.entries(schemas).map(([name, schema]) => [name, schema.default(schema.parse({}))]),
      ) as { [K in keyof S]: z.ZodDefault<S[K]> },
    )
    .strict();
}

const collectorsSchema = collectorsSchemaOf<CollectorSchemas>(await loadCollectorSchemas());

/** The whole agent configuration; each collector owns its section. */
export const agentConfigSchema = z
  .object({
    /** Defaults for a kind of host (agent/preset.ts); explicit settings always win. */
    preset: setting(zPreset.default('default'), {
      env: 'GPULSE_PRESET',
      flag: 'preset',
      description:
        'edge: longer intervals, fewer child processes, MQTT spool sized from free disk (explicit settings win)',
    }),
    listen: setting(zListen.default({ host: '0.0.0.0', port: 9489 }), {
      env: 'GPULSE_LISTEN',
      flag: 'listen',
      valueName: 'HOST:PORT',
      description: 'address of /metrics (default 0.0.0.0:9489)',
    }),
    /** TLS, authentication and bounds of the HTTP server (agent/http/config.ts). */
    http: httpConfigSchema.default(httpConfigSchema.parse({})),
    log: z
      .object({
        level: setting(
          z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
          {
            env: 'GPULSE_LOG_LEVEL',
            flag: 'log-level',
            valueName: 'LEVEL',
            description: 'trace|debug|info|warn|error|fatal|silent (default info)',
          },
        ),
        format: setting(z.enum(['auto', 'json', 'pretty']).default('auto'), {
          env: 'GPULSE_LOG_FORMAT',
          flag: 'log-format',
          valueName: 'FORMAT',
          description: 'auto|json|pretty (auto: pretty on a terminal, JSON otherwise)',
        }),
      })
      .strict()
      .default({ level: 'info', format: 'auto' }),
    /** The host's /proc as the agent sees it: GPU drivers report host PIDs (`/host/proc` in a container). */
    procRoot: setting(zPath().default('/proc'), {
      env: 'GPULSE_PROC_ROOT',
      flag: 'proc-root',
      description:
        "the host's /proc, for GPU process attribution (default /proc; /host/proc in a container)",
    }),
    /** The host's cgroup mount (`/host/sys/fs/cgroup` in a container), for container stats. */
    cgroupRoot: setting(zPath().default('/sys/fs/cgroup'), {
      env: 'GPULSE_CGROUP_ROOT',
      description: "the host's cgroup mount, for container stats (default /sys/fs/cgroup)",
    }),
    collectors: collectorsSchema.default(collectorsSchema.parse({})),
    metrics: metricsConfigSchema.default(metricsConfigSchema.parse({})),
    mqtt: mqttConfigSchema.default(mqttConfigSchema.parse({})),
    gateway: gatewayConfigSchema.default(gatewayConfigSchema.parse({})),
    drift: driftConfigSchema.default(driftConfigSchema.parse({})),
    models: modelsConfigSchema,
  })
  .strict();

/** Validated agent configuration. */
export type AgentConfig = z.infer<typeof agentConfigSchema>;

/** Environment variables that belong to gpulse but are not settings (simulator, tests). */
const RESERVED_ENV_PREFIXES = ['GPULSE_SIM_', 'GPULSE_TEST_', 'GPULSE_CONFIG'];

type Raw = Record<string, unknown>;

function isRecord(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function setPath(target: Raw, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (!isRecord(next)) node[key] = {};
    node = node[key] as Raw;
  }
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}

function coerce(binding: SettingBinding, value: string): unknown {
  if (binding.list) {
    return value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  }
  return value;
}

/** Where the raw configuration comes from. */
export interface ConfigSources {
  /** Text of the YAML file and its name for messages. */
  readonly file?: { readonly name: string; readonly text: string };
  readonly env?: NodeJS.ProcessEnv;
  /** Flag values keyed by flag name (without dashes). */
  readonly flags?: Readonly<Record<string, string | undefined>>;
  /** Extra settings (e.g. those of subcommands) that env and flags may address. */
  readonly extraSettings?: readonly SettingBinding[];
}

/** Result of loading: the config plus warnings worth logging. */
export interface LoadedConfig {
  readonly config: AgentConfig;
  readonly warnings: readonly string[];
  /** What a preset decided from the host (logged at info). */
  readonly notes?: readonly string[];
  /**
   * Where each setting given explicitly came from (dotted path → file name, `GPULSE_*` or
   * `--flag`), for checks that treat a value someone chose differently from a default.
   */
  readonly explicit?: Readonly<Record<string, string>>;
}

/** Bounds of a configuration file (README, "Limits"). */
export const CONFIG_FILE_LIMITS = {
  /** A larger file is refused before it is parsed (a real one is a few KiB). */
  maxBytes: 1024 * 1024,
  /** YAML aliases a file may expand (a "billion laughs" file expands millions). */
  maxAliasCount: 100,
} as const;

/** Reads a YAML config file; throws ConfigError with the file name on any problem. */
export function readConfigFile(path: string): { name: string; text: string } {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    // Read at most one byte past the bound, whatever the file is (/dev/zero, a FIFO, a huge file).
    const max = CONFIG_FILE_LIMITS.maxBytes;
    const buffer = Buffer.alloc(max + 1);
    let length = 0;
    for (;;) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > max) {
        throw new ConfigError([
          `${path}: the config file is larger than ${max} bytes; is it the right file?`,
        ]);
      }
    }
    return { name: path, text: buffer.subarray(0, length).toString('utf8') };
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError([`${path}: cannot read the config file: ${errorMessage(err)}`]);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Parses the YAML text of a config file, adding what is wrong with it to `problems`. */
function parseYaml(file: { name: string; text: string }, problems: string[]): unknown {
  // Loaded only when there is a file: a device configured by environment keeps its heap free.
  const { parseDocument } = createRequire(import.meta.url)('yaml') as typeof Yaml;
  try {
    const doc = parseDocument(file.text, { uniqueKeys: true });
    // The first few say what is wrong; a broken file can have thousands (one per line).
    for (const e of doc.errors.slice(0, 5)) problems.push(`${file.name}: ${e.message}`);
    if (doc.errors.length > 5)
      problems.push(`${file.name}: ${doc.errors.length - 5} more YAML errors not shown`);
    if (doc.errors.length > 0) return {};
    return doc.toJS({ maxAliasCount: CONFIG_FILE_LIMITS.maxAliasCount });
  } catch (err) {
    // The yaml package throws (rather than reports) on alias bombs; a deep nesting overflows the stack.
    const why =
      err instanceof ReferenceError && /alias/i.test(err.message)
        ? 'its aliases (*name) expand into far more values than the file holds, as a YAML "billion laughs" bomb does; write the values out'
        : err instanceof RangeError
          ? 'it is nested too deeply to read'
          : `it is not valid YAML: ${errorMessage(err)}`;
    problems.push(`${file.name}: ${why}`);
    return {};
  }
}

function leafPaths(value: unknown, path: string[] = []): string[][] {
  if (!isRecord(value)) return path.length > 0 ? [path] : [];
  return Object.entries(value).flatMap(([k, v]) => leafPaths(v, [...path, k]));
}

/**
 * Builds the configuration: defaults, then the YAML file, then GPULSE_* variables, then flags.
 * Every problem is reported at once, each with its path and where the value came from.
 */
export function loadConfig(sources: ConfigSources = {}): LoadedConfig {
  const problems: string[] = [];
  const warnings: string[] = [];
  const provenance = new Provenance();
  const explicit: Record<string, string> = {};
  let raw: Raw = {};

  if (sources.file) {
    const parsed = parseYaml(sources.file, problems);
    if (parsed === null || parsed === undefined) raw = {};
    else if (isRecord(parsed)) raw = parsed;
    else problems.push(`${sources.file.name}: the top level must be a mapping of settings`);
    provenance.setTree(raw, sources.file.name);
    for (const p of leafPaths(raw)) explicit[p.join('.')] = sources.file.name;
  }

  const all = [...settings, ...(sources.extraSettings ?? [])];
  const env = sources.env ?? {};
  for (const binding of all) {
    const value = binding.env ? env[binding.env] : undefined;
    if (binding.env && value !== undefined && value !== '') {
      setPath(raw, binding.path, coerce(binding, value));
      provenance.set(binding.path, binding.env);
      explicit[binding.path.join('.')] = binding.env;
    }
  }
  const known = [...new Set(all.map((b) => b.env).filter((e): e is string => e !== undefined))];
  for (const name of Object.keys(env)) {
    if (!name.startsWith('GPULSE_') || known.includes(name)) continue;
    if (RESERVED_ENV_PREFIXES.some((p) => name.startsWith(p))) continue;
    const near = didYouMean(name, known);
    warnings.push(
      near === undefined
        ? `unknown environment variable ${name} ignored (every variable: docs/configuration.md)`
        : `unknown environment variable ${name} ignored: did you mean ${near}?`,
    );
  }
  for (const binding of all) {
    const value = binding.flag ? sources.flags?.[binding.flag] : undefined;
    if (binding.flag && value !== undefined) {
      setPath(raw, binding.path, coerce(binding, value));
      provenance.set(binding.path, `--${binding.flag}`);
      explicit[binding.path.join('.')] = `--${binding.flag}`;
    }
  }

  let notes: string[] = [];
  if (raw.preset === 'edge') {
    const before = new Set(leafPaths(raw).map((p) => p.join('.')));
    notes = applyEdgePreset(raw, { hasSection: (name) => name in agentConfigSchema.shape, env });
    for (const p of leafPaths(raw)) if (!before.has(p.join('.'))) provenance.set(p, 'preset edge');
  }
  const result = agentConfigSchema.safeParse(raw);
  if (!result.success) {
    const context = { raw, provenance, schema: agentConfigSchema };
    for (const issue of result.error.issues) problems.push(...describeIssue(issue, context));
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  return { config: result.data, warnings, notes, explicit };
}
