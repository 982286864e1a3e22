import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { join } from 'node:path';
import { vi } from 'vitest';
import { call } from './https-client.js';
import { freePort } from './free-port.js';

/** Root of the repository (tests run from sources; the CLI runs from the build). */
export const REPO_ROOT = join(import.meta.dirname, '..', '..');

/** The built CLI entry; `npm test` builds before running vitest. */
export const CLI = join(REPO_ROOT, 'dist', 'agent', 'main.js');

/** The built simulated nvidia-smi. */
export const SIM_NVIDIA_SMI = join(
  REPO_ROOT,
  'dist',
  'collectors',
  'nvidia-smi',
  'simulator',
  'nvidia-smi.js',
);

/** The built simulated dcgmi. */
export const SIM_DCGMI = join(REPO_ROOT, 'dist', 'collectors', 'dcgm', 'simulator', 'dcgmi.js');

/** Fails early with a clear message when the build is missing. */
export function requireBuild(): void {
  if (!existsSync(CLI) || !existsSync(SIM_NVIDIA_SMI) || !existsSync(SIM_DCGMI)) {
    throw new Error(
      'the built CLI is missing: run `npm run build` (npm test does it before vitest)',
    );
  }
}

export { freePort };

/** A running `gpulse` process started by a test. */
export interface CliProcess {
  readonly proc: ChildProcess;
  readonly port: number;
  readonly base: string;
  /** JSON log records printed so far. */
  readonly logs: Record<string, unknown>[];
  /** Raw stderr so far. */
  stderr(): string;
  /** GET a path; returns status and body text. */
  get(path: string, headers?: Record<string, string>): Promise<{ status: number; body: string }>;
  /** Polls /metrics until `pred` holds for the body. */
  waitForMetrics(pred: (body: string) => boolean, timeoutMs?: number): Promise<string>;
  /**
   * Waits until `count` more failed starts of `collector` with `failure` are logged (the runner
   * logs each retry at debug): proof that the cycles ran, for "said once" checks.
   */
  waitForRetries(
    collector: string,
    failure: string,
    count: number,
    timeoutMs?: number,
  ): Promise<void>;
  /** Waits for the process to exit on its own. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait for exit; returns the exit code and how long it took. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

/** `gpulse simulate` sampling fast enough for a test (every 500 ms, `-q -x` every 2 s), logging at info. */
export function startSimulate(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliProcess> {
  return startCli(['simulate', '--interval', '500ms', '--xml-interval', '2s', ...args], {
    GPULSE_LOG_LEVEL: 'info',
    ...env,
  });
}

/** Starts the built CLI with args (listen address added) and JSON logs; resolves once /healthz answers. */
export async function startCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  options: {
    readonly waitHealthy?: boolean;
    /** Run as this user and group (a test running as root checks what others may do). */
    readonly uid?: number;
    readonly gid?: number;
    /** Host to listen on (default 127.0.0.1; tests reach it on 127.0.0.1 either way). */
    readonly listenHost?: string;
    /** The agent serves HTTPS (a web config file): requests use these TLS client options. */
    readonly tls?: RequestOptions;
    /** Start under this open-files limit (`ulimit -n`, soft and hard). */
    readonly openFiles?: number;
    /** Listen on this port (default: a free one). */
    readonly port?: number;
    /** How long /healthz may take to answer (default 30 s; many agents starting at once need more). */
    readonly healthyTimeoutMs?: number;
  } = {},
): Promise<CliProcess> {
  requireBuild();
  const port = options.port ?? (await freePort());
  const listen = `${options.listenHost ?? '127.0.0.1'}:${port}`;
  const argv = [CLI, ...args, '--listen', listen];
  // Through sh for the limit; `exec` keeps the pid, so signals reach gpulse itself.
  const [command, commandArgs] =
    options.openFiles === undefined
      ? [process.execPath, argv]
      : [
          'sh',
          ['-c', `ulimit -n ${options.openFiles} && exec "$0" "$@"`, process.execPath, ...argv],
        ];
  const proc = spawn(command, commandArgs, {
    env: { ...process.env, GPULSE_LOG_FORMAT: 'json', GPULSE_LOG_LEVEL: 'debug', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  let buf = '';
  proc.stdout?.setEncoding('utf8');
  proc.stdout?.on('data', (chunk: string) => {
    buf += chunk;
    let nl = buf.indexOf('\n');
    while (nl !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ raw: line });
      }
      nl = buf.indexOf('\n');
    }
  });
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (chunk: string) => (stderr += chunk));
  const base = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const tls = options.tls;
  const get = async (path: string, headers: Record<string, string> = {}) => {
    if (tls) {
      const res = await call(port, { path, headers, tls });
      if ('error' in res) throw new Error(`GET ${path}: ${res.error}`);
      return { status: res.status, body: res.body };
    }
    const res = await fetch(base + path, { headers });
    return { status: res.status, body: await res.text() };
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const cli: CliProcess = {
    proc,
    port,
    base,
    logs,
    stderr: () => stderr,
    exited: () => exited,
    get,
    waitForMetrics(pred, timeoutMs = 20_000) {
      let last = '';
      return vi.waitFor(
        async () => {
          // Not listening yet is one more reason to try again.
          last = await get('/metrics').then(
            (r) => r.body,
            () => last,
          );
          if (!pred(last))
            throw new Error(
              `metrics condition not met in ${timeoutMs}ms; last body:\n${last.slice(0, 3000)}`,
            );
          return last;
        },
        { timeout: timeoutMs, interval: 100 },
      );
    },
    async waitForRetries(collector, failure, count, timeoutMs = 30_000) {
      const retries = () =>
        logs.filter(
          (r) =>
            r.collector === collector &&
            r.msg === 'collector start failed; retrying' &&
            r.failure === failure,
        ).length;
      const before = retries();
      await vi.waitFor(
        () => {
          if (retries() < before + count)
            throw new Error(`${retries() - before} of ${count} ${collector} retries so far`);
        },
        { timeout: timeoutMs, interval: 100 },
      );
    },
    async stop() {
      const t0 = Date.now();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const r = await exited;
      return { ...r, ms: Date.now() - t0 };
    },
  };
  if (options.waitHealthy !== false) {
    const t0 = Date.now();
    for (;;) {
      if (proc.exitCode !== null) {
        throw new Error(
          `gpulse exited with ${proc.exitCode}: ${stderr}\n${JSON.stringify(logs.slice(-5))}`,
        );
      }
      try {
        if ((await get('/healthz')).status === 200) break;
      } catch {
        // not yet
      }
      if (Date.now() - t0 > (options.healthyTimeoutMs ?? 30_000)) {
        // Never leave a process behind: a leaked agent keeps its simulators running for good.
        // SIGTERM first, so the agent stops its child tools; SIGKILL would orphan them.
        proc.kill('SIGTERM');
        const killer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
        throw new Error(
          `gpulse did not become healthy in ${(options.healthyTimeoutMs ?? 30_000) / 1000} s: ${stderr}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return cli;
}

/** Value of one series in an exposition, by metric name and exact label subset; undefined if absent. */
export function seriesValue(
  body: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of body.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = parseLabels(m[3] ?? '');
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[4]);
  }
  return undefined;
}

/** All series of a metric with their labels and values. */
export function allSeries(
  body: string,
  name: string,
): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (m && m[1] === name) out.push({ labels: parseLabels(m[3] ?? ''), value: Number(m[4]) });
  }
  return out;
}

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    out[m[1]!] = m[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  }
  return out;
}
