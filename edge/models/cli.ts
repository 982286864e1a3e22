import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import type Docker from 'dockerode';
import { loadDockerode, loadPinoPretty } from '../../agent/lazy-require.js';
import { pino, type Logger } from 'pino';
import { systemClock } from '../../agent/clock.js';
import { parseDuration } from '../../agent/duration.js';
import { EventLog } from '../../agent/events.js';
import { splitCommand } from './config.js';
import { DEFAULT_FETCH } from './fetcher.js';
import { DEFAULT_CHUNKING, validateChunking, type ChunkingParams } from './gear-cdc.js';
import { DEFAULT_HEALTH } from './health.js';
import { LockedError } from './lock.js';
import type { ManifestHealth } from './manifest.js';
import { publishModel } from './publish.js';
import { DEFAULT_RELOAD, type ReloadSettings } from './reload.js';
import { generateKeyPair, readTrustedKeys } from './signing.js';
import { formatStatus, readModelStatus } from './status.js';
import { pauseHookFromEnv } from './test-hooks.js';
import { applyModelUpdate, fmtBytes, type ApplyOutcome } from './updater.js';

/** Exit codes of `gpulse model apply`. */
export const APPLY_EXIT_CODES: Readonly<Record<ApplyOutcome | 'locked', number>> = {
  committed: 0,
  up_to_date: 0,
  failed: 1,
  refused: 1,
  rolled_back: 3,
  locked: 4,
};

/** Where the model commands write and how they end. */
export interface ModelCliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  readonly setExitCode: (code: number) => void;
}

const defaultIo: ModelCliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
  setExitCode: (code) => {
    process.exitCode = code;
  },
};

function cliLogger(level: string): Logger {
  // stdout carries --json results, so logs go to stderr.
  if (process.stderr.isTTY)
    return pino(
      { level },
      loadPinoPretty()({
        destination: 2,
        colorize: true,
        translateTime: 'SYS:HH:MM:ss',
        ignore: 'pid,hostname',
      }),
    );
  return pino({ level }, pino.destination(2));
}

function duration(name: string) {
  return (value: string): number => {
    const ms = parseDuration(value);
    if (ms === undefined)
      throw new Error(
        `${name}: expected a duration like "30s", "10m" or "90d", got ${JSON.stringify(value)}`,
      );
    return ms;
  };
}

function int(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`${name}: expected an integer ≥ ${min}, got ${JSON.stringify(value)}`);
    return n;
  };
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function parseReloadSignal(text: string | undefined): ReloadSettings['signal'] {
  if (!text) return undefined;
  const i = text.indexOf(':');
  if (i <= 0)
    throw new Error(
      `--reload-signal: expected SIGNAL:PIDFILE such as SIGHUP:/run/server.pid, got ${text}`,
    );
  const signal = text.slice(0, i).toUpperCase();
  if (!['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGTERM', 'SIGINT'].includes(signal))
    throw new Error(
      `--reload-signal: ${signal} is not one of SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT`,
    );
  return { signal: signal as NodeJS.Signals, pidFile: text.slice(i + 1) };
}

