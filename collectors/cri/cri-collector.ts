import { existsSync } from 'node:fs';
import type { Clock } from '../../agent/core/clock.js';
import { CollectorError, errorMessage, NoDataError } from '../../agent/core/errors.js';
import type { ContainerIdentity } from '../../agent/core/facts.js';
import { counter, gauge, SampleBuilder } from '../../agent/core/metric.js';
import type { CollectContext, CollectorOutput, PolledCollector } from '../../agent/core/types.js';
import { GrpcCallError } from '../grpc-client.js';
import type { CriConfig } from './config.js';
import { DEFAULT_CRI_SOCKETS } from './sockets.js';
import {
  CriClient,
  type CriContainer,
  type CriImage,
  type CriPodSandbox,
  type CriVersion,
} from './cri-client.js';

/** Collector name (config key, `collector` label, log field). */
export const CRI = 'cri';

/** Metric families of the cri collector. */
export const criMetrics = {
  requests: counter(
    'gpulse_cri_requests_total',
    'Calls made to the CRI runtime, by method and gRPC status (OK or the status name).',
    ['method', 'code'],
  ),
  runtime: gauge(
    'gpulse_cri_runtime_info',
    'The CRI runtime answering on the socket: its name, version and CRI API version; always 1.',
    ['runtime', 'version', 'api_version', 'socket'],
  ),
  containers: gauge(
    'gpulse_cri_containers',
    'Containers the CRI runtime listed at the last lookup (their names label GPU processes).',
  ),
} as const;

// A runtime that stopped answering is asked again at most this far apart, however long the
// setting for unknown ids: a restarted containerd should be noticed within a minute.
const MAX_FAILURE_RETRY_MS = 60_000;

/** What the cri collector needs from outside, injected. */
export interface CriCollectorDeps {
  readonly clock: Clock;
  /** Containers of GPU processes no collector names yet (the agent's GpuContainerLookup). */
  readonly unnamedGpuContainers?: () => ReadonlySet<string>;
  /** Whether a socket path exists (tests). */
  readonly exists?: (path: string) => boolean;
  /** The sockets looked for when none is configured (tests). */
  readonly defaultSockets?: readonly string[];
}

/** An id the runtime did not list: asked about again at `retryAt`. */
interface Unknown {
  attempts: number;
  retryAt: number;
}

/** Why the last attempt failed, and when (or on what) the next one is made. */
interface Failure {
  readonly error: Error;
  readonly kind: FailureKind;
  readonly attempts: number;
  readonly retryAt: number;
  /** A state that only a change on the node ends (wrong API, no CRI): retried only for a new id. */
  readonly onlyOnMiss: boolean;
}

/** Builds the cri collector. */
export function createCriCollector(config: CriConfig, deps: CriCollectorDeps): PolledCollector {
  return new CriCollector(config, deps);
}

/**
 * Names the containers of GPU processes that Docker and Podman do not run, from the CRI runtime
 * (containerd, CRI-O): Kubernetes container name, image, pod, namespace and pod UID. It lists
 * containers and sandboxes only when a GPU process sits in a container it has not listed yet,
 * and backs off on ids the runtime does not know, so a node where nothing changes sees no call.
 */
class CriCollector implements PolledCollector {
  readonly kind = 'polled';
  readonly name = CRI;
  readonly intervalMs: number;
  /** Version, the two listings (together) and ListImages may each take a call's timeout. */
  readonly timeoutMs: number;
  private client: CriClient | undefined;
  private runtime: CriVersion | undefined;
  private known = new Map<string, ContainerIdentity>();
  private readonly unknown = new Map<string, Unknown>();
  /** Readable names of images by id and repo digest, from the last ListImages. */
  private images = new Map<string, string>();
  private failure: Failure | undefined;
  private readonly calls = new Map<string, number>();
  private output: CollectorOutput | undefined;

  constructor(
    private readonly config: CriConfig,
    private readonly deps: CriCollectorDeps,
  ) {
    this.intervalMs = config.interval;
    this.timeoutMs = config.timeout * 3;
  }

  async collect(ctx: CollectContext): Promise<CollectorOutput> {
    const now = this.deps.clock.now();
    const wanted = this.deps.unnamedGpuContainers?.() ?? new Set<string>();
    for (const id of this.unknown.keys()) if (!wanted.has(id)) this.unknown.delete(id);
    const misses = [...wanted].filter(
      (id) => !this.known.has(id) && (this.unknown.get(id)?.retryAt ?? 0) <= now,
    );
    const failure = this.failure;
    if (failure && (now < failure.retryAt || (failure.onlyOnMiss && misses.length === 0))) {
      // Not due: the state (and its one log line) stays as it is, and the runtime is left alone.
      throw failure.error;
    }
    try {
      if (!this.client && misses.length === 0) {
        // Nothing to name: the socket is looked for (one stat), but gRPC is neither loaded nor
        // called until a GPU container needs a name. On a Docker host, whose own containerd
        // serves no CRI, that is never.
        this.findSocket();
        this.failure = undefined;
        return this.current();
      }
      const client = await this.connect();
      if (!this.runtime) {
        this.runtime = await this.askVersion(client, ctx.signal);
        ctx.log.info(
          {
            socket: client.socket,
            runtime: this.runtime.runtime_name,
            version: this.runtime.runtime_version,
            apiVersion: this.runtime.runtime_api_version,
          },
          'CRI runtime found',
        );
      }
      if (misses.length > 0) await this.list(client, misses, now, ctx.signal);
      this.failure = undefined;
    } catch (err) {
      throw this.failed(err, now);
    }
    return this.current();
  }

