import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type Docker from 'dockerode';
import { loadDockerode, loadPinoPretty } from '../../agent/process/lazy-require.js';
import { pino, type Logger } from 'pino';
import { systemClock } from '../../agent/core/clock.js';
import { ProgressLine } from '../../agent/progress-line.js';
import { durationOption, intArg, numberArg, sizeOption } from '../../agent/cli-options.js';
import { EventLog } from '../../agent/core/events.js';
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
import {
  applyModelUpdate,
  downloadLine,
  fmtBytes,
  type ApplyOutcome,
  type ApplyResult,
  type UpdateProgress,
} from './updater.js';

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

function cliLogger(level: string, progress: ProgressLine): Logger {
  // stdout carries results and --json, so logs go to stderr.
  if (process.stderr.isTTY) {
    // A log line first erases the progress line, which then comes back under it.
    const aroundProgress = new Writable({
      write(chunk: Buffer, _encoding, done) {
        progress.clear();
        process.stderr.write(chunk);
        progress.redraw();
        done();
      },
    });
    return pino(
      { level },
      loadPinoPretty()({
        destination: aroundProgress,
        colorize: true,
        translateTime: 'SYS:HH:MM:ss',
        ignore: 'pid,hostname',
      }),
    );
  }
  return pino({ level }, pino.destination(2));
}

const STATE_WORDS: Readonly<Record<string, string>> = {
  downloading: 'downloading',
  assembled: 'verifying',
  verified: 'activating',
  activating: 'activating',
  activated: 'checking health',
  trial: 'on trial',
  rolling_back: 'rolling back',
};

/** The progress line of `model apply`: the step, and while downloading, how far. */
export function applyProgressText(name: string, p: UpdateProgress): string {
  const step = STATE_WORDS[p.state] ?? p.state.replace(/_/g, ' ');
  const detail = p.state === 'downloading' ? `: ${downloadLine(p)}` : '';
  return `${name} ${p.version ?? ''}: ${step}${detail}`;
}

