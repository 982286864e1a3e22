import type { Clock } from '../agent/clock.js';
import type { AgentConfig } from '../agent/config.js';
import type { SpawnFn } from '../agent/process.js';
import type { Collector } from '../agent/types.js';

/** I/O the collectors share, injected by the agent (tests pass their own). */
export interface CollectorDeps {
  readonly clock: Clock;
  readonly env: NodeJS.ProcessEnv;
  readonly spawnFn?: SpawnFn;
  readonly random?: () => number;
  /** Whether a GPU process runs in a container (see GpuContainerLookup); the docker collector asks. */
  readonly usesGpu?: (containerId: string) => boolean;
}

/** One entry of the explicit collector registry. */
interface CollectorEntry {
  readonly name: string;
  readonly enabled: (config: AgentConfig) => boolean;
  /** Imports the collector's module only when it is enabled: a turned-off one costs no memory. */
  readonly create: (config: AgentConfig, deps: CollectorDeps) => Promise<Collector>;
}

/** Every collector gpulse knows, in start order. */
export const collectorRegistry: readonly CollectorEntry[] = [
  {
    name: 'nvidia-smi',
    enabled: (c) => c.collectors['nvidia-smi'].mode !== 'off',
    create: async (c, d) =>
      (await import('./nvidia-smi/nvidia-smi.js')).createNvidiaSmiCollector(
        c.collectors['nvidia-smi'],
        { ...d, procRoot: c.procRoot },
      ),
  },
  {
    name: 'tegrastats',
    enabled: (c) => c.collectors.tegrastats.mode !== 'off',
    create: async (c, d) =>
      (await import('./tegrastats/tegrastats.js')).createTegrastatsCollector(
        c.collectors.tegrastats,
        {
          ...d,
          // The GPU's UUID comes from nvidia-smi where it runs (JetPack 6), so both agree on it.
          nvidiaSmi:
            c.collectors['nvidia-smi'].mode === 'off'
              ? undefined
              : c.collectors['nvidia-smi'].binary,
        },
      ),
  },
  {
    name: 'host',
    enabled: (c) => c.collectors.host.mode !== 'off',
    // One /proc setting serves attribution and host series; the collector's own key overrides it.
    create: async (c) =>
      (await import('./host/host.js')).createHostCollector({
        ...c.collectors.host,
        procRoot: c.collectors.host.procRoot ?? c.procRoot,
      }),
  },
  {
    name: 'dcgm',
    enabled: (c) => c.collectors.dcgm.mode !== 'off',
    create: async (c, d) =>
      (await import('./dcgm/dcgm.js')).createDcgmCollector(c.collectors.dcgm, d),
  },
  {
    name: 'kmsg',
    enabled: (c) => c.collectors.kmsg.mode !== 'off',
    create: async (c) => (await import('./kmsg/kmsg.js')).createKmsgCollector(c.collectors.kmsg),
  },
  {
    name: 'docker',
    enabled: (c) => c.collectors.docker.mode !== 'off',
    create: async (c, deps) =>
      (await import('./docker/docker-collector.js')).createDockerCollector(c.collectors.docker, {
        clock: deps.clock,
        env: deps.env,
        random: deps.random,
        procRoot: c.procRoot,
        cgroupRoot: c.cgroupRoot,
        usesGpu: deps.usesGpu,
      }),
  },
];

/** Instantiates the enabled collectors, in registry order. */
export async function createCollectors(
  config: AgentConfig,
  deps: CollectorDeps,
): Promise<Collector[]> {
  return Promise.all(
    collectorRegistry.filter((e) => e.enabled(config)).map((e) => e.create(config, deps)),
  );
}