  async close(): Promise<void> {
    this.disconnect();
    await Promise.resolve();
  }

  /** The socket to use now: the configured one(s) or the defaults, the first that exists. */
  private findSocket(): string {
    const exists = this.deps.exists ?? existsSync;
    const configured = this.config.socket;
    const candidates = configured ?? this.deps.defaultSockets ?? DEFAULT_CRI_SOCKETS;
    const socket = candidates.find((s) => exists(s));
    if (socket) return socket;
    const message = configured
      ? `no CRI socket at ${configured.join(' or ')} (collectors.cri.socket, GPULSE_CRI_SOCKET): pod and container names of GPU processes stay empty until it exists`
      : `no CRI socket: looked for ${candidates.join(', ')}; set collectors.cri.socket (GPULSE_CRI_SOCKET, --cri-socket) to the runtime's socket, or GPULSE_CRI_MODE=off`;
    throw new Missing('no_socket', message);
  }

  /** The client of the socket found now, opened once until a failure drops it. */
  private async connect(): Promise<CriClient> {
    if (this.client) return this.client;
    const socket = this.findSocket();
    this.client = await CriClient.open(socket, this.config.timeout, (method, code) => {
      const key = `${method}\u0000${code}`;
      this.calls.set(key, (this.calls.get(key) ?? 0) + 1);
      this.output = undefined;
    });
    return this.client;
  }

  /** `Version`, telling an old runtime (v1alpha2 only) from a socket that serves no CRI at all. */
  private async askVersion(client: CriClient, signal: AbortSignal): Promise<CriVersion> {
    try {
      return await client.version(signal);
    } catch (err) {
      if (!(err instanceof GrpcCallError) || err.codeName !== 'UNIMPLEMENTED') throw err;
      if (await client.servesV1alpha2(signal)) {
        throw new Lasting(
          'cri_v1alpha2',
          `the runtime at ${client.socket} only serves CRI v1alpha2; containerd ≥ 1.6 / CRI-O ≥ 1.20 needed (runtime.v1)`,
        );
      }
      throw new Missing(
        'no_cri',
        `${client.socket} answers gRPC but serves no CRI (containerd with its cri plugin disabled, as Docker's own is): point collectors.cri.socket (GPULSE_CRI_SOCKET) at the runtime the kubelet uses, or set GPULSE_CRI_MODE=off`,
        true,
      );
    }
  }

  /**
   * One listing: every container and sandbox (and the images, when a container names its image
   * only by id), replacing what was known, so removed containers drop out. Missed ids still not
   * listed wait before they are asked about again.
   */
  private async list(
    client: CriClient,
    misses: readonly string[],
    now: number,
    signal: AbortSignal,
  ): Promise<void> {
    const [containers, sandboxes] = await Promise.all([
      client.listContainers(signal),
      client.listPodSandbox(signal),
    ]);
    const imageIds = containers.map((c) => imageIdOf(c)).filter((id) => id !== undefined);
    if (imageIds.some((id) => !this.images.has(id))) {
      this.images = imageNames(await client.listImages(signal));
    }
    const pods = new Map(sandboxes.map((s) => [s.id, s]));
    this.known = new Map(
      containers.map((c) => [c.id, identityOf(c, pods.get(c.pod_sandbox_id), this.images)]),
    );
    for (const id of misses) {
      if (this.known.has(id)) {
        this.unknown.delete(id);
        continue;
      }
      const attempts = (this.unknown.get(id)?.attempts ?? 0) + 1;
      const wait = Math.min(
        this.config.maxRetryAfter,
        this.config.retryAfter * 2 ** Math.min(attempts - 1, 30),
      );
      this.unknown.set(id, { attempts, retryAt: now + wait });
    }
    this.output = undefined;
  }

  /** Records a failed attempt and returns the error the runner classifies. */
  private failed(err: unknown, now: number): Error {
    const { error, kind } = classify(err, this.client?.socket, this.config.mode);
    // Backoff grows while the same kind of failure repeats, and starts over on a new one.
    const attempts = (this.failure?.kind === kind ? this.failure.attempts : 0) + 1;
    if (kind === 'no_socket') {
      // Looking for the socket costs one stat: done every tick, so a runtime started later is seen.
      this.failure = { error, kind, attempts, retryAt: now, onlyOnMiss: false };
      return error;
    }
    const onlyOnMiss = kind === 'lasting';
    const cap = onlyOnMiss
      ? this.config.maxRetryAfter
      : Math.min(this.config.maxRetryAfter, MAX_FAILURE_RETRY_MS);
    const wait = Math.min(cap, this.config.retryAfter * 2 ** Math.min(attempts - 1, 30));
    this.failure = { error, kind, attempts, retryAt: now + wait, onlyOnMiss };
    // A runtime that failed is asked its version again once back (it may have been upgraded).
    this.disconnect();
    return error;
  }

