import { parseScenario, scenarioPhase } from './scenarios.js';

/** The process's outside world, injected so tests run a simulated tool in-process. */
export interface SimulatedToolIo {
  /** Writes to stdout; each call is one whole block (or line), flushed as it is. */
  write(text: string): void;
  /** Writes to stderr (the simulator's own configuration errors, the tool's error texts). */
  writeError(text: string): void;
  /** Wall-clock time, epoch ms. */
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Ends loops and hangs (exit 0), as SIGTERM ends the real process. */
  readonly signal?: AbortSignal;
}

/** Environment as `process.env` gives it. */
export type SimEnv = Readonly<Record<string, string | undefined>>;

/**
 * An integer GPULSE_SIM_* setting (truncated), `fallback` when unset or blank; a value that is
 * not a number throws what `error` makes of the message (each tool reports it its own way).
 */
export function intEnv(
  env: SimEnv,
  name: string,
  fallback: number,
  error: (message: string) => Error = (message) => new Error(message),
): number {
  const text = env[name];
  if (text === undefined || text.trim() === '') return fallback;
  const n = Number(text);
  if (!Number.isFinite(n)) throw error(`${name}=${text}: not a number`);
  return Math.trunc(n);
}

// setTimeout's longest delay; longer waits are slept in pieces.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Sleeps until the wall clock reaches `dueMs`, or until the run is aborted. */
export async function sleepUntil(io: SimulatedToolIo, dueMs: number): Promise<void> {
  for (;;) {
    if (io.signal?.aborted) return;
    const wait = dueMs - io.now();
    if (wait <= 0) return;
    await io.sleep(Math.min(wait, MAX_TIMER_MS));
  }
}

/** How a simulated tool's process answers signals. */
export type SignalBehaviour =
  /** `hang:...,sigterm=ignore` models a process stuck in the kernel, which SIGTERM cannot end. */
  | 'hang-scenario'
  /** dcgmi's main() exits with 128 + the signal number on SIGTERM/SIGHUP/SIGINT/SIGQUIT. */
  | 'exit-128-plus-signal';

/**
 * Runs a simulated tool as this process: real stdout/stderr and clock, SIGPIPE-like exit when
 * the reader goes away, the tool's signal behaviour, and its exit status.
 */
export async function runAsProcess(
  run: (argv: string[], env: NodeJS.ProcessEnv, io: SimulatedToolIo) => Promise<number>,
  signals: SignalBehaviour,
): Promise<void> {
  // A reader that goes away (head, a killed agent) must end us quietly, as SIGPIPE ends the real one.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    process.exit(err.code === 'EPIPE' ? 0 : 1);
  });
  if (signals === 'hang-scenario') ignoreSigtermWhileHung();
  else {
    for (const [signal, number] of [
      ['SIGTERM', 15],
      ['SIGHUP', 1],
      ['SIGINT', 2],
      ['SIGQUIT', 3],
    ] as const) {
      process.on(signal, () => process.exit(128 + number));
    }
  }
  process.exitCode = await run(process.argv.slice(2), process.env, {
    write: (text) => {
      process.stdout.write(text);
    },
    writeError: (text) => {
      process.stderr.write(text);
    },
    now: () => Date.now(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  });
}

// Outside the hang SIGTERM behaves as the default (death by signal).
function ignoreSigtermWhileHung(): void {
  try {
    const scenario = parseScenario(process.env.GPULSE_SIM_SCENARIO);
    if (scenario.name !== 'hang' || !scenario.ignoreSigterm) return;
    const startMs = Number(process.env.GPULSE_SIM_START ?? Date.now());
    process.on('SIGTERM', () => {
      if (scenarioPhase(scenario, Date.now() - startMs).state === 'active') return;
      process.removeAllListeners('SIGTERM');
      process.kill(process.pid, 'SIGTERM');
    });
  } catch {
    // A malformed scenario is reported by the tool's own run function.
  }
}
