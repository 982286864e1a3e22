import type { ChildProcess } from 'node:child_process';
import { backoffDelay, systemClock, type Clock, type TimerHandle } from '../core/clock.js';
import {
  killProcessGroup,
  realSpawn,
  spawnErrorReason,
  terminate,
  type SpawnFn,
} from './process.js';

/** Bounds every child stream applies unless its collector says otherwise (README, "Limits"). */
export const STREAM_LIMITS = {
  /** A line longer than this (characters) is garbage: the child is restarted. */
  maxLineBytes: 1024 * 1024,
  /** This many rejected lines in a row, with no accepted one between, and the stream is garbage. */
  maxRejectedLines: 1000,
  /** A run counts as healthy (its restart starts the backoff afresh) after this long. */
  healthyAfterMs: 10_000,
  /** Restart delay: full-jitter exponential between these. */
  backoffBaseMs: 1000,
  backoffMaxMs: 60_000,
} as const;

/** How a stream run ended. */
export interface StreamExit {
  /**
   * `exit`: the child ended; `stall`: no accepted output for too long, killed; `spawn_error`:
   * could not start; `line_too_long`: an endless line, killed; `garbage`: only rejected output
   * (too many rejected lines in a row, a consumer's verdict, or a stall with rejected lines), killed.
   */
  readonly kind: 'exit' | 'stall' | 'spawn_error' | 'line_too_long' | 'garbage';
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Tail of stderr (bounded) or the spawn error message. */
  readonly stderr: string;
  /** For spawn errors: not_found, permission_denied, spawn_failed. */
  readonly spawnReason?: string;
  /** Lines received during this run. */
  readonly lines: number;
  /** Lines of this run the consumer rejected. */
  readonly rejected: number;
}

/**
 * What a consumer made of one line. `accepted` (or nothing): useful output, which proves the child
 * works; `ignored`: neither good nor bad (a blank line, part of a document still incomplete);
 * `rejected`: did not parse; `garbage`: this run's output is useless (a document over its bound),
 * so the child is killed and restarted with backoff.
 */
export type LineVerdict = 'accepted' | 'ignored' | 'rejected' | 'garbage';

/** Options of a long-lived child stream. */
export interface ChildStreamOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Killed and restarted after this long without an accepted line; 0 disables the watchdog. */
  readonly stallMs: number;
  /**
   * Allowance for the first line after a start (default: the larger of stallMs and 15 s):
   * nvidia-smi takes seconds to initialise NVML on big machines, which is not a hang. From the
   * first line on, `stallMs` applies.
   */
  readonly startupGraceMs?: number;
  // Returning nothing means `accepted`: a consumer that does not judge its lines keeps the old behaviour.
  readonly onLine: (line: string) => LineVerdict | void;
  readonly onExit: (exit: StreamExit) => void;
  /** Called after each successful spawn. */
  readonly onStart?: (pid: number | undefined) => void;
  /** Restart delay: full-jitter exponential between these (defaults 1 s → 60 s). */
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** A run this long, with accepted lines or none rejected, resets the backoff (default 10 s). */
  readonly healthyAfterMs?: number;
  /** Lines longer than this are garbage: the child is restarted (default 1 MiB). */
  readonly maxLineBytes?: number;
  /** Rejected lines in a row that make the run garbage (default 1000). */
  readonly maxRejectedLines?: number;
  readonly clock?: Clock;
  readonly spawnFn?: SpawnFn;
  readonly random?: () => number;
}

/**
 * A long-lived child process read line by line (e.g. `nvidia-smi ... -lms 1000`): restarted with
 * backoff when it exits, killed and restarted when it stalls or prints only garbage, stopped with
 * SIGTERM then SIGKILL. The child leads its own process group, and every kill reaches the group.
 * The backoff starts afresh only after a healthy run, so a tool that prints a line and exits, or
 * floods garbage, is restarted ever more slowly (up to once a minute), not in a loop.
 */
