// Types of containerd-daemon.mjs (plain JavaScript so that bench scripts share it without a build).

/** The image every pod and container runs (the sandbox image too): static busybox, `sleep`. */
export declare const TEST_IMAGE: string;
/** Path of the CRI API file the agent ships (collectors/cri/proto/api.proto). */
export declare const CRI_PROTO_PATH: string;

/** The Kubernetes identity of a pod, as the kubelet gives it to RunPodSandbox. */
export interface PodMeta {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
}

/** A container started in a pod: its CRI id and the host PID of its process. */
export interface TestContainer {
  readonly id: string;
  readonly pid: number;
}

/** A running private containerd. */
export interface TestContainerd {
  readonly dir: string;
  readonly socket: string;
  /** PID of the containerd process. */
  readonly pid: number | undefined;
  /** containerd's version as its CRI `Version` says (empty with the CRI plugin off). */
  readonly version: string;
  /** The image id (`sha256:...`) of TEST_IMAGE, which the kubelet passes to CreateContainer. */
  readonly imageId: string;
  /** One CRI runtime.v1 RuntimeService call (default deadline 60 s). */
  cri<R>(method: string, request: object, timeoutMs?: number): Promise<R>;
  /** RunPodSandbox with the host network; returns the sandbox id. */
  runPod(pod: PodMeta): Promise<string>;
  /**
   * CreateContainer + StartContainer in a pod (`sleep 100000` unless `command` says otherwise);
   * returns its id and the host PID of its first process.
   */
  startContainer(
    sandboxId: string,
    pod: PodMeta,
    name: string,
    command?: readonly string[],
  ): Promise<TestContainer>;
  /** Stops and removes every pod, stops containerd and unmounts what it mounted; idempotent. */
  stop(): Promise<void>;
}

/** How to start a private containerd. */
export interface ContainerdOptions {
  /** With the CRI plugin (default true); off as Docker's own containerd runs it. */
  readonly cri?: boolean | undefined;
  /** Path of a static busybox to build TEST_IMAGE from; needed with the CRI plugin on. */
  readonly busybox?: string | undefined;
  /** Paths of the containerd and ctr programs (default: found on PATH). */
  readonly containerd?: string | undefined;
  readonly ctr?: string | undefined;
}

/**
 * An OCI image layout tar (path returned) of a root filesystem holding the static busybox at
 * `busybox`, named TEST_IMAGE and running `sleep 100000`: what `ctr images import` takes.
 */
export declare function busyboxOciTar(dir: string, busybox: string): string;
/** Runs `ctr` against the containerd at `socket` in the k8s.io namespace; returns stdout. */
export declare function ctr(socket: string, args: readonly string[], program?: string): string;
/** Unmounts everything mounted under `dir`, innermost first. */
export declare function unmountUnder(dir: string): void;
/** Starts a private containerd in a temp dir; stopped by `stop()`, never by name. */
export declare function startContainerd(options: ContainerdOptions): Promise<TestContainerd>;
