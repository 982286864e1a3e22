// A `gpulse-gateway` process (scripts/gpulse-gateway, as a fleet runs it) for end-to-end tests:
// its JSON logs, its HTTP address, and its memory from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { REPO_ROOT } from './cli.js';
import { builtCli, collectJsonLogs, loggedAddress } from './edge-agent.js';
import { eventually } from './mosquitto.js';

const LAUNCHER = `${REPO_ROOT}/scripts/gpulse-gateway`;

/** A running gateway process. */
export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly logs: Record<string, unknown>[];
  /** Base URL of its HTTP server, once it logged it. */
  address(): Promise<string>;
  /** The body of GET /metrics. */
  metrics(): Promise<string>;
  /** GET /readyz as JSON. */
  readyz(): Promise<{ ready: boolean; devices: number; served: number; queued: number }>;
  /** Peak resident memory so far (VmHWM), bytes. */
  peakRss(): number;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Kilobytes of a /proc/<pid>/status field, as bytes. */
function procStatus(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(
    readFileSync(`/proc/${pid}/status`, 'utf8'),
  );
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Starts `gpulse-gateway --listen 127.0.0.1:0 --log-format json ...args`. */
export function spawnGateway(args: readonly string[], env: NodeJS.ProcessEnv = {}): GatewayProcess {
  builtCli();
  const child = spawn(LAUNCHER, ['--listen', '127.0.0.1:0', '--log-format', 'json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const logs = collectJsonLogs(child);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const address = () => loggedAddress(child, logs, 'gateway');
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return {
    child,
    logs,
    address,
    async metrics() {
      return (await fetch(`${await address()}/metrics`)).text();
    },
    async readyz() {
      return (await (await fetch(`${await address()}/readyz`)).json()) as {
        ready: boolean;
        devices: number;
        served: number;
        queued: number;
      };
    },
    peakRss: () => procStatus(child.pid as number, 'VmHWM'),
    kill: async () => {
      await end('SIGKILL');
    },
    stop: () => end('SIGTERM'),
  };
}

/**
 * Waits (up to 20 s) until a gateway at `address` serves what one edge agent relayed: the node's
 * device up, and GPU 0's temperature.
 */
export async function relayedByGateway(
  address: string,
  site: string,
  node: string,
  what: string,
): Promise<void> {
  await eventually(
    async () => {
      const text = await (await fetch(`${address}/metrics`)).text();
      return (
        text.includes(`gpulse_fleet_device_up{site="${site}",node="${node}"} 1`) &&
        text.includes(`gpulse_gpu_temperature_celsius{site="${site}",node="${node}",gpu="0"`)
      );
    },
    20_000,
    what,
  );
}
