/**
 * Typed facts that collectors report and that enrichment and detectors read.
 * Modules add their own kinds with `declare module '.../agent/core/facts.js' { interface Facts { ... } }`.
 */

/** Throttle (clock event) reasons, one 0/1 series each; names follow nvidia-smi's CSV fields. */
export const THROTTLE_REASONS = [
  'gpu_idle',
  'applications_clocks_setting',
  'sw_power_cap',
  'hw_slowdown',
  'sync_boost',
  'sw_thermal_slowdown',
  'hw_thermal_slowdown',
  'hw_power_brake_slowdown',
  'display_clock_setting',
] as const;

/** One throttle reason. */
export type ThrottleReason = (typeof THROTTLE_REASONS)[number];

/** Bit of each reason in NVML's clocks event reasons mask (nvml.h nvmlClocksEventReason*). */
export const THROTTLE_REASON_BITS: Readonly<Record<ThrottleReason, number>> = {
  gpu_idle: 0x1,
  applications_clocks_setting: 0x2,
  sw_power_cap: 0x4,
  hw_slowdown: 0x8,
  sync_boost: 0x10,
  sw_thermal_slowdown: 0x20,
  hw_thermal_slowdown: 0x40,
  hw_power_brake_slowdown: 0x80,
  display_clock_setting: 0x100,
};

/** Clock domains reported per GPU. */
export type ClockDomain = 'graphics' | 'sm' | 'memory' | 'video';

/** One MIG device (GPU instance + compute instance) of a GPU. */
export interface MigDeviceReading {
  readonly index?: number;
  readonly gpuInstanceId: number;
  readonly computeInstanceId: number;
  readonly uuid?: string;
  readonly profile?: string;
  readonly multiprocessorCount?: number;
  readonly memoryTotalBytes?: number;
  readonly memoryUsedBytes?: number;
  readonly memoryFreeBytes?: number;
}

/** ECC error counters of a GPU (totals across memory locations). */
export interface EccCounters {
  readonly enabled?: boolean;
  readonly correctedVolatile?: number;
  readonly uncorrectedVolatile?: number;
  readonly correctedAggregate?: number;
  readonly uncorrectedAggregate?: number;
}

/** Compute mode (nvidia-smi `compute_mode`): who may create compute contexts on the GPU. */
export type ComputeMode = 'default' | 'exclusive_thread' | 'prohibited' | 'exclusive_process';

/** Recovery the driver recommends (nvidia-smi `gpu_recovery_action`); `none` on a healthy GPU. */
export type RecoveryAction = 'none' | 'gpu_reset' | 'node_reboot' | 'drain_p2p' | 'drain_and_reset';

/** Registration of the GPU in an NVLink fabric (nvidia-smi `fabric.state`). */
export type FabricState = 'not_supported' | 'not_started' | 'in_progress' | 'completed';

/** One GPU as read at one moment, normalised to base units; absent means "not reported". */
export interface GpuReading {
  /** NVML index: nvidia-smi's `index`, the order GPUs are listed in. */
  readonly index: number;
  /** Minor device number (/dev/nvidiaN); usually but not always equal to the index. */
  readonly minorNumber?: number;
  readonly uuid: string;
  readonly name?: string;
  readonly pciBusId?: string;
  readonly driverVersion?: string;
  readonly cudaVersion?: string;
  readonly serial?: string;
  readonly vbiosVersion?: string;
  readonly computeCapability?: string;
  readonly utilizationRatio?: number;
  readonly memoryUtilizationRatio?: number;
  readonly encoderUtilizationRatio?: number;
  readonly decoderUtilizationRatio?: number;
  readonly memoryTotalBytes?: number;
  readonly memoryUsedBytes?: number;
  readonly memoryFreeBytes?: number;
  readonly memoryReservedBytes?: number;
  readonly temperatureCelsius?: number;
  readonly memoryTemperatureCelsius?: number;
  readonly powerDrawWatts?: number;
  readonly powerLimitWatts?: number;
  readonly enforcedPowerLimitWatts?: number;
  /** The board's default power limit (what `power.limit` returns to on a reset). */
  readonly powerDefaultLimitWatts?: number;
  readonly energyJoules?: number;
  readonly clocksHz: Readonly<Partial<Record<ClockDomain, number>>>;
  readonly maxClocksHz: Readonly<Partial<Record<ClockDomain, number>>>;
  readonly fanSpeedRatio?: number;
  /** Performance state number: P0 → 0 ... P15 → 15. */
  readonly pstate?: number;
  readonly throttle: Readonly<Partial<Record<ThrottleReason, boolean>>>;
  /** Cumulative time per reason as the driver counts it (clocks_event_reasons_counters), seconds. */
  readonly throttleSeconds: Readonly<Partial<Record<ThrottleReason, number>>>;
  readonly pcieLinkGen?: number;
  /** Highest link generation this GPU and slot allow; below it under load means a degraded link. */
  readonly pcieLinkGenMax?: number;
  readonly pcieLinkWidth?: number;
  /** Widest link (lanes) this GPU and slot allow. */
  readonly pcieLinkWidthMax?: number;
  readonly persistenceMode?: boolean;
  readonly migEnabled?: boolean;
  readonly migDevices?: readonly MigDeviceReading[];
  readonly ecc?: EccCounters;
  readonly retiredPagesSingleBit?: number;
  readonly retiredPagesDoubleBit?: number;
  readonly retiredPagesPending?: boolean;
  readonly remappedRowsCorrectable?: number;
  readonly remappedRowsUncorrectable?: number;
  readonly remappedRowsPending?: boolean;
  readonly remappedRowsFailure?: boolean;
  readonly computeMode?: ComputeMode;
  readonly recoveryAction?: RecoveryAction;
  /** Absent on GPUs outside an NVLink fabric (nvidia-smi prints N/A). */
  readonly fabricState?: FabricState;
}