  private disconnect(): void {
    this.client?.close();
    this.client = undefined;
    this.runtime = undefined;
  }

  /** The facts and self series; the same object while nothing changed (the store skips it). */
  private current(): CollectorOutput {
    if (this.output) return this.output;
    const b = new SampleBuilder();
    for (const [key, n] of this.calls) {
      const [method = '', code = ''] = key.split('\u0000');
      b.add(criMetrics.requests, { method, code }, n);
    }
    const r = this.runtime;
    if (r && this.client) {
      b.add(
        criMetrics.runtime,
        {
          runtime: r.runtime_name,
          version: r.runtime_version,
          api_version: r.runtime_api_version,
          socket: this.client.socket,
        },
        1,
      );
    }
    b.add(criMetrics.containers, {}, this.known.size);
    this.output = { samples: b.build(), facts: { containers: [...this.known.values()] } };
    return this.output;
  }
}

/** A state where there is nothing to ask (no socket, no CRI): no_data in auto mode. */
class Missing extends Error {
  constructor(
    readonly reason: string,
    message: string,
    /** Only a change on the node ends it: asked again only for a new id. */
    readonly lasting = false,
  ) {
    super(message);
  }
}

/** A failure that lasts until the runtime or the agent's rights change (API too old, no access). */
class Lasting extends CollectorError {}

/** How a failure is retried: every tick (a stat), for new ids only, or with backoff. */
type FailureKind = 'no_socket' | 'lasting' | 'transient';

/**
 * The error the runner sees (NoDataError for "nothing here" in auto mode, else a CollectorError
 * whose message carries the fix) and how it is retried.
 */
function classify(
  err: unknown,
  socket: string | undefined,
  mode: CriConfig['mode'],
): { error: Error; kind: FailureKind } {
  if (err instanceof Missing) {
    const error =
      mode === 'required'
        ? new CollectorError(err.reason, err.message)
        : new NoDataError(err.reason, err.message);
    return {
      error,
      kind: err.reason === 'no_socket' ? 'no_socket' : err.lasting ? 'lasting' : 'transient',
    };
  }
  if (err instanceof Lasting) return { error: err, kind: 'lasting' };
  const where = socket ?? 'the CRI socket';
  const detail = errorMessage(err);
  if (/EACCES|EPERM|permission denied/i.test(detail)) {
    const error = new CollectorError(
      'permission_denied',
      `permission denied on ${where}: run gpulse as root, or mount the socket read-only into its container and run with a group that may use it (supplementalGroups)`,
    );
    return { error, kind: 'lasting' };
  }
  const reason = err instanceof GrpcCallError ? err.codeName.toLowerCase() : 'exception';
  return {
    error: new CollectorError(reason, `CRI runtime at ${where}: ${detail}`, { cause: err }),
    kind: 'transient',
  };
}

/** An image given only as an id (`sha256:<hex>`), which ListImages turns into a name. */
function isImageId(image: string): boolean {
  return /^(?:sha256:)?[0-9a-f]{64}$/.test(image);
}

/** The image id a container names instead of a readable image, if it does. */
function imageIdOf(c: CriContainer): string | undefined {
  const spec = c.image?.user_specified_image || c.image?.image || '';
  if (spec && !isImageId(spec)) return undefined;
  return spec || c.image_ref || undefined;
}

/** Readable image names by image id and by repo digest. */
function imageNames(images: readonly CriImage[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const i of images) {
    const name = i.repo_tags[0] ?? i.repo_digests[0];
    if (!name) continue;
    out.set(i.id, name);
    for (const d of i.repo_digests) out.set(d, name);
  }
  return out;
}

/** A container's identity: CRI names, the pod from its sandbox (kubelet labels as a fallback). */
export function identityOf(
  c: CriContainer,
  sandbox: CriPodSandbox | undefined,
  images: ReadonlyMap<string, string>,
): ContainerIdentity {
  const labels = c.labels;
  const spec = c.image?.user_specified_image || c.image?.image || '';
  const id = imageIdOf(c);
  const image = id === undefined ? spec : (images.get(id) ?? images.get(c.image_ref) ?? id);
  const pod = sandbox?.metadata?.name || labels['io.kubernetes.pod.name'];
  const namespace = sandbox?.metadata?.namespace || labels['io.kubernetes.pod.namespace'];
  const podUid = sandbox?.metadata?.uid || labels['io.kubernetes.pod.uid'];
  return {
    id: c.id,
    name: c.metadata?.name || labels['io.kubernetes.container.name'] || c.id.slice(0, 12),
    image,
    ...(pod ? { pod } : {}),
    ...(namespace ? { namespace } : {}),
    ...(podUid ? { podUid } : {}),
  };
}