export class ChildStream {
  private child: ChildProcess | undefined;
  /** The current line's pieces so far (no newline yet) and their total length. */
  private pending: string[] = [];
  private pendingLength = 0;
  private linesThisRun = 0;
  private acceptedThisRun = 0;
  private rejectedThisRun = 0;
  private rejectedInARow = 0;
  private runStartedAt = 0;
  private attempts = 0;
  private stallTimer: TimerHandle | undefined;
  private restartTimer: TimerHandle | undefined;
  private stopped = true;
  private stderrTail = '';
  private exitReported = false;
  /** Why this run was killed by us, if it was; its remaining output is discarded. */
  private killedFor: 'stall' | 'line_too_long' | 'garbage' | undefined;
  /** Completed restarts (not counting the first start). */
  restarts = 0;
  /** Lines rejected by the consumer since the stream was created. */
  rejectedLines = 0;
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
    this.kill('stall');
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
    await terminate(child, graceMs);
    this.child = undefined;
  }

  private spawnChild(): void {
    if (this.stopped) return;
    this.pending = [];
    this.pendingLength = 0;
    this.linesThisRun = 0;
    this.acceptedThisRun = 0;
    this.rejectedThisRun = 0;
    this.rejectedInARow = 0;
    this.runStartedAt = this.clock.now();
    this.stderrTail = '';
    this.exitReported = false;
    this.killedFor = undefined;
    if (this.starts++ > 0) this.restarts++;
    let child: ChildProcess;
    try {
      child = (this.options.spawnFn ?? realSpawn)(this.options.command, this.options.args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: this.options.env ?? process.env,
        // Its own process group, so a kill reaches whatever it started (a wrapper's children).
        detached: true,
      });
    } catch (err) {
      this.reportSpawnError(err as NodeJS.ErrnoException);
      return;
    }
    this.child = child;
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      if (this.child === child) this.onData(chunk);
    });
    child.stderr?.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-4096);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (child.pid === undefined) {
        this.child = undefined;
        this.reportSpawnError(err);
      }
    });
    // Helpers the child left in its group would hold the pipes open (no 'close'): end them with it.
    child.once('exit', () => killProcessGroup(child, 'SIGKILL'));
    child.on('close', (code, signal) => this.onClose(child, code, signal));
    if (child.pid !== undefined) this.options.onStart?.(child.pid);
    this.armStall(this.options.startupGraceMs ?? Math.max(this.options.stallMs, 15_000));
  }

  private onData(chunk: string): void {
    if (this.killedFor) return;
    const max = this.options.maxLineBytes ?? STREAM_LIMITS.maxLineBytes;
    let from = 0;
    let nl = chunk.indexOf('\n');
    while (nl !== -1) {
      let line = chunk.slice(from, nl);
      if (this.pending.length > 0) {
        line = this.pending.join('') + line;
        this.pending = [];
        this.pendingLength = 0;
      }
      if (line.length > max) {
        this.kill('line_too_long');
        return;
      }
      this.take(line.endsWith('\r') ? line.slice(0, -1) : line);
      if (this.stopped || this.killedFor) return;
      from = nl + 1;
      nl = chunk.indexOf('\n', from);
    }
    if (from < chunk.length) {
      // Pieces are joined once, at the newline: appending to one string would copy it per chunk.
      this.pending.push(chunk.slice(from));
      this.pendingLength += chunk.length - from;
      if (this.pendingLength > max) this.kill('line_too_long');
    }
  }

  private take(line: string): void {
    // The first line, whatever it says, ends the start-up grace: the tool is up and talking.
    if (this.linesThisRun++ === 0) this.armStall();
    const verdict = this.options.onLine(line) ?? 'accepted';
    switch (verdict) {
      case 'accepted':
        this.acceptedThisRun++;
        this.rejectedInARow = 0;
        this.armStall();
        return;
      case 'ignored':
        return;
      case 'rejected':
        this.rejectedThisRun++;
        this.rejectedLines++;
        if (
          ++this.rejectedInARow >= (this.options.maxRejectedLines ?? STREAM_LIMITS.maxRejectedLines)
        )
          this.kill('garbage');
        return;
      case 'garbage':
        this.kill('garbage');
        return;
    }
  }

  /** Kills the child's process group; its exit is reported as `why` and what it still prints is dropped. */
  private kill(why: 'stall' | 'line_too_long' | 'garbage'): void {
    const child = this.child;
    if (!child || this.stopped) return;
    this.killedFor ??= why;
    this.pending = [];
    this.pendingLength = 0;
    if (this.stallTimer) this.clock.clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    killProcessGroup(child, 'SIGKILL');
    // If the kill never completes (D state), report and move on regardless.
    const giveUp = this.clock.setTimeout(() => {
      if (this.child === child) this.onClose(child, null, 'SIGKILL');
    }, 2000);
    giveUp.unref?.();
  }

  private armStall(ms = this.options.stallMs): void {
    if (this.options.stallMs <= 0) return;
    if (this.stallTimer) this.clock.clearTimeout(this.stallTimer);
    this.stallTimer = this.clock.setTimeout(() => {
      this.stallTimer = undefined;
      if (!this.child || this.stopped) return;
      // Lines kept coming but none was accepted since the last good one: garbage, not a hang.
      this.kill(this.rejectedInARow > 0 ? 'garbage' : 'stall');
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
    if (this.pending.length > 0 && !this.killedFor) {
      // A final line without a newline still counts (truncated output is the parser's problem).
      const rest = this.pending.join('');
      this.pending = [];
      this.pendingLength = 0;
      this.take(rest);
      if (this.stopped) return;
    }
    const healthy =
      this.clock.now() - this.runStartedAt >=
        (this.options.healthyAfterMs ?? STREAM_LIMITS.healthyAfterMs) &&
      (this.acceptedThisRun > 0 || this.rejectedThisRun === 0) &&
      this.killedFor !== 'garbage' &&
      this.killedFor !== 'line_too_long';
    // Only a healthy run proves the child works: output alone does not (a tool that prints one
    // line and exits would otherwise be restarted every second forever).
    if (healthy) this.attempts = 0;
    this.options.onExit({
      kind: this.killedFor ?? 'exit',
      code,
      signal,
      stderr: this.stderrTail.trim(),
      lines: this.linesThisRun,
      rejected: this.rejectedThisRun,
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
      rejected: 0,
    });
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (this.stopped) return;
    const base = this.options.backoffBaseMs ?? STREAM_LIMITS.backoffBaseMs;
    const delay = Math.max(
      base / 2,
      backoffDelay(
        this.attempts++,
        base,
        this.options.backoffMaxMs ?? STREAM_LIMITS.backoffMaxMs,
        this.options.random,
      ),
    );
    this.restartTimer = this.clock.setTimeout(() => {
      this.restartTimer = undefined;
      this.spawnChild();
    }, delay);
    this.restartTimer.unref?.();
  }
}
