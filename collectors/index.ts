import type { Clock } from '../agent/clock.js';
import type { AgentConfig } from '../agent/config.js';
import type { SpawnFn } from '../agent/process.js';
import type { Collector } from '../agent/types.js';
import { createDcgmCollector } from './dcgm/dcgm.js';
import { createHostCollector } from './host/host.js';
import { createKmsgCollector } from './kmsg/kmsg.js';
import { createDockerCollector } from './docker/docker-collector.js';
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
    create: (c, d) =>
      createNvidiaSmiCollector(c.collectors['nvidia-smi'], { ...d, procRoot: c.procRoot }),
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
    // One /proc setting serves attribution and host series; the collector's own key overrides it.
    create: (c) =>
      createHostCollector({
        ...c.collectors.host,
        procRoot: c.collectors.host.procRoot ?? c.procRoot,
      }),
  },
  {
    name: 'dcgm',
    enabled: (c) => c.collectors.dcgm.mode !== 'off',
    create: (c, d) => createDcgmCollector(c.collectors.dcgm, d),
  },
  {
    name: 'kmsg',
    enabled: (c) => c.collectors.kmsg.mode !== 'off',
    create: (c) => createKmsgCollector(c.collectors.kmsg),
  },
  {
    name: 'docker',
    enabled: (c) => c.collectors.docker.mode !== 'off',
    create: (c, deps) =>
      createDockerCollector(c.collectors.docker, {
        clock: deps.clock,
        env: deps.env,
        random: deps.random,
        procRoot: c.procRoot,
        cgroupRoot: c.cgroupRoot,
      }),
  },
];

/** Instantiates the enabled collectors. */
export function createCollectors(config: AgentConfig, deps: CollectorDeps): Collector[] {
  return collectorRegistry.filter((e) => e.enabled(config)).map((e) => e.create(config, deps));
}
