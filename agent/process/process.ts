import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/** Spawns a child; injected so tests can count or replace spawns. Arguments are never a shell string. */
export type SpawnFn = (
  command: string,
  args: readonly string[],
  options: SpawnOptions,
) => ChildProcess;

/** The real spawn (no shell). */
export const realSpawn: SpawnFn = (command, args, options) =>
  spawn(command, [...args], { ...options, shell: false });

/**
 * Sends a signal to a child and to everything it started. Children are spawned `detached`, so each
 * leads its own process group: a wrapper script's `sleep` or a tool's helper dies with it instead
 * of outliving the agent. Falls back to the child alone where it leads no group (an injected spawn).
 */
export function killProcessGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid !== undefined) {
    try {
      process.kill(-child.pid, signal);
      return;
    } catch {
      // ESRCH: no such group (already gone, or the child does not lead one): signal the child.
    }
  }
  try {
    child.kill(signal);
  } catch {
    // Already reaped.
  }
}

/**
 * Every child process the agent starts, spawned through `spawn`: at `stop`, whatever still runs
 * (a one-shot call hung in the driver, a stream not yet stopped) is terminated with its process
 * group, so no child outlives the agent. Spawning after `stop` fails.
 */
export class ChildProcesses {
  private readonly live = new Set<ChildProcess>();
  private stopped = false;

  constructor(private readonly inner: SpawnFn = realSpawn) {}

  /** Number of children still running (their process groups not yet closed). */
  get size(): number {
    return this.live.size;
  }

  /** Spawns and tracks a child until it exits. */
  readonly spawn: SpawnFn = (command, args, options) => {
    if (this.stopped) {
      const err: NodeJS.ErrnoException = new Error(`${command}: the agent is stopping`);
      err.code = 'ECANCELED';
      throw err;
    }
    const child = this.inner(command, args, options);
    this.live.add(child);
    const forget = () => this.live.delete(child);
    child.once('close', forget);
    child.once('error', () => {
      if (child.pid === undefined) forget();
    });
    return child;
  };

  /**
   * SIGTERM to every live child's process group, SIGKILL after `graceMs`; resolves when all are
   * gone, or after one more second for a child stuck in the driver (D state) that even SIGKILL
   * cannot end until it returns.
   */
  async stop(graceMs = 1000): Promise<void> {
    this.stopped = true;
    const children = [...this.live];
    await Promise.all(children.map((child) => terminate(child, graceMs)));
    for (const child of children) this.live.delete(child);
  }
}

/** SIGTERM to a child's group, SIGKILL after `graceMs`; resolves once closed or abandoned. */
export function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      // The leader is gone; helpers it left in its group may not be.
      killProcessGroup(child, 'SIGKILL');
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(killTimer);
      clearTimeout(abandonTimer);
      resolve();
    };
    child.once('close', done);
    killProcessGroup(child, 'SIGTERM');
    const killTimer = setTimeout(() => killProcessGroup(child, 'SIGKILL'), graceMs);
    const abandonTimer = setTimeout(done, graceMs + 1000);
  });
}

/** Outcome of a finished one-shot command. */
export interface CommandResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout was cut at maxBytes. */
  readonly truncated: boolean;
}

/** Why a command could not run or finish. */
export class CommandError extends Error {
  readonly code = 'GPULSE_COMMAND_FAILED';
  constructor(
    message: string,
    /** `not_found`, `permission_denied`, `spawn_failed`, `timeout` or `aborted`. */
    readonly reason: 'not_found' | 'permission_denied' | 'spawn_failed' | 'timeout' | 'aborted',
    readonly stdout = '',
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

/** Options of a one-shot command. */
export interface RunCommandOptions {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  /** stdout beyond this is dropped (garbage protection); default 16 MiB. */
  readonly maxBytes?: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly spawnFn?: SpawnFn;
}

/** Maps a spawn error to a reason. */
export function spawnErrorReason(err: NodeJS.ErrnoException): CommandError['reason'] {
  if (err.code === 'ENOENT') return 'not_found';
  if (err.code === 'EACCES' || err.code === 'EPERM') return 'permission_denied';
  return 'spawn_failed';
}

/** Runs a command to completion with a hard timeout (SIGKILL), capturing bounded output. */
export function runCommand(
  command: string,
  args: readonly string[],
  options: RunCommandOptions,
): Promise<CommandResult> {
  const maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new CommandError(`${command}: aborted before start`, 'aborted'));
      return;
    }
    let child: ChildProcess;
    try {
      child = (options.spawnFn ?? realSpawn)(command, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: options.env ?? process.env,
        // Its own process group: a timeout or an abort ends whatever the command started too.
        detached: true,
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      reject(new CommandError(`${command}: ${e.message}`, spawnErrorReason(e)));
      return;
    }
    const out: Buffer[] = [];
    const errChunks: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let truncated = false;
    let settled = false;
    let killedFor: 'timeout' | 'aborted' | undefined;

    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const kill = (why: 'timeout' | 'aborted') => {
      killedFor = why;
      killProcessGroup(child, 'SIGKILL');
      // A child stuck in the driver (D state) may never exit: do not wait for it.
      const stdout = Buffer.concat(out).toString('utf8');
      finish(() =>
        reject(
          new CommandError(
            why === 'timeout'
              ? `${command} ${args.join(' ')} did not finish within ${options.timeoutMs}ms and was killed`
              : `${command}: aborted`,
            why,
            stdout,
          ),
        ),
      );
    };
    const onAbort = () => kill('aborted');
    const timer = setTimeout(() => kill('timeout'), options.timeoutMs);
    timer.unref();
    options.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout?.on('data', (chunk: Buffer) => {
      if (outBytes + chunk.length > maxBytes) {
        truncated = true;
        const room = maxBytes - outBytes;
        if (room > 0) out.push(chunk.subarray(0, room));
        outBytes = maxBytes;
        return;
      }
      outBytes += chunk.length;
      out.push(chunk);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      if (errBytes < 64 * 1024) {
        errChunks.push(chunk);
        errBytes += chunk.length;
      }
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      finish(() => reject(new CommandError(`${command}: ${err.message}`, spawnErrorReason(err))));
    });
    // Helpers the command left behind in its group would hold its pipes open: end them with it.
    child.once('exit', () => killProcessGroup(child, 'SIGKILL'));
    child.on('close', (code, signal) => {
      if (killedFor) return;
      finish(() =>
        resolve({
          code,
          signal,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(errChunks).toString('utf8'),
          truncated,
        }),
      );
    });
  });
}
