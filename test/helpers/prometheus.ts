import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './cli.js';

/** A real Prometheus server started by a test on loopback, with its own data directory. */
export interface PrometheusServer {
  readonly base: string;
  readonly proc: ChildProcess;
  /** Log output so far (for failure messages). */
  log(): string;
  /** GET an API path; returns the parsed `data` of a success answer, throws otherwise. */
  api<T>(path: string, params?: Record<string, string>): Promise<T>;
  stop(): Promise<void>;
}

/** Starts `prometheus` with a config (YAML text) and rule files in `dir`; resolves once ready. */
export async function startPrometheus(
  dir: string,
  config: string,
  ruleFiles: Readonly<Record<string, string>> = {},
): Promise<PrometheusServer> {
  await mkdir(join(dir, 'data'), { recursive: true });
  for (const [name, text] of Object.entries(ruleFiles)) await writeFile(join(dir, name), text);
  await writeFile(join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const proc = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  proc.stdout?.on('data', (c: Buffer) => (log += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (log += c.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const base = `http://127.0.0.1:${port}`;
  const server: PrometheusServer = {
    base,
    proc,
    log: () => log,
    async api<T>(path: string, params: Record<string, string> = {}): Promise<T> {
      const query = new URLSearchParams(params).toString();
      const res = await fetch(`${base}${path}${query ? `?${query}` : ''}`);
      const body = (await res.json()) as { status: string; data: T; error?: string };
      if (body.status !== 'success')
        throw new Error(`${path} ${JSON.stringify(params)}: ${body.error}`);
      return body.data;
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
  const t0 = Date.now();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`prometheus exited ${proc.exitCode}: ${log}`);
    try {
      if ((await fetch(`${base}/-/ready`)).ok) return server;
    } catch {
      // not listening yet
    }
    if (Date.now() - t0 > 30_000) {
      await server.stop();
      throw new Error(`prometheus not ready in 30 s: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
