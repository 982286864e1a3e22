import { NO_SCENARIO, parseScenario } from '../../simulation/scenarios.js';
import { parseProcessList } from '../../simulation/world.js';
import {
  captureSource,
  defaultJetsonProcesses,
  ProfileSource,
  requireJetson,
  type TegrastatsSource,
} from './source.js';
import {
  intEnv,
  sleepUntil,
  type SimEnv,
  type SimulatedToolIo,
} from '../../simulation/tool-process.js';

/** The process's outside world, injected so tests run the simulator in-process. */
export type TegrastatsIo = SimulatedToolIo;

/** Environment as `process.env` gives it. */
export type { SimEnv };

/** Exit status for the simulator's own configuration errors. */
export const EXIT_CONFIG = 255;
/** Default tegrastats interval, ms (its man page: 1000). */
export const DEFAULT_INTERVAL_MS = 1000;
/** Profile when GPULSE_SIM_PROFILE names none. */
export const DEFAULT_JETSON_PROFILE = 'jetson-orin';

/** Usage text of `--help` (the options the simulator accepts; tegrastats has more). */
export const USAGE = `Usage: tegrastats [-option]
Options:
    --help                  : print this help screen
    --interval <millisec>   : sample the information in <milliseconds>
`;

/** A command line the simulator cannot serve: message for stderr, exit 255. */
class UsageError extends Error {}
const usageError = (message: string): Error => new UsageError(message);

/** What one invocation asks for. */
export interface TegrastatsInvocation {
  readonly help: boolean;
  readonly intervalMs: number;
}

/** Parses tegrastats' command line (`--interval N`, `--interval=N`, `--help`). */
export function parseTegrastatsArgs(argv: readonly string[]): TegrastatsInvocation {
  let intervalMs = DEFAULT_INTERVAL_MS;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (arg === '--interval' || arg.startsWith('--interval=')) {
      const text = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      const ms = Number(text);
      if (text === undefined || !Number.isInteger(ms) || ms <= 0) {
        throw new UsageError(`--interval needs a positive number of milliseconds, got ${text}`);
      }
      intervalMs = ms;
      continue;
    }
    // --logfile, --start/--stop (daemon mode), --load_cfg ... write files or change clocks:
    // nothing the agent uses, so the simulator refuses them rather than pretend.
    throw new UsageError(`option ${arg} is not simulated (supported: --interval, --help)`);
  }
  return { help, intervalMs };
}

/** Builds the line source from GPULSE_SIM_*; throws on malformed settings. */
export function tegrastatsSource(env: SimEnv, nowMs: number): TegrastatsSource {
  const capture = env.GPULSE_SIM_CAPTURE;
  if (capture !== undefined && capture !== '') return captureSource(capture);
  const device = requireJetson(env.GPULSE_SIM_PROFILE || DEFAULT_JETSON_PROFILE);
  const named = env.GPULSE_SIM_PROCESSES;
  return new ProfileSource(device, {
    processes: named === undefined ? defaultJetsonProcesses(device) : parseProcessList(named),
    seed: intEnv(env, 'GPULSE_SIM_SEED', 1, usageError),
    startMs: intEnv(env, 'GPULSE_SIM_START', nowMs, usageError),
    scenario: env.GPULSE_SIM_SCENARIO ? parseScenario(env.GPULSE_SIM_SCENARIO) : NO_SCENARIO,
    processStartMs: nowMs,
  });
}

/** Runs one tegrastats command line: a line per interval until stopped; resolves with the exit status. */
export async function runTegrastats(
  argv: readonly string[],
  env: SimEnv,
  io: TegrastatsIo,
): Promise<number> {
  let invocation: TegrastatsInvocation;
  let source: TegrastatsSource;
  try {
    invocation = parseTegrastatsArgs(argv);
    if (invocation.help) {
      io.write(USAGE);
      return 0;
    }
    source = tegrastatsSource(env, io.now());
  } catch (err) {
    io.writeError(`tegrastats simulator: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_CONFIG;
  }
  const startMs = io.now();
  // One line per interval, the first after one interval (as the CPU loads need two samples).
  for (let k = 0, due = startMs + invocation.intervalMs; ; due += invocation.intervalMs) {
    await sleepUntil(io, due);
    if (io.signal?.aborted) return 0;
    const out = source.line(k, io.now());
    if (out.kind === 'hang') continue;
    io.write(`${out.text}\n`);
    k++;
  }
}
