import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { buildAgent, type Agent } from '../../agent/build-agent.js';
import { loadConfig } from '../../agent/config.js';
import type { PolledCollector } from '../../agent/core/types.js';
import { gpuReadingSamples } from '../../collectors/gpu-series.js';
import { createMqttComponent, type MqttComponent } from '../../edge/mqtt/component.js';
import { h100Readings } from './gpu-readings.js';
import { silentLogger } from './log-sink.js';

/** A polled collector reporting `count` simulated H100s, new values each run. */
export function fakeGpuCollector(count = 8): PolledCollector {
  let t = 0;
  return {
    kind: 'polled',
    name: 'fake-gpu',
    intervalMs: 100,
    timeoutMs: 1000,
    collect() {
      t++;
      const readings = h100Readings(count, 1, t);
      return Promise.resolve({ samples: gpuReadingSamples(readings), facts: { gpus: readings } });
    },
  };
}

/** An in-process agent with fake GPUs and the real MQTT component. */
export interface EdgeAgent {
  readonly agent: Agent;
  readonly mqtt: MqttComponent;
  /** Value of one series of the agent's own /metrics (undefined when absent). */
  metric(line: string): Promise<number | undefined>;
  stop(): Promise<void>;
}

/** Starts an agent publishing to `url` as `site`/`node`; flags and env override settings. */
export async function startEdgeAgent(options: {
  readonly url: string;
  readonly site: string;
  readonly node: string;
  readonly dir: string;
  readonly flags?: Record<string, string>;
  readonly env?: NodeJS.ProcessEnv;
  readonly log?: Logger;
  readonly gpus?: number;
}): Promise<EdgeAgent> {
  const { config } = loadConfig({
    env: { GPULSE_MQTT_RECONNECT_MAX: '1s', ...options.env },
    flags: {
      listen: '127.0.0.1:0',
      'mqtt-url': options.url,
      site: options.site,
      node: options.node,
      'mqtt-spool-dir': options.dir,
      'mqtt-interval': '200ms',
      'mqtt-flush': '200ms',
      ...options.flags,
    },
  });
  const mqtt = createMqttComponent(config.mqtt);
  const agent = buildAgent(config, {
    log: options.log ?? silentLogger(),
    version: '0.0.0-test',
    collectors: [fakeGpuCollector(options.gpus ?? 8)],
    components: [mqtt],
  });
  await agent.start();
  return {
    agent,
    mqtt,
    async metric(prefix) {
      const res = await agent.app.inject({ method: 'GET', url: '/metrics' });
      const line = res.body.split('\n').find((l) => l.startsWith(`${prefix} `));
      return line === undefined ? undefined : Number(line.slice(prefix.length + 1));
    },
    stop: () => agent.stop(),
  };
}

const MAIN = new URL('../../dist/agent/main.js', import.meta.url).pathname;

/** The CLI flags of an agent publishing to `url` as site/node, spooling in `spoolDir`. */
export function mqttArgs(o: {
  url: string;
  site: string;
  node: string;
  spoolDir: string;
  /** Sample interval and flush period both, e.g. '500ms' (default: the agent's). */
  every?: string;
}): string[] {
  const every = o.every ? ['--mqtt-interval', o.every, '--mqtt-flush', o.every] : [];
  return [
    '--mqtt-url',
    o.url,
    '--site',
    o.site,
    '--node',
    o.node,
    ...every,
    '--mqtt-spool-dir',
    o.spoolDir,
  ];
}

/** The built CLI (`npm run build`; CI builds before the tests). */
export function builtCli(): string {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} missing: run npm run build first`);
  return MAIN;
}

/** A `gpulse run` process with its JSON log lines. */
export interface CliAgent {
  readonly child: ChildProcess;
  readonly logs: Record<string, unknown>[];
  /** Base URL of its HTTP server, once it logged it. */
  address(): Promise<string>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
}

/** Spawns `gpulse run --nvidia-smi-mode off` with the given flags (the host collector is real). */
export function spawnCliAgent(args: readonly string[], env: NodeJS.ProcessEnv = {}): CliAgent {
  const child = spawn(
    process.execPath,
    [
      builtCli(),
      'run',
      '--nvidia-smi-mode',
      'off',
      '--log-format',
      'json',
      '--listen',
      '127.0.0.1:0',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  const logs = collectJsonLogs(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return {
    child,
    logs,
    address: () => loggedAddress(child, logs, 'agent'),
    kill: () => end('SIGKILL'),
    stop: () => end('SIGTERM'),
  };
}

/**
 * The address a server child logs once it listens. More than a wait (so not vi.waitFor): it fails
 * at once, with the logs, when the child exits before that.
 */
export async function loggedAddress(
  child: ChildProcess,
  logs: readonly Record<string, unknown>[],
  what: string,
): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const line = logs.find((l) => typeof l.address === 'string');
    if (line) return line.address as string;
    if (child.exitCode !== null) throw new Error(`${what} exited: ${JSON.stringify(logs)}`);
    if (Date.now() > deadline) throw new Error(`${what} did not start: ${JSON.stringify(logs)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every line a child prints on stdout and stderr, as JSON log records (others as `{msg}`). */
export function collectJsonLogs(child: ChildProcess): Record<string, unknown>[] {
  const logs: Record<string, unknown>[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream }).on('line', (line) => {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ msg: line });
      }
    });
  }
  return logs;
}
