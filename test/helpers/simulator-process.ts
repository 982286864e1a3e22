import { spawn, type ChildProcess } from 'node:child_process';

/** How a simulator process ended: its exit code, or the signal that killed it. */
export interface Exit {
  code: number | null;
  signal: string | null;
}

/**
 * Starts a built simulator entry (dist/…/simulator/*.js) under node, as the agent runs it, with
 * GPULSE_SIM_START set to now unless `env` names another.
 */
export function startSimulator(
  entry: string,
  args: readonly string[],
  env: Record<string, string> = {},
): ChildProcess {
  return spawn(process.execPath, [entry, ...args], {
    env: { ...process.env, GPULSE_SIM_START: String(Date.now()), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Resolves when the process exits, with its code and signal. */
export function exited(child: ChildProcess): Promise<Exit> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** The stdout a process has printed so far, and when (Date.now()) each chunk of it arrived. */
export interface Recorded {
  readonly text: string;
  readonly arrivals: readonly number[];
}

/** Records a process's stdout as it comes, chunk by chunk, with each chunk's arrival time. */
export function recordStdout(child: ChildProcess): Recorded {
  const recorded = { text: '', arrivals: [] as number[] };
  child.stdout?.on('data', (chunk: Buffer) => {
    recorded.text += chunk.toString();
    recorded.arrivals.push(Date.now());
  });
  return recorded;
}
