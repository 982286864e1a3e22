import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { realSpawn, runCommand, CommandError, type SpawnFn } from '../../agent/process/process.js';
import type { ManifestHealth } from './manifest.js';
import { ReasonError } from './reason-error.js';

/** Device-side health settings (from config or flags). */
export interface HealthSettings {
  /** Command run after activation; exit 0 means healthy. Argument array, never a shell string. */
  readonly command?: readonly string[];
  readonly commandTimeoutMs: number;
  /** URL probed after activation until it answers 2xx, then during the trial window. */
  readonly url?: string;
  /** How long the URL may take to become healthy after activation (the server reloads). */
  readonly urlTimeoutMs: number;
  /** Interval of URL probes during the trial window. */
  readonly probeIntervalMs: number;
  /** Golden-input runner: gets the input file as last argument, prints the output on stdout. */
  readonly goldenCommand?: readonly string[];
  readonly goldenTimeoutMs: number;
  /** Serving container watched during the trial (restart, OOM kill, GPU OOM, death). */
  readonly container?: string;
  /** Trial window after activation in which gpulse's own signals count as failure. */
  readonly trialWindowMs: number;
  /** Process starts in the activated/trial states before the update is rolled back. */
  readonly maxTrialStarts: number;
  /** Critical Xid on any GPU during the trial fails it (`any`), or is ignored (`off`). */
  readonly xid: 'any' | 'off';
}

/** Defaults: no command/URL, 10 min trial, 3 trial starts, critical Xid counts. */
export const DEFAULT_HEALTH: HealthSettings = {
  commandTimeoutMs: 60_000,
  urlTimeoutMs: 120_000,
  probeIntervalMs: 10_000,
  goldenTimeoutMs: 300_000,
  trialWindowMs: 600_000,
  maxTrialStarts: 3,
  xid: 'any',
};

/** A failed health check; `reason` is a stable label value. */
export class HealthError extends ReasonError {
  readonly code = 'GPULSE_MODEL_HEALTH';
}

/** Environment for health and golden commands: which model and version to check. */
export function healthEnv(model: string, version: string, dir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GPULSE_MODEL_NAME: model,
    GPULSE_MODEL_VERSION: version,
    GPULSE_MODEL_DIR: dir,
  };
}

function tail(text: string): string {
  const t = text.trim();
  return t.length > 300 ? `…${t.slice(-300)}` : t;
}

/** Runs the health command; throws HealthError unless it exits 0 in time. */
export async function runHealthCommand(
  command: readonly string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv,
  spawnFn?: SpawnFn,
): Promise<void> {
  const [bin, ...args] = command;
  if (!bin) throw new HealthError('command_failed', 'health command is empty');
  try {
    const r = await runCommand(bin, args, { timeoutMs, env, spawnFn, maxBytes: 64 * 1024 });
    if (r.code !== 0) {
      throw new HealthError(
        'command_failed',
        `health command ${bin} exited ${r.code ?? r.signal ?? '?'}${r.stderr.trim() ? `: ${tail(r.stderr)}` : ''}`,
      );
    }
  } catch (err) {
    if (err instanceof HealthError) throw err;
    const reason =
      err instanceof CommandError && err.reason === 'timeout'
        ? 'command_timeout'
        : 'command_failed';
    throw new HealthError(reason, `health command failed: ${(err as Error).message}`);
  }
}

/** One HTTP probe: resolves when the URL answers 2xx within `timeoutMs`. */
export async function probeUrl(url: string, timeoutMs: number): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    throw new HealthError('probe_failed', `GET ${url}: ${cause?.code ?? (err as Error).message}`);
  }
  await res.body?.cancel().catch(() => undefined);
  if (res.status < 200 || res.status > 299)
    throw new HealthError('probe_failed', `GET ${url}: HTTP ${res.status}`);
}

/** Probes until the URL answers 2xx or `totalMs` passes (the server is reloading the model). */
export async function waitHealthy(
  url: string,
  totalMs: number,
  intervalMs: number,
  now: () => number = Date.now,
): Promise<void> {
  const deadline = now() + totalMs;
  let last: Error | undefined;
  for (;;) {
    try {
      await probeUrl(url, Math.min(10_000, Math.max(500, deadline - now())));
      return;
    } catch (err) {
      last = err as Error;
    }
    if (now() + intervalMs > deadline) break;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new HealthError(
    'probe_failed',
    `${url} did not become healthy within ${totalMs}ms: ${last?.message ?? ''}`,
  );
}

function compareFloat32(out: Buffer, expected: Buffer, tolerance: number): string | undefined {
  if (out.length !== expected.length || out.length % 4 !== 0)
    return `output has ${out.length} bytes, expected ${expected.length}`;
  for (let i = 0; i < out.length; i += 4) {
    const a = out.readFloatLE(i);
    const b = expected.readFloatLE(i);
    if (!(Math.abs(a - b) <= tolerance))
      return `output[${i / 4}] = ${a}, expected ${b} (tolerance ${tolerance})`;
  }
  return undefined;
}

/**
 * The golden-input check named in the manifest, run against the new version before activation:
 * the device's runner gets the input file, and its stdout must match the expected output.
 */
export async function runGoldenCheck(
  golden: NonNullable<ManifestHealth['golden']>,
  versionDir: string,
  runner: readonly string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv,
  spawnFn?: SpawnFn,
): Promise<void> {
  const [bin, ...args] = runner;
  if (!bin) throw new HealthError('golden_failed', 'golden command is empty');
  const input = join(versionDir, golden.input);
  const expected = await readFile(join(versionDir, golden.expected));
  let stdout: Buffer;
  try {
    stdout = await runBinary(bin, [...args, input], timeoutMs, env, expected.length + 1, spawnFn);
  } catch (err) {
    if (err instanceof HealthError) throw err;
    throw new HealthError('golden_failed', `golden command failed: ${(err as Error).message}`);
  }
  const problem =
    golden.compare === 'float32'
      ? compareFloat32(stdout, expected, golden.abs_tolerance)
      : stdout.equals(expected)
        ? undefined
        : `output (${stdout.length} bytes) differs from ${golden.expected} (${expected.length} bytes)`;
  if (problem) throw new HealthError('golden_mismatch', `golden-input check failed: ${problem}`);
}

/** Runs a command and returns its raw stdout (runCommand decodes UTF-8, which mangles binary output). */
function runBinary(
  bin: string,
  args: readonly string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv,
  maxBytes: number,
  spawnFn: SpawnFn = realSpawn,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawnFn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    const out: Buffer[] = [];
    let size = 0;
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new HealthError(
          'golden_failed',
          `golden command ${bin} did not finish within ${timeoutMs}ms`,
        ),
      );
    }, timeoutMs);
    child.stdout?.on('data', (b: Buffer) => {
      size += b.length;
      if (size <= maxBytes) out.push(b);
    });
    child.stderr?.on('data', (b: Buffer) => {
      if (stderr.length < 4096) stderr += b.toString('utf8');
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new HealthError('golden_failed', `golden command ${bin}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(
          new HealthError(
            'golden_failed',
            `golden command exited ${code ?? signal ?? '?'}: ${tail(stderr)}`,
          ),
        );
        return;
      }
      resolve(Buffer.concat(out));
    });
  });
}
