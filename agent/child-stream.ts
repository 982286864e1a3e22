import type { ChildProcess } from 'node:child_process';
import { backoffDelay, systemClock, type Clock, type TimerHandle } from './clock.js';
import { realSpawn, spawnErrorReason, type SpawnFn } from './process.js';

/** How a stream run ended. */
export interface StreamExit {
  /** `exit`: the child ended; `stall`: silent too long and killed; `spawn_error`: could not start. */
  readonly kind: 'exit' | 'stall' | 'spawn_error' | 'line_too_long';
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Tail of stderr (bounded) or the spawn error message. */
  readonly stderr: string;
  /** For spawn errors: not_found, permission_denied, spawn_failed. */
  readonly spawnReason?: string;
  /** Lines received during this run. */
  readonly lines: number;
}

/** Options of a long-lived child stream. */
export interface ChildStreamOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Killed and restarted when silent this long; 0 disables the watchdog. */
  readonly stallMs: number;
  /**
   * Allowance for the first line after a start (default: the larger of stallMs and 15 s):
   * nvidia-smi takes seconds to initialise NVML on big machines, which is not a hang.
   */
  readonly startupGraceMs?: number;
  readonly onLine: (line: string) => void;
  readonly onExit: (exit: StreamExit) => void;
  /** Called after each successful spawn. */
  readonly onStart?: (pid: number | undefined) => void;
  /** Restart delay: full-jitter exponential between these (defaults 1 s → 60 s). */
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** Lines longer than this are garbage: the child is restarted (default 1 MiB). */
  readonly maxLineBytes?: number;
  readonly clock?: Clock;
  readonly spawnFn?: SpawnFn;
  readonly random?: () => number;
}

/**
 * A long-lived child process read line by line (e.g. `nvidia-smi ... -lms 1000`): restarted with
 * backoff when it exits, killed and restarted when it stalls, stopped with SIGTERM then SIGKILL.
 */
export class ChildStream {
  private child: ChildProcess | undefined;
  private buffer = '';
  private linesThisRun = 0;
  private attempts = 0;
  private stallTimer: TimerHandle | undefined;
  private restartTimer: TimerHandle | undefined;
  private stopped = true;
  private stderrTail = '';
  private exitReported = false;
  private stallKilled = false;
  private tooLong = false;
  /** Completed restarts (not counting the first start). */
  restarts = 0;
  private starts = 0;
  private readonly clock: Clock;

  constructor(private readonly options: ChildStreamOptions) {
    this.clock = options.clock ?? systemClock;
  }

  /** True while a child process is alive. */
  get running(): boolean {
    return this.child !== undefined;
  }

  /** Starts the stream (idempotent). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.spawnChild();
  }

  /** Kills the child now and restarts it after the usual backoff (e.g. on external evidence of a hang). */
  restartNow(): void {
    if (this.stopped || !this.child) return;
    this.stallKilled = true;
    this.child.kill('SIGKILL');
  }

  /** Stops for good: SIGTERM, then SIGKILL after `graceMs`; resolves when the child is gone or abandoned. */
  async stop(graceMs = 1000): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) this.clock.clearTimeout(this.restartTimer);
    if (this.stallTimer) this.clock.clearTimeout(this.stallTimer);
    this.restartTimer = undefined;
    this.stallTimer = undefined;
    const child = this.child;
    if (!child) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(killTimer);
        clearTimeout(abandonTimer);
        resolve();
      };
      child.once('close', done);
      child.kill('SIGTERM');
      const killTimer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      // A child stuck in the driver (D state) ignores even SIGKILL until it returns: do not hang on it.
      const abandonTimer = setTimeout(done, graceMs + 1000);
    });
    this.child = undefined;
  }

  private spawnChild(): void {
    if (this.stopped) return;
    this.buffer = '';
    this.linesThisRun = 0;
    this.stderrTail = '';
    this.exitReported = false;
    this.stallKilled = false;
    this.tooLong = false;
    if (this.starts++ > 0) this.restarts++;
    let child: ChildProcess;
    try {
      child = (this.options.spawnFn ?? realSpawn)(this.options.command, this.options.args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: this.options.env ?? process.env,
      });
    } catch (err) {
      this.reportSpawnError(err as NodeJS.ErrnoException);
      return;
    }
    this.child = child;
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => this.onData(chunk));
    child.stderr?.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-4096);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (child.pid === undefined) {
        this.child = undefined;
        this.reportSpawnError(err);
      }
    });
    child.on('close', (code, signal) => this.onClose(child, code, signal));
    if (child.pid !== undefined) this.options.onStart?.(child.pid);
    this.armStall(this.options.startupGraceMs ?? Math.max(this.options.stallMs, 15_000));
  }

  private onData(chunk: string): void {
    this.armStall();
    this.buffer += chunk;
    const max = this.options.maxLineBytes ?? 1024 * 1024;
    let nl = this.buffer.indexOf('\n');
    while (nl !== -1) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.linesThisRun++;
      // Output proves the child works; the next failure starts the backoff from the beginning.
      this.attempts = 0;
      this.options.onLine(line);
      if (this.stopped) return;
      nl = this.buffer.indexOf('\n');
    }
    if (this.buffer.length > max) {
      this.tooLong = true;
      this.buffer = '';
      this.child?.kill('SIGKILL');
    }
  }

  private armStall(ms = this.options.stallMs): void {
    if (this.options.stallMs <= 0) return;
    if (this.stallTimer) this.clock.clearTimeout(this.stallTimer);
    this.stallTimer = this.clock.setTimeout(() => {
      this.stallTimer = undefined;
      if (!this.child || this.stopped) return;
      this.stallKilled = true;
      this.child.kill('SIGKILL');
      // If the kill never completes (D state), report and move on regardless.
      const child = this.child;
      const giveUp = this.clock.setTimeout(() => {
        if (this.child === child) this.onClose(child, null, 'SIGKILL');
      }, 2000);
      giveUp.unref?.();
    }, ms);
    this.stallTimer.unref?.();
  }

  private onClose(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child && this.child !== undefined) return;
    if (this.exitReported) return;
    this.exitReported = true;
    this.child = undefined;
    if (this.stallTimer) this.clock.clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    if (this.stopped) return;
    if (this.buffer.length > 0) {
      // A final line without a newline still counts (truncated output is the parser's problem).
      const rest = this.buffer;
      this.buffer = '';
      this.linesThisRun++;
      this.options.onLine(rest);
    }
    const kind = this.tooLong ? 'line_too_long' : this.stallKilled ? 'stall' : 'exit';
    this.options.onExit({
      kind,
      code,
      signal,
      stderr: this.stderrTail.trim(),
      lines: this.linesThisRun,
    });
    this.scheduleRestart();
  }

  private reportSpawnError(err: NodeJS.ErrnoException): void {
    if (this.exitReported) return;
    this.exitReported = true;
    this.options.onExit({
      kind: 'spawn_error',
      code: null,
      signal: null,
      stderr: err.message,
      spawnReason: spawnErrorReason(err),
      lines: 0,
    });
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (this.stopped) return;
    const base = this.options.backoffBaseMs ?? 1000;
    const delay = Math.max(
      base / 2,
      backoffDelay(this.attempts++, base, this.options.backoffMaxMs ?? 60_000, this.options.random),
    );
    this.restartTimer = this.clock.setTimeout(() => {
      this.restartTimer = undefined;
      this.spawnChild();
    }, delay);
    this.restartTimer.unref?.();
  }
}
