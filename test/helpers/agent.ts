import type { Logger } from 'pino';
import { vi } from 'vitest';
import { buildAgent, type Agent } from '../../agent/build-agent.js';
import { defaultComponents } from '../../agent/components.js';
import { loadConfig, type AgentConfig } from '../../agent/config.js';
import { createCollectors } from '../../collectors/index.js';
import { GpuContainerLookup } from '../../agent/attribution/gpu-processes.js';
import type { Collector } from '../../agent/core/types.js';
import { systemClock } from '../../agent/core/clock.js';

/** An agent built in this process, listening on a free loopback port. */
export interface InProcessAgent {
  readonly agent: Agent;
  readonly config: AgentConfig;
  readonly base: string;
  metrics(): Promise<string>;
  getJson(path: string): Promise<{ status: number; body: unknown }>;
  /** Polls /metrics until `pred` holds. */
  waitForMetrics(pred: (body: string) => boolean, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts the whole agent in-process with the given GPULSE_* environment (collectors from the
 * registry, the default components), plus extra collectors a test brings.
 */
export async function startAgentInProcess(
  env: NodeJS.ProcessEnv,
  log: Logger,
  extra: readonly Collector[] = [],
): Promise<InProcessAgent> {
  const { config } = loadConfig({
    env: {
      GPULSE_LISTEN: '127.0.0.1:0',
      GPULSE_NVIDIA_SMI_MODE: 'off',
      GPULSE_HOST_MODE: 'off',
      ...env,
    },
  });
  const gpuContainers = new GpuContainerLookup();
  const collectors = [
    ...(await createCollectors(config, { clock: systemClock, env, usesGpu: gpuContainers.has })),
    ...extra,
  ];
  const agent = buildAgent(config, {
    log,
    version: 'test',
    env,
    collectors,
    components: defaultComponents(config),
  });
  gpuContainers.bind(agent.store);
  const base = await agent.start();
  const metrics = async () => (await fetch(`${base}/metrics`)).text();
  return {
    agent,
    config,
    base,
    metrics,
    async getJson(path) {
      const res = await fetch(base + path);
      return { status: res.status, body: await res.json() };
    },
    waitForMetrics: (pred, timeoutMs = 30_000) =>
      vi.waitFor(
        async () => {
          const last = await metrics();
          if (pred(last)) return last;
          const lines = last.split('\n').filter((l) => !l.startsWith('#'));
          throw new Error(
            `metrics condition not met in ${timeoutMs} ms; last:\n${lines.join('\n').slice(0, 6000)}`,
          );
        },
        { timeout: timeoutMs, interval: 150 },
      ),
    stop: () => agent.stop(),
  };
}
