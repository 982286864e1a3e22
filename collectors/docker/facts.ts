/** Facts the docker collector reports, added to the agent's `Facts` by module augmentation. */

/** Where a container's GPU assignment was read. */
export type GpuRequestSource = 'device_requests' | 'devices' | 'nvidia_visible_devices';

/** One GPU a container asked for: an index, a UUID (GPU-/MIG-), `nvidiaN`, `all` or `count:N`. */
export interface GpuRequest {
  readonly device: string;
  readonly source: GpuRequestSource;
}

/** A container as inspected: identity, state and what it asked for. */
export interface DockerContainer {
  readonly id: string;
  /** Docker name without the leading slash. */
  readonly name: string;
  /** Image as the container was created with it (`busybox:test`), not the image id. */
  readonly image: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly pod?: string;
  readonly namespace?: string;
  /** `io.kubernetes.container.name`: the container's name in its pod. */
  readonly kubernetesContainer?: string;
  readonly composeProject?: string;
  readonly composeService?: string;
  /** created, running, paused, restarting, removing, exited, dead. */
  readonly state: string;
  /** Host PID of the container's first process while it runs. */
  readonly pid?: number;
  /** Unix ms the container was created. */
  readonly createdAt?: number;
  /** Unix ms of the current (or last) run's start and end. */
  readonly startedAt?: number;
  readonly finishedAt?: number;
  /** Restarts done by the restart policy, as the engine counts them. */
  readonly restartCount: number;
  readonly exitCode?: number;
  readonly oomKilled: boolean;
  /** HostConfig.Memory when set (0 means unlimited). */
  readonly memoryLimitBytes?: number;
  /** NanoCpus, or CpuQuota/CpuPeriod, in cores. */
  readonly cpuLimitCores?: number;
  readonly networkMode?: string;
  readonly tty: boolean;
  readonly logDriver?: string;
  readonly gpus: readonly GpuRequest[];
  /** GPU requests past collectors.docker.maxGpuRequests (or with names no GPU has), not kept. */
  readonly gpusDropped?: number;
  /** OCI runtime (`HostConfig.Runtime`): `nvidia` on Jetson and legacy nvidia-docker hosts. */
  readonly runtime?: string;
}

/** Resource usage of one running container at one moment, base units; absent = not readable. */
export interface ContainerStats {
  readonly cpuSeconds?: number;
  /** Cores used between this sample and the previous one of the same run. */
  readonly cpuCores?: number;
  readonly memoryUsageBytes?: number;
  readonly memoryLimitBytes?: number;
  /** Usage minus inactive page cache (what the kernel cannot reclaim cheaply; what OOM watches). */
  readonly memoryWorkingSetBytes?: number;
  readonly networkReceiveBytes?: number;
  readonly networkTransmitBytes?: number;
  readonly blockReadBytes?: number;
  readonly blockWriteBytes?: number;
  readonly pids?: number;
  /** Value of the cgroup's `oom_kill` counter (v1 memory.oom_control, v2 memory.events). */
  readonly oomKillCounter?: number;
  /** Where the values came from. */
  readonly source: 'cgroup' | 'api';
}

/** How an OOM kill was seen; one kill seen several ways is counted once. */
export type OomSource = 'oom_event' | 'oom_killed' | 'cgroup_counter' | 'exit_137_at_limit';

/** A container record kept for events: one OOM kill, GPU OOM or restart, numbered in order. */
export interface ContainerIncident {
  /** Monotonic within the collector's life; events are emitted once per seq. */
  readonly seq: number;
  readonly kind: 'oom_kill' | 'gpu_oom' | 'restart';
  /** Unix ms when it happened (engine or log time). */
  readonly at: number;
  readonly containerId: string;
  readonly details: Readonly<Record<string, unknown>>;
}

/** Label identity of a container series (a type alias: label maps take it as a string record). */
export type ContainerLabels = {
  readonly container_id: string;
  readonly container_name: string;
  readonly image: string;
  readonly pod: string;
  readonly namespace: string;
};

/** What the docker collector knows about one container, for detectors and the events API. */
export interface DockerContainerFact {
  readonly container: DockerContainer;
  readonly labels: ContainerLabels;
  readonly stats?: ContainerStats;
  readonly oomKills: number;
  readonly gpuOoms: number;
  /** Unix ms when the container was removed (kept until the retention ends). */
  readonly removedAt?: number;
}

declare module '../../agent/core/facts.js' {
  interface Facts {
    dockerContainers: readonly DockerContainerFact[];
    containerIncidents: readonly ContainerIncident[];
  }
}
