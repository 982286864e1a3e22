import type { Clock } from '../agent/clock.js';
import type { AgentConfig } from '../agent/config.js';
import type { SpawnFn } from '../agent/process.js';
import type { Collector } from '../agent/types.js';
import { createHostCollector } from './host/host.js';
import { createNvidiaSmiCollector } from './nvidia-smi/nvidia-smi.js';
import { createTegrastatsCollector } from './tegrastats/tegrastats.js';

/** I/O the collectors share, injected by the agent (tests pass their own). */
export interface CollectorDeps {
  readonly clock: Clock;
  readonly env: NodeJS.ProcessEnv;
  readonly spawnFn?: SpawnFn;
  readonly random?: () => number;
}

/** One entry of the explicit collector registry. */
interface CollectorEntry {
  readonly name: string;
  readonly enabled: (config: AgentConfig) => boolean;
  readonly create: (config: AgentConfig, deps: CollectorDeps) => Collector;
}

/** Every collector gpulse knows, in start order. */
export const collectorRegistry: readonly CollectorEntry[] = [
  {
    name: 'nvidia-smi',
    enabled: (c) => c.collectors['nvidia-smi'].mode !== 'off',
    create: (c, d) => createNvidiaSmiCollector(c.collectors['nvidia-smi'], d),
  },
  {
    name: 'tegrastats',
    enabled: (c) => c.collectors.tegrastats.mode !== 'off',
    create: (c, d) =>
      createTegrastatsCollector(c.collectors.tegrastats, {
        ...d,
        // The GPU's UUID comes from nvidia-smi where it runs (JetPack 6), so both agree on it.
        nvidiaSmi:
          c.collectors['nvidia-smi'].mode === 'off' ? undefined : c.collectors['nvidia-smi'].binary,
      }),
  },
  {
    name: 'host',
    enabled: (c) => c.collectors.host.mode !== 'off',
    create: (c) => createHostCollector(c.collectors.host),
  },
];

/** Instantiates the enabled collectors. */
export function createCollectors(config: AgentConfig, deps: CollectorDeps): Collector[] {
  return collectorRegistry.filter((e) => e.enabled(config)).map((e) => e.create(config, deps));
}
