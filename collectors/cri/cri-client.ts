/**
 * The few CRI `runtime.v1` calls gpulse makes, on a unix socket: the runtime's version, and the
 * containers, pod sandboxes and images it lists. Each call's outcome is told to `onCall` (the
 * collector counts them by method and status).
 */
import type * as grpc from '@grpc/grpc-js';
import {
  callUnary,
  GrpcCallError,
  LOCAL_CHANNEL_OPTIONS,
  loadGrpcService,
  unixTarget,
  type GrpcService,
} from '../grpc-client.js';

/** The CRI API file (Kubernetes cri-api, Apache-2.0), copied to dist/ by the build. */
export const CRI_PROTO = new URL('./proto/api.proto', import.meta.url);

/** `Version`: who answers on the socket. */
export interface CriVersion {
  readonly version: string;
  readonly runtime_name: string;
  readonly runtime_version: string;
  readonly runtime_api_version: string;
}

/** The fields of a CRI `Container` gpulse reads. */
export interface CriContainer {
  readonly id: string;
  readonly pod_sandbox_id: string;
  readonly metadata: { readonly name: string; readonly attempt: number } | null;
  readonly image: { readonly image: string; readonly user_specified_image?: string } | null;
  readonly image_ref: string;
  readonly state: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** The fields of a CRI `PodSandbox` gpulse reads. */
export interface CriPodSandbox {
  readonly id: string;
  readonly metadata: {
    readonly name: string;
    readonly uid: string;
    readonly namespace: string;
  } | null;
  readonly state: string;
}

/** The fields of a CRI `Image` gpulse reads. */
export interface CriImage {
  readonly id: string;
  readonly repo_tags: readonly string[];
  readonly repo_digests: readonly string[];
}

/** Outcome of one call: the method and `OK` or the gRPC status name. */
export type CallListener = (method: string, code: string) => void;

let loading: Promise<{ runtime: GrpcService; images: GrpcService }> | undefined;

/** Loads the two CRI services once per process (proto parsing costs tens of milliseconds). */
function loadServices(): Promise<{ runtime: GrpcService; images: GrpcService }> {
  loading ??= Promise.all([
    loadGrpcService(CRI_PROTO, 'runtime.v1', 'RuntimeService'),
    loadGrpcService(CRI_PROTO, 'runtime.v1', 'ImageService'),
  ]).then(([runtime, images]) => ({ runtime, images }));
  return loading;
}

/** A connection to one CRI runtime socket. */
export class CriClient {
  private constructor(
    readonly socket: string,
    private readonly services: { runtime: GrpcService; images: GrpcService },
    private readonly runtime: grpc.Client,
    private readonly images: grpc.Client,
    private readonly timeoutMs: number,
    private readonly onCall: CallListener,
  ) {}

  /** A client of the runtime on `socket` (no call is made until one is asked for). */
  static async open(socket: string, timeoutMs: number, onCall: CallListener): Promise<CriClient> {
    const services = await loadServices();
    const { grpc } = services.runtime;
    const credentials = grpc.credentials.createInsecure();
    const target = unixTarget(socket);
    const runtime = new services.runtime.Client(target, credentials, LOCAL_CHANNEL_OPTIONS);
    const images = new services.images.Client(target, credentials, LOCAL_CHANNEL_OPTIONS);
    return new CriClient(socket, services, runtime, images, timeoutMs, onCall);
  }

  /** The runtime's name and versions. */
  version(signal?: AbortSignal): Promise<CriVersion> {
    return this.call<CriVersion>('runtime', 'Version', signal);
  }

  /** Every container the runtime knows (no filter: running and exited). */
  async listContainers(signal?: AbortSignal): Promise<readonly CriContainer[]> {
    const r = await this.call<{ containers: CriContainer[] }>('runtime', 'ListContainers', signal);
    return r.containers;
  }

  /** Every pod sandbox the runtime knows. */
  async listPodSandbox(signal?: AbortSignal): Promise<readonly CriPodSandbox[]> {
    const r = await this.call<{ items: CriPodSandbox[] }>('runtime', 'ListPodSandbox', signal);
    return r.items;
  }

  /** Every image the runtime holds. */
  async listImages(signal?: AbortSignal): Promise<readonly CriImage[]> {
    const r = await this.call<{ images: CriImage[] }>('images', 'ListImages', signal);
    return r.images;
  }

  /**
   * Whether the runtime answers the older `runtime.v1alpha2` Version, to tell "CRI too old" from
   * "no CRI at all" once runtime.v1 is UNIMPLEMENTED. The request is an empty message (zero
   * bytes on the wire) and the answer is not decoded, so no v1alpha2 .proto is needed.
   */
  servesV1alpha2(signal?: AbortSignal): Promise<boolean> {
    const method = 'v1alpha2.Version';
    return new Promise((resolve, reject) => {
      const call = this.runtime.makeUnaryRequest<Buffer, Buffer>(
        '/runtime.v1alpha2.RuntimeService/Version',
        (b) => b,
        (b) => b,
        Buffer.alloc(0),
        new this.services.runtime.grpc.Metadata(),
        { deadline: Date.now() + this.timeoutMs },
        (error) => {
          signal?.removeEventListener('abort', onAbort);
          const code = error ? (this.services.runtime.grpc.status[error.code] ?? 'UNKNOWN') : 'OK';
          this.onCall(method, code);
          if (!error) resolve(true);
          else if (code === 'UNIMPLEMENTED') resolve(false);
          else reject(new GrpcCallError(method, error.code, code, error.details || error.message));
        },
      );
      function onAbort(): void {
        call.cancel();
      }
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Closes both channels. */
  close(): void {
    this.runtime.close();
    this.images.close();
  }

  /** One unary call with an empty request to the runtime or the image service, counted by onCall. */
  private async call<R>(
    service: 'runtime' | 'images',
    method: string,
    signal: AbortSignal | undefined,
  ): Promise<R> {
    try {
      const r = await callUnary<R>(
        this.services[service],
        this[service],
        method,
        {},
        this.timeoutMs,
        signal,
      );
      this.onCall(method, 'OK');
      return r;
    } catch (err) {
      this.onCall(method, err instanceof GrpcCallError ? err.codeName : 'UNKNOWN');
      throw err;
    }
  }
}
