// A stand-in for the kubelet's pod-resources endpoint: a real gRPC server (grpc-js) built from the
// real v1 proto, on a unix socket in a temp dir. The kubelet itself cannot run in tests; its API
// surface, wire format and status codes here are the real ones.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
import { POD_RESOURCES_PROTO } from '../../collectors/pod-resources/client.js';

/** Devices of one resource, as the proto names the fields. */
export interface FakeDevices {
  readonly resource_name: string;
  readonly device_ids: readonly string[];
}

/** One container of a pod. */
export interface FakeContainer {
  readonly name: string;
  readonly devices?: readonly FakeDevices[];
  readonly cpu_ids?: readonly number[];
}

/** One pod the stand-in lists. */
export interface FakePod {
  readonly name: string;
  readonly namespace: string;
  readonly containers: readonly FakeContainer[];
}

/** A pod whose one container was given `deviceIds` of `resource` (a whole GPU by default). */
export function gpuPod(
  name: string,
  namespace: string,
  container: string,
  deviceIds: readonly string[],
  resource = 'nvidia.com/gpu',
): FakePod {
  return {
    name,
    namespace,
    containers: [
      { name: container, devices: [{ resource_name: resource, device_ids: deviceIds }] },
    ],
  };
}

/**
 * How GetAllocatableResources answers: `implemented`; `unimplemented` as Kubernetes 1.20 (no such
 * method); `disabled` as 1.21-1.22 with the feature gate off (a plain error, UNKNOWN).
 */
export type AllocatableMode = 'implemented' | 'unimplemented' | 'disabled';

/** Options of the stand-in kubelet. */
export interface PodResourcesServerOptions {
  readonly pods?: readonly FakePod[];
  readonly allocatable?: readonly FakeDevices[];
  readonly allocatableMode?: AllocatableMode;
  /** Socket path; a fresh temp dir's `kubelet.sock` when absent. */
  readonly socket?: string;
}

/** The stand-in kubelet, its settable state and what it was asked. */
export interface PodResourcesServer {
  readonly socket: string;
  pods: readonly FakePod[];
  allocatable: readonly FakeDevices[];
  allocatableMode: AllocatableMode;
  /** Milliseconds List waits before answering (a hung or overloaded kubelet). */
  listDelayMs: number;
  /** Calls answered (or refused) per method name since start. */
  readonly calls: Record<string, number>;
  /** Shuts the server down and removes its socket file (the kubelet going away). */
  stop(): Promise<void>;
  /** Serves again on the same path (a restarted kubelet: a new socket file). */
  restart(): Promise<void>;
  /** Stops and removes the temp dir. */
  close(): Promise<void>;
}

type Callback = (err: Partial<grpc.ServiceError> | null, value?: unknown) => void;

function failure(code: grpc.status, details: string): Partial<grpc.ServiceError> {
  return { code, details, name: 'Error', message: details };
}

function serviceDefinition(): grpc.ServiceDefinition {
  const definition = loader.loadSync(fileURLToPath(POD_RESOURCES_PROTO), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const v1 = grpc.loadPackageDefinition(definition).v1 as grpc.GrpcObject;
  return (v1.PodResourcesLister as grpc.ServiceClientConstructor).service;
}

/** Starts the stand-in kubelet. */
export async function startPodResourcesServer(
  options: PodResourcesServerOptions = {},
): Promise<PodResourcesServer> {
  const dir = options.socket ? undefined : mkdtempSync(join(tmpdir(), 'gpulse-kubelet-'));
  const socket = options.socket ?? join(dir!, 'kubelet.sock');
  const definition = serviceDefinition();
  let server: grpc.Server | undefined;

  const state: PodResourcesServer = {
    socket,
    pods: options.pods ?? [],
    allocatable: options.allocatable ?? [],
    allocatableMode: options.allocatableMode ?? 'implemented',
    listDelayMs: 0,
    calls: {},
    stop,
    restart: listen,
    close,
  };
  const counted = (method: string) => {
    state.calls[method] = (state.calls[method] ?? 0) + 1;
  };

  // Handlers read the state on every call, so a test changes answers without a restart.
  const implementation: grpc.UntypedServiceImplementation = {
    List(_call: unknown, callback: Callback) {
      counted('List');
      const answer = () => callback(null, { pod_resources: state.pods });
      if (state.listDelayMs > 0) setTimeout(answer, state.listDelayMs);
      else answer();
    },
    GetAllocatableResources(_call: unknown, callback: Callback) {
      counted('GetAllocatableResources');
      switch (state.allocatableMode) {
        case 'unimplemented':
          // What the kubelet's gRPC-Go server answers for a method its service lacks.
          callback(
            failure(
              grpc.status.UNIMPLEMENTED,
              'unknown method GetAllocatableResources for service v1.PodResourcesLister',
            ),
          );
          break;
        case 'disabled':
          callback(
            failure(grpc.status.UNKNOWN, 'PodResources API GetAllocatableResources disabled'),
          );
          break;
        case 'implemented':
          callback(null, { devices: state.allocatable, cpu_ids: [], memory: [] });
      }
    },
    Get(_call: unknown, callback: Callback) {
      counted('Get');
      callback(failure(grpc.status.UNIMPLEMENTED, 'not in the stand-in'));
    },
  };

  async function listen(): Promise<void> {
    const s = new grpc.Server();
    s.addService(definition, implementation);
    await new Promise<void>((resolve, reject) => {
      s.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      );
    });
    server = s;
  }

  async function stop(): Promise<void> {
    const s = server;
    server = undefined;
    // The socket file goes first: a poll between the two steps then sees it missing, as it would
    // after a kubelet's exit, not a socket that refuses (which the collector reports differently).
    rmSync(socket, { force: true });
    if (s) {
      // Open connections are cut, as a dying kubelet's are.
      s.forceShutdown();
      await new Promise((r) => setImmediate(r));
    }
  }

  async function close(): Promise<void> {
    await stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }

  await listen();
  return state;
}
