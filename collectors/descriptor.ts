/**
 * The one seam between the agent and a collector: everything the agent, the CLI, the generated
 * docs and the tests need to know of it. A collector's folder exports one descriptor from its
 * `index.ts`; `collectors/index.ts` lists them. Nothing here loads zod or the collector itself.
 */
import type { z } from 'zod';
import type { Clock } from '../agent/core/clock.js';
import type { Check } from '../agent/doctor/types.js';
import type { Facts } from '../agent/core/facts.js';
import type { SpawnFn } from '../agent/process/process.js';
import type { Collector } from '../agent/core/types.js';
import type { JetsonDevice } from './simulation/jetson.js';

/** I/O the collectors share, injected by the agent (tests pass their own). */
export interface CollectorDeps {
  readonly clock: Clock;
  readonly env: NodeJS.ProcessEnv;
  readonly spawnFn?: SpawnFn;
  readonly random?: () => number;
  /** Whether a GPU process runs in a container (see GpuContainerLookup); the docker collector asks. */
  readonly usesGpu?: (containerId: string) => boolean;
  /** Containers of GPU processes no collector names yet (see GpuContainerLookup); the cri collector asks. */
  readonly unnamedGpuContainers?: () => ReadonlySet<string>;
}

/**
 * The agent-wide settings a collector may read besides its own section. (Typed apart from
 * AgentConfig, which is built from the registry: a descriptor naming it would be circular.)
 */
export interface SharedSettings {
  /** The host's /proc, for GPU process attribution. */
  readonly procRoot: string;
  /** The host's cgroup mount, for container stats. */
  readonly cgroupRoot: string;
  /** Every collector's validated section, by name (a collector reads a sibling's rarely). */
  readonly collectors: Readonly<Record<string, unknown>>;
}

/** The machine `gpulse simulate` stands in for, as the collectors' simulate hooks see it. */
export interface SimulatedMachine {
  /** The Jetson of a Jetson profile (undefined for a discrete-GPU profile or a capture). */
  readonly jetson?: JetsonDevice;
  /** A real capture replayed instead of a profile. */
  readonly capture?: string;
  /** The capture is tegrastats output rather than nvidia-smi's. */
  readonly tegrastatsCapture: boolean;
}

/** A default of the edge preset: a path inside the collector's section and its value. */
export type PresetDefault = readonly [readonly string[], unknown];

/** What the registry knows of one collector. */
export interface CollectorDescriptor<Name extends string, Schema extends z.ZodType> {
  /** Its key under `collectors:` in the configuration and its `collector` label. */
  readonly name: Name;
  /** The fact kinds its output carries (for derivers and components: each read kind needs one). */
  readonly produces: readonly (keyof Facts)[];
  /**
   * The schema of its configuration section, loaded only where configuration is validated. Its
   * fields' setting() marks become the CLI's env variables and flags (agent/settings.generated.ts).
   */
  readonly loadSchema: () => Promise<Schema>;
  /** What the edge preset changes in its section (explicit settings still win). */
  readonly edgeDefaults?: readonly PresetDefault[];
  /** Imports the collector only when it is enabled, so a turned-off one costs no memory. */
  readonly create: (
    section: z.output<Schema>,
    shared: SharedSettings,
    deps: CollectorDeps,
  ) => Promise<Collector>;
  /** Imports the modules that declare its metric families (for the README and coverage checks). */
  readonly loadMetrics: () => Promise<unknown>;
  /** Its `gpulse doctor` check, loaded only by the doctor. */
  readonly loadDoctorCheck?: () => Promise<Check>;
  /** Points the collector at its simulated tool under `gpulse simulate` (absent: runs as configured). */
  readonly simulate?: (section: z.output<Schema>, machine: SimulatedMachine) => z.output<Schema>;
}

/** Keeps a descriptor's literal name and schema type, so the configuration type follows. */
export function defineCollector<const Name extends string, Schema extends z.ZodType>(
  descriptor: CollectorDescriptor<Name, Schema>,
): CollectorDescriptor<Name, Schema> {
  return descriptor;
}
