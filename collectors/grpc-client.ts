/**
 * The little of gRPC the Kubernetes collectors need: a service from a .proto kept beside the code
 * (copied to dist/ by the build), a client on a unix socket, and unary calls with a deadline that
 * an AbortSignal can cut short. gRPC and protobuf load only when a collector that needs them runs.
 */
import { fileURLToPath } from 'node:url';
import type * as grpc from '@grpc/grpc-js';

/** A loaded service's client constructor and the gRPC module it came from. */
export interface GrpcService {
  readonly grpc: typeof grpc;
  readonly Client: grpc.ServiceClientConstructor;
}

/** Why a call failed, with the gRPC status code name (`UNAVAILABLE`, `UNIMPLEMENTED` ...). */
export class GrpcCallError extends Error {
  constructor(
    readonly method: string,
    /** gRPC status code (grpc.status), or -1 when the call never reached the server. */
    readonly code: number,
    readonly codeName: string,
    detail: string,
  ) {
    super(`${method}: ${codeName}: ${detail}`);
    this.name = 'GrpcCallError';
  }
}

/**
 * Loads `service` of package `pkg` from `proto` (a URL or path of a .proto file). Field names stay
 * as the .proto writes them (snake_case), enums come as their names, 64-bit integers as strings.
 */
export async function loadGrpcService(
  proto: URL | string,
  pkg: string,
  service: string,
): Promise<GrpcService> {
  const [grpcModule, loader] = await Promise.all([
    import('@grpc/grpc-js'),
    import('@grpc/proto-loader'),
  ]);
  const file = proto instanceof URL ? fileURLToPath(proto) : proto;
  const definition = await loader.load(file, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const loaded = grpcModule.loadPackageDefinition(definition);
  let node: unknown = loaded;
  for (const part of [...pkg.split('.'), service]) {
    node = (node as Record<string, unknown> | undefined)?.[part];
  }
  if (typeof node !== 'function') throw new Error(`${file}: no service ${pkg}.${service}`);
  return { grpc: grpcModule, Client: node as grpc.ServiceClientConstructor };
}

/** The gRPC target of a unix socket path (`unix:///run/x.sock`). */
export function unixTarget(socketPath: string): string {
  return socketPath.startsWith('unix:') ? socketPath : `unix://${socketPath}`;
}

/** Options every client gets: local sockets, no retries of gRPC's own (the collectors retry). */
export const LOCAL_CHANNEL_OPTIONS = {
  'grpc.enable_retries': 0,
  // The runtime answers with the whole container list; 16 MiB is kubelet's own limit.
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
} as const;

type UnaryMethod = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

/**
 * One unary call of `method` on `client`, ended by `timeoutMs` (a gRPC deadline) or by `signal`.
 * Rejects with a GrpcCallError naming the method and status.
 */
export function callUnary<Response>(
  service: GrpcService,
  client: grpc.Client,
  method: string,
  request: object,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Response> {
  const fn = (client as unknown as Record<string, UnaryMethod | undefined>)[method];
  if (typeof fn !== 'function') {
    return Promise.reject(new Error(`gRPC client has no method ${method}`));
  }
  return new Promise<Response>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new GrpcCallError(method, service.grpc.status.CANCELLED, 'CANCELLED', 'aborted'));
      return;
    }
    const call = fn.call(
      client,
      request,
      new service.grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (error, response) => {
        signal?.removeEventListener('abort', onAbort);
        if (error) {
          const name = service.grpc.status[error.code] ?? String(error.code);
          reject(new GrpcCallError(method, error.code, name, error.details || error.message));
        } else resolve(response as Response);
      },
    );
    function onAbort(): void {
      call.cancel();
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