/** Adds `gpulse model keygen|publish|apply|status`. */
export function registerModelCommands(program: Command, io: ModelCliIo = defaultIo): void {
  // `model publish --version V` must reach the subcommand, not print gpulse's own version:
  // root options are then only recognised before the subcommand name.
  program.enablePositionalOptions();
  const model = program
    .command('model')
    .description('signed delta model updates: keys, publishing, applying with rollback, status');

  model
    .command('keygen')
    .description(
      'write an ed25519 signing key pair: DIR/model-signing.key (0600) and DIR/model-signing.pub',
    )
    .requiredOption('--out <DIR>', 'directory for the key pair (never overwritten)')
    .action(async (o: { out: string }) => {
      try {
        const r = await generateKeyPair(o.out);
        io.stdout(
          `private key ${r.privatePath} (keep it off devices)\npublic key  ${r.publicPath} (copy to devices, pass with --trust)\nkey id      ${r.keyid}\n`,
        );
      } catch (err) {
        io.stderr(
          `gpulse model keygen: ${(err as Error).message}${(err as NodeJS.ErrnoException).code === 'EEXIST' ? ' (a key pair is already there; use another --out)' : ''}\n`,
        );
        io.setExitCode(1);
      }
    });

  model
    .command('publish')
    .description(
      'chunk a model directory into a content-addressed store and write a signed manifest',
    )
    .requiredOption('--name <NAME>', 'model name')
    .requiredOption('--version <V>', 'version (a directory name on devices)')
    .requiredOption(
      '--release <N>',
      'release number, higher than every earlier one',
      int('--release', 1),
    )
    .requiredOption('--from <MODEL_DIR>', 'directory with the model files')
    .requiredOption('--store <STORE_DIR>', 'store directory (serve it with any static HTTP server)')
    .requiredOption('--key <PRIVATE_KEY>', 'model-signing.key from gpulse model keygen')
    .option(
      '--expires <DURATION>',
      'validity of the manifest',
      duration('--expires'),
      180 * 86_400_000,
    )
    .option(
      '--trial-seconds <N>',
      'minimum trial window devices must watch',
      int('--trial-seconds', 0),
    )
    .option('--golden-input <PATH>', 'golden input file (path inside the model)')
    .option(
      '--golden-expected <PATH>',
      'expected output for the golden input (path inside the model)',
    )
    .addOption(
      new Option('--golden-compare <HOW>', 'compare outputs byte for byte or as float32')
        .choices(['exact', 'float32'])
        .default('exact'),
    )
    .option('--golden-tolerance <X>', 'absolute tolerance for float32 comparison', '0')
    .option('--drift-reference <FILE>', 'drift reference profile (JSON) shipped with this version')
    .option(
      '--chunk-avg <BYTES>',
      'average chunk size (power of two; min = avg/4, max = avg*4)',
      int('--chunk-avg', 256),
    )
    .option('--no-blobs', 'do not write whole-file blobs (devices then fetch chunk objects only)')
    .option('--json', 'print the result as JSON')
    .action(async (o: Record<string, unknown>) => {
      try {
        let health: ManifestHealth | undefined;
        if (o.goldenInput || o.goldenExpected) {
          if (!o.goldenInput || !o.goldenExpected)
            throw new Error('--golden-input and --golden-expected go together');
          health = {
            golden: {
              input: o.goldenInput as string,
              expected: o.goldenExpected as string,
              compare: o.goldenCompare as 'exact' | 'float32',
              abs_tolerance: Number(o.goldenTolerance),
            },
          };
        }
        if (o.trialSeconds !== undefined)
          health = { ...(health ?? {}), trial_seconds: o.trialSeconds as number };
        let chunking: ChunkingParams | undefined;
        if (o.chunkAvg !== undefined) {
          const avg = o.chunkAvg as number;
          chunking = { ...DEFAULT_CHUNKING, min: Math.max(64, avg / 4), avg, max: avg * 4 };
          validateChunking(chunking);
        }
        const drift = o.driftReference
          ? (JSON.parse(await readFile(o.driftReference as string, 'utf8')) as unknown)
          : undefined;
        const r = await publishModel({
          name: o.name as string,
          version: o.version as string,
          release: o.release as number,
          from: o.from as string,
          store: o.store as string,
          keyPath: o.key as string,
          expiresInMs: o.expires as number,
          health,
          driftReference: drift,
          chunking,
          blobs: o.blobs as boolean,
        });
        if (o.json) io.stdout(`${JSON.stringify(r)}\n`);
        else
          io.stdout(
            `published ${o.name as string} ${o.version as string} (release ${String(o.release)}): ${r.files} files, ${fmtBytes(r.bytes)}, ${r.chunks} chunks, ${r.newChunks} new (${fmtBytes(r.newChunkBytes)}), chunk index ${fmtBytes(r.newIndexBytes)} new\nmanifest ${r.manifestPath}\n`,
          );
      } catch (err) {
        io.stderr(`gpulse model publish: ${(err as Error).message}\n`);
        io.setExitCode(1);
      }
    });

  model
    .command('apply')
    .description(
      'update MODEL_ROOT to the latest signed version: delta download, verify, activate, health check, commit or roll back',
    )
    .requiredOption('--name <NAME>', 'model name')
    .requiredOption('--source <URL>', "model's folder in the store (or its manifest URL)")
    .requiredOption(
      '--dir <MODEL_ROOT>',
      'model root on this device (current/, previous/, versions/)',
    )
    .requiredOption('--trust <PUBLIC_KEY>', 'trusted model-signing.pub (repeatable)', collect)
    .option('--health-cmd <CMD>', 'command run after activation; exit 0 = healthy (no shell)')
    .option('--health-url <URL>', 'URL that must answer 2xx after activation and during the trial')
    .option(
      '--health-container <NAME>',
      'serving container watched during the trial (restart, OOM, death)',
    )
    .option(
      '--golden-cmd <CMD>',
      "runner for the manifest's golden-input check (input file appended)",
    )
    .option(
      '--trial <DURATION>',
      'trial window after activation (default 0s, or the manifest minimum)',
      duration('--trial'),
      0,
    )
    .option(
      '--max-trial-starts <N>',
      'interrupted trials before a rollback',
      int('--max-trial-starts', 1),
      DEFAULT_HEALTH.maxTrialStarts,
    )
    .option('--reload-container <NAME>', 'container to restart after activation (Docker API)')
    .option(
      '--reload-signal <SIGNAL:PIDFILE>',
      'signal to send after activation, e.g. SIGHUP:/run/server.pid',
    )
    .option('--reload-url <URL>', 'URL to POST after activation')
    .option('--docker-socket <PATH>', 'Docker API socket', '/var/run/docker.sock')
    .option('--parallel <N>', 'requests in flight', int('--parallel', 1), DEFAULT_FETCH.parallel)
    .addOption(
      new Option(
        '--transport <HOW>',
        'byte ranges of blobs (falls back to chunks) or chunk objects',
      )
        .choices(['ranges', 'chunks'])
        .default('ranges'),
    )
    .option(
      '--stall-timeout <DURATION>',
      'abort a response silent for this long',
      duration('--stall-timeout'),
      DEFAULT_FETCH.stallTimeoutMs,
    )
    .option('--retries <N>', 'retries per request', int('--retries', 0), DEFAULT_FETCH.retries)
    .option(
      '--max-bytes <N>',
      'refuse models larger than this many bytes',
      int('--max-bytes', 1),
      64 * 1024 ** 3,
    )
    .option('--log-level <LEVEL>', 'log level on stderr', 'info')
    .option('--json', 'print the result as JSON on stdout')
    .action(async (o: Record<string, unknown>) => {
      const log = cliLogger(o.logLevel as string);
      try {
        const socketPath = o.dockerSocket as string;
        let client: Docker | undefined;
        const events = new EventLog({
          clock: systemClock,
          log: log.child({ component: 'events' }),
        });
        const result = await applyModelUpdate(
          {
            name: o.name as string,
            source: o.source as string,
            dir: o.dir as string,
            trust: await readTrustedKeys(o.trust as string[]),
            health: {
              ...DEFAULT_HEALTH,
              command: o.healthCmd ? splitCommand(o.healthCmd as string) : undefined,
              url: o.healthUrl as string | undefined,
              container: o.healthContainer as string | undefined,
              goldenCommand: o.goldenCmd ? splitCommand(o.goldenCmd as string) : undefined,
              trialWindowMs: o.trial as number,
              maxTrialStarts: o.maxTrialStarts as number,
              probeIntervalMs: Math.min(
                DEFAULT_HEALTH.probeIntervalMs,
                Math.max(1000, (o.trial as number) / 5),
              ),
            },
            reload: {
              ...DEFAULT_RELOAD,
              container: o.reloadContainer as string | undefined,
              signal: parseReloadSignal(o.reloadSignal as string | undefined),
              url: o.reloadUrl as string | undefined,
            },
            fetch: {
              ...DEFAULT_FETCH,
              parallel: o.parallel as number,
              transport: o.transport as 'ranges' | 'chunks',
              stallTimeoutMs: o.stallTimeout as number,
              retries: o.retries as number,
            },
            clockSkewMs: 300_000,
            maxBytes: o.maxBytes as number,
            maxManifestBytes: 64 * 1024 ** 2,
          },
          {
            log,
            events,
            docker: () => (client ??= new (loadDockerode())({ socketPath })),
            pause: pauseHookFromEnv(io.env),
          },
        );
        if (o.json) io.stdout(`${JSON.stringify(result)}\n`);
        else io.stdout(`${result.outcome}: ${result.message}\n`);
        io.setExitCode(APPLY_EXIT_CODES[result.outcome]);
      } catch (err) {
        io.stderr(`gpulse model apply: ${(err as Error).message}\n`);
        io.setExitCode(err instanceof LockedError ? APPLY_EXIT_CODES.locked : 1);
      } finally {
        log.flush();
      }
    });

  model
    .command('status')
    .description('show the installed, previous and in-progress versions of a model root')
    .requiredOption('--dir <MODEL_ROOT>', 'model root')
    .option('--json', 'print JSON')
    .action(async (o: { dir: string; json?: boolean }) => {
      try {
        const s = await readModelStatus(o.dir);
        io.stdout(o.json ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
        if (!s.state) io.setExitCode(1);
      } catch (err) {
        io.stderr(`gpulse model status: ${(err as Error).message}\n`);
        io.setExitCode(1);
      }
    });
}
