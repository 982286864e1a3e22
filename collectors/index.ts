/**
 * The collector registry: one line per collector. Its descriptor (the folder's `index.ts`) gives
 * the agent, the CLI, the configuration schema, the edge preset and the docs all they need.
 */
import type { AgentConfig } from '../agent/config.js';
import type { Collector } from '../agent/core/types.js';
import { criCollector } from './cri/index.js';
import { dcgmCollector } from './dcgm/index.js';
import type {
  CollectorDeps,
  CollectorDescriptor,
  SharedSettings,
  SimulatedMachine,
} from './descriptor.js';
import { dockerCollector } from './docker/index.js';
import { hostCollector } from './host/index.js';
import { kmsgCollector } from './kmsg/index.js';
import { nvidiaSmiCollector } from './nvidia-smi/index.js';
import { podResourcesCollector } from './pod-resources/index.js';
import { tegrastatsCollector } from './tegrastats/index.js';

export type { CollectorDeps } from './descriptor.js';

/** Every collector gpulse knows, in start order. */
export const collectorRegistry = [
  nvidiaSmiCollector,
  tegrastatsCollector,
  hostCollector,
  dcgmCollector,
  kmsgCollector,
  dockerCollector,
  criCollector,
  podResourcesCollector,
] as const;

/** A descriptor whose section type is not known here (the registry's, or a test's own). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- defineCollector checks each create against its own schema; here create is handed the section validated under its name
export type AnyCollectorDescriptor = CollectorDescriptor<string, any>;

/** One registered collector. */
export type RegisteredCollector = (typeof collectorRegistry)[number];

/** The configuration schema of each collector, by name. */
export type CollectorSchemas = {
  [D in RegisteredCollector as D['name']]: Awaited<ReturnType<D['loadSchema']>>;
};

/** Loads every collector's configuration schema (only configuration validation needs zod). */
export async function loadCollectorSchemas(
  registry: readonly RegisteredCollector[] = collectorRegistry,
): Promise<CollectorSchemas> {
  const entries = await Promise.all(registry.map(async (d) => [d.name, await d.loadSchema()]));
  return Object.fromEntries(entries) as CollectorSchemas;
}

/** Instantiates the enabled collectors, in registry order. */
export async function createCollectors(
  config: AgentConfig,
  deps: CollectorDeps,
  registry: readonly AnyCollectorDescriptor[] = collectorRegistry,
): Promise<Collector[]> {
  const sections = config.collectors as Readonly<Record<string, { mode?: string } | undefined>>;
  const shared: SharedSettings = {
    procRoot: config.procRoot,
    cgroupRoot: config.cgroupRoot,
    collectors: sections,
  };
  return Promise.all(
    registry
      .filter((d) => sections[d.name] !== undefined && sections[d.name]?.mode !== 'off')
      .map((d) => d.create(sections[d.name], shared, deps)),
  );
}

/** The collector sections of `gpulse simulate`: each collector's simulate hook, where it has one. */
export function simulatedCollectors(
  collectors: AgentConfig['collectors'],
  machine: SimulatedMachine,
): AgentConfig['collectors'] {
  const sections: Record<string, unknown> = { ...collectors };
  for (const d of collectorRegistry as readonly AnyCollectorDescriptor[]) {
    if (d.simulate) sections[d.name] = d.simulate(sections[d.name], machine);
  }
  return sections as AgentConfig['collectors'];
}