/**
 * A GPU the driver has attached but cannot open (fallen off the bus, stuck in a reset): its
 * identity as last seen, no values. Its series say so (`gpulse_gpu_up` 0) instead of vanishing.
 */
export interface LostGpu {
  /** Identity only (index, UUID, name, bus, versions); every value is absent. The UUID is empty
   * when the GPU was lost before this agent ever saw it and no source names it. */
  readonly reading: GpuReading;
  /** What the driver said (NVML's "Unknown Error", "GPU is lost. ..."), or why gpulse concluded it. */
  readonly reason: string;
  /** Unix ms the GPU was first seen lost. */
  readonly since: number;
}

/** A process holding GPU memory, as the driver lists it (host PIDs). */
export interface GpuProcess {
  readonly pid: number;
  readonly gpuUuid: string;
  readonly gpuIndex?: number;
  readonly processName: string;
  /** Absent where the driver cannot tell (Windows WDDM). */
  readonly usedMemoryBytes?: number;
  readonly type?: string;
  /** MIG placement, when the GPU is partitioned. */
  readonly gpuInstanceId?: number;
  readonly computeInstanceId?: number;
  /** Container the process runs in (from its cgroup), absent outside containers or when unknown. */
  readonly containerId?: string;
  readonly containerRuntime?: ContainerRuntime;
}

/** Container engine a cgroup path belongs to; `unknown` when the path has an id but no engine mark. */
export type ContainerRuntime = 'docker' | 'containerd' | 'cri-o' | 'podman' | 'unknown';

/** Who a container is, as an engine (Docker, Podman, CRI) names it; joins GPU processes to names. */
export interface ContainerIdentity {
  /** Full 64-hex container id. */
  readonly id: string;
  readonly name: string;
  readonly image: string;
  /** Kubernetes pod and namespace when the container belongs to a pod. */
  readonly pod?: string;
  readonly namespace?: string;
  /** Kubernetes pod UID, where the engine knows it (CRI sandboxes). */
  readonly podUid?: string;
}

/**
 * A device the kubelet gave one container of a pod (pod-resources `List`): a GPU by UUID or by
 * the device plugin's index id, or a MIG device by its UUID.
 */
export interface DeviceAllocation {
  /** Extended resource name, e.g. `nvidia.com/gpu` or `nvidia.com/mig-1g.10gb`. */
  readonly resourceName: string;
  /** The device plugin's id: `GPU-<uuid>`, `MIG-<uuid>`, or an index such as `0` or `0:1`. */
  readonly deviceId: string;
  readonly pod: string;
  readonly namespace: string;
  readonly container: string;
}

/** A device the kubelet can allocate (pod-resources `GetAllocatableResources`). */
export interface AllocatableDevice {
  readonly resourceName: string;
  readonly deviceId: string;
}

/** Per-process GPU utilization over the last sampling window (`nvidia-smi pmon`), host PIDs. */
export interface GpuProcessUtilization {
  readonly pid: number;
  readonly gpuIndex: number;
  readonly processName?: string;
  /** C (compute), G (graphics) or C+G. */
  readonly type?: string;
  /** Share of time the process ran kernels on the GPU (0-1); absent when the GPU cannot tell. */
  readonly smRatio?: number;
  /** Share of time the process read or wrote device memory (0-1). */
  readonly memoryRatio?: number;
  readonly encoderRatio?: number;
  readonly decoderRatio?: number;
  readonly containerId?: string;
  readonly containerRuntime?: ContainerRuntime;
}

/** All fact kinds; optional because each comes from a collector that may be absent. */
export interface Facts {
  gpus: readonly GpuReading[];
  /** GPUs a `gpus` source lists as unreachable; never in `gpus` at the same time. */
  lostGpus: readonly LostGpu[];
  gpuProcesses: readonly GpuProcess[];
  gpuProcessUtilization: readonly GpuProcessUtilization[];
  containers: readonly ContainerIdentity[];
  /** GPUs (and MIG devices) the kubelet allocated to pods. */
  deviceAllocations: readonly DeviceAllocation[];
  /** Devices the kubelet can allocate; absent when the kubelet is too old to say. */
  allocatableDevices: readonly AllocatableDevice[];
}