/** The one line `model apply` ends with on stdout (without --json). */
export function applySummary(result: ApplyResult, elapsedMs: number): string {
  const seconds = `${(elapsedMs / 1000).toFixed(1)} s`;
  if (result.outcome === 'committed' && result.stats) {
    const s = result.stats;
    return `committed ${result.model} ${result.version ?? ''} (release ${String(result.release)}): downloaded ${fmtBytes(s.bytesDownloaded)}, reused ${fmtBytes(s.bytesReused)} of ${fmtBytes(s.bytesTotal)}, in ${seconds}`;
  }
  const word = result.outcome.replace(/_/g, ' ');
  return `${word}: ${result.model} ${result.message}${result.reason ? ` [${result.reason}]` : ''}`;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const RELOAD_SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGTERM', 'SIGINT'];

/** `--reload-signal SIGNAL:PIDFILE`. */
function parseReloadSignal(text: string): NonNullable<ReloadSettings['signal']> {
  const i = text.indexOf(':');
  const signal = text.slice(0, Math.max(0, i)).toUpperCase();
  if (i <= 0 || i === text.length - 1 || !RELOAD_SIGNALS.includes(signal))
    throw new InvalidArgumentError(
      `Expected SIGNAL:PIDFILE such as SIGHUP:/run/server.pid, SIGNAL one of ${RELOAD_SIGNALS.join(', ')}.`,
    );
  return { signal: signal as NodeJS.Signals, pidFile: text.slice(i + 1) };
}

/** A command line for --health-cmd and --golden-cmd, split without a shell. */
function parseCommandArg(text: string): string[] {
  try {
    return splitCommand(text);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message} (it runs without a shell).`);
  }
}

/** An http:// or https:// URL. */
function parseUrlArg(text: string): string {
  if (/^https?:\/\//.test(text) && URL.canParse(text)) return text;
  throw new InvalidArgumentError('Expected an http:// or https:// URL.');
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
      intArg(1, Number.MAX_SAFE_INTEGER),
    )
    .requiredOption('--from <MODEL_DIR>', 'directory with the model files')
    .requiredOption('--store <STORE_DIR>', 'store directory (serve it with any static HTTP server)')
    .requiredOption('--key <PRIVATE_KEY>', 'model-signing.key from gpulse model keygen')
    .addOption(
      durationOption('--expires <DURATION>', 'validity of the manifest', 180 * 86_400_000, {
        min: 60_000,
      }),
    )
    .option(
      '--trial-seconds <N>',
      'minimum trial window devices must watch, in seconds',
      intArg(0, 365 * 86_400),
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
    .option('--golden-tolerance <X>', 'absolute tolerance for float32 comparison', numberArg(0), 0)
    .option('--drift-reference <FILE>', 'drift reference profile (JSON) shipped with this version')
    .option(
      '--chunk-avg <BYTES>',
      'average chunk size (power of two; min = avg/4, max = avg*4)',
      intArg(256, 64 * 1024 ** 2),
    )
    .option('--no-blobs', 'do not write whole-file blobs (devices then fetch chunk objects only)')
    .option('--json', 'print the result as JSON')
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      if (!o.goldenInput !== !o.goldenExpected)
        cmd.error(
          "error: options '--golden-input <PATH>' and '--golden-expected <PATH>' go together: give both or neither.",
          { exitCode: 2, code: 'gpulse.invalidFlags' },
        );
      try {
        let health: ManifestHealth | undefined;
        if (o.goldenInput || o.goldenExpected) {
          health = {
            golden: {
              input: o.goldenInput as string,
              expected: o.goldenExpected as string,
              compare: o.goldenCompare as 'exact' | 'float32',
              abs_tolerance: o.goldenTolerance as number,
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
    .requiredOption(
      '--source <URL>',
      "model's folder in the store (or its manifest URL)",
      parseUrlArg,
    )
    .requiredOption(
      '--dir <MODEL_ROOT>',
      'model root on this device (current/, previous/, versions/)',
    )
    .requiredOption('--trust <PUBLIC_KEY>', 'trusted model-signing.pub (repeatable)', collect)
    .option(
      '--health-cmd <CMD>',
      'command run after activation; exit 0 = healthy (no shell)',
      parseCommandArg,
    )
    .option(
      '--health-url <URL>',
      'URL that must answer 2xx after activation and during the trial',
      parseUrlArg,
    )
    .option(
      '--health-container <NAME>',
      'serving container watched during the trial (restart, OOM, death)',
    )
    .option(
      '--golden-cmd <CMD>',
      "runner for the manifest's golden-input check (input file appended)",
      parseCommandArg,
    )
    .addOption(
      durationOption(
        '--trial <DURATION>',
        'trial window after activation (at least the manifest minimum)',
        0,
      ),
    )
    .option(
      '--max-trial-starts <N>',
      'interrupted trials before a rollback',
      intArg(1, 100),
      DEFAULT_HEALTH.maxTrialStarts,
    )
    .option('--reload-container <NAME>', 'container to restart after activation (Docker API)')
    .option(
      '--reload-signal <SIGNAL:PIDFILE>',
      'signal to send after activation, e.g. SIGHUP:/run/server.pid',
      parseReloadSignal,
    )
    .option('--reload-url <URL>', 'URL to POST after activation', parseUrlArg)
    .option('--docker-socket <PATH>', 'Docker API socket', '/var/run/docker.sock')
    .option('--parallel <N>', 'requests in flight', intArg(1, 32), DEFAULT_FETCH.parallel)
    .addOption(
      new Option(
        '--transport <HOW>',
        'byte ranges of blobs (falls back to chunks) or chunk objects',
      )
        .choices(['ranges', 'chunks'])
        .default('ranges'),
    )
    .addOption(
      durationOption(
        '--stall-timeout <DURATION>',
        'abort a response silent for this long',
        DEFAULT_FETCH.stallTimeoutMs,
        { min: 100 },
      ),
    )
    .option('--retries <N>', 'retries per request', intArg(0, 100), DEFAULT_FETCH.retries)
    .addOption(sizeOption('--max-bytes <SIZE>', 'refuse models larger than this', 64 * 1024 ** 3))
    .addOption(
      new Option(
        '--log-level <LEVEL>',
        'log level on stderr (default: warn on a terminal, which shows one progress line instead; info otherwise)',
      ).choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
    )
    .option('--json', 'print the result as JSON on stdout')
    .action(async (o: Record<string, unknown>) => {
      const started = Date.now();
      const progress = new ProgressLine(process.stderr);
      const level = (o.logLevel as string | undefined) ?? (progress.active ? 'warn' : 'info');
      const log = cliLogger(level, progress);
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
              command: o.healthCmd as string[] | undefined,
              url: o.healthUrl as string | undefined,
              container: o.healthContainer as string | undefined,
              goldenCommand: o.goldenCmd as string[] | undefined,
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
              signal: o.reloadSignal as ReloadSettings['signal'],
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
            // A new step shows at once; download progress at most ten times a second.
            onProgress: (p) => progress.update(applyProgressText(o.name as string, p)),
            onState: (_state, u) =>
              u &&
              progress.update(
                `${o.name as string} ${u.version}: ${STATE_WORDS[u.state] ?? u.state}`,
                true,
              ),
          },
        );
        progress.finish();
        if (o.json) io.stdout(`${JSON.stringify(result)}\n`);
        else io.stdout(`${applySummary(result, Date.now() - started)}\n`);
        io.setExitCode(APPLY_EXIT_CODES[result.outcome]);
      } catch (err) {
        progress.finish();
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
