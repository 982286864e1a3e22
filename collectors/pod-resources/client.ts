/**
 * A client of the kubelet's pod-resources API v1 (`PodResourcesLister`) on its unix socket: the
 * two calls the collector and the doctor make, and a channel that can be dropped and made anew.
 */
import type * as grpc from '@grpc/grpc-js';
import {
  callUnary,
  LOCAL_CHANNEL_OPTIONS,
  loadGrpcService,
  unixTarget,
  type GrpcService,
} from '../grpc-client.js';

/** The v1 proto kept beside this file (copied to dist/ by scripts/postbuild.mjs). */
export const POD_RESOURCES_PROTO = new URL('./proto/api.proto', import.meta.url);

/** Devices of one resource as the API gives them (`ContainerDevices`, field names as in the proto). */
export interface ContainerDevicesMessage {
  readonly resource_name: string;
  readonly device_ids: readonly string[];
}

/** One container of a pod (`ContainerResources`), reduced to what gpulse reads. */
export interface ContainerResourcesMessage {
  readonly name: string;
  readonly devices: readonly ContainerDevicesMessage[];
}

/** One pod (`PodResources`), reduced to what gpulse reads. */
export interface PodResourcesMessage {
  readonly name: string;
  readonly namespace: string;
  readonly containers: readonly ContainerResourcesMessage[];
}

/** `ListPodResourcesResponse`. */
export interface ListResponse {
  readonly pod_resources: readonly PodResourcesMessage[];
}

/** `AllocatableResourcesResponse`, reduced to devices. */
export interface AllocatableResponse {
  readonly devices: readonly ContainerDevicesMessage[];
}

/** Loads the PodResourcesLister service (gRPC and protobuf load here, on first use). */
export function loadPodResourcesService(): Promise<GrpcService> {
  return loadGrpcService(POD_RESOURCES_PROTO, 'v1', 'PodResourcesLister');
}

/** The two calls on one socket; `reset()` drops the channel so the next call dials afresh. */
export class PodResourcesClient {
  private service?: Promise<GrpcService>;
  private client?: grpc.Client;

  constructor(readonly socket: string) {}

  /** `List`: every pod with the devices, CPUs and memory the kubelet gave its containers. */
  list(timeoutMs: number, signal?: AbortSignal): Promise<ListResponse> {
    return this.call<ListResponse>('List', timeoutMs, signal);
  }

  /** `GetAllocatableResources`: what the node can allocate (UNIMPLEMENTED before Kubernetes 1.21-1.23). */
  allocatable(timeoutMs: number, signal?: AbortSignal): Promise<AllocatableResponse> {
    return this.call<AllocatableResponse>('GetAllocatableResources', timeoutMs, signal);
  }

  /** Closes the channel; the next call opens a new one. */
  reset(): void {
    this.client?.close();
    this.client = undefined;
  }

  private async call<T>(method: string, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    this.service ??= loadPodResourcesService();
    const service = await this.service;
    this.client ??= new service.Client(
      unixTarget(this.socket),
      service.grpc.credentials.createInsecure(),
      {
        ...LOCAL_CHANNEL_OPTIONS,
        // A channel made after reset() gets a subchannel of its own, never one from grpc-js's
        // process-wide pool that may still sit in its reconnect backoff (up to 2 minutes).
        'grpc.use_local_subchannel_pool': 1,
      },
    );
    return callUnary<T>(service, this.client, method, {}, timeoutMs, signal);
  }
}
