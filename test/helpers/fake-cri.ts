// A CRI runtime stand-in for unit tests: a grpc-js server built from the real CRI .proto on a
// unix socket, answering as CRI-O does (CRI-O is not in Debian), counting every call it gets.
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CRI_PROTO } from '../../collectors/cri/cri-client.js';

/** What the stand-in lists (CRI messages as proto-loader objects, snake_case). */
export interface RuntimeState {
  containers: object[];
  sandboxes: object[];
  images: object[];
}

/** A CRI-O stand-in on a unix socket: serves runtime.v1 (or only v1alpha2's Version, or nothing). */
export class FakeCrio {
  readonly calls = new Map<string, number>();
  private server: grpc.Server | undefined;
  constructor(
    readonly socket: string,
    readonly state: RuntimeState,
  ) {}

  count(method: string): number {
    return this.calls.get(method) ?? 0;
  }

  total(): number {
    return [...this.calls.values()].reduce((a, b) => a + b, 0);
  }

  async start(serves: 'v1' | 'v1alpha2' | 'none' = 'v1'): Promise<void> {
    const definition = await loader.load(fileURLToPath(CRI_PROTO), {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      runtime: { v1: Record<string, { service: grpc.ServiceDefinition }> };
    };
    const server = new grpc.Server();
    const unary =
      (method: string, answer: () => object) =>
      (_call: unknown, callback: grpc.sendUnaryData<object>) => {
        this.calls.set(method, this.count(method) + 1);
        callback(null, answer());
      };
    if (serves === 'v1') {
      server.addService(pkg.runtime.v1.RuntimeService!.service, {
        Version: unary('Version', () => ({
          version: '0.1.0',
          runtime_name: 'cri-o',
          runtime_version: '1.28.1',
          runtime_api_version: 'v1',
        })),
        ListContainers: unary('ListContainers', () => ({ containers: this.state.containers })),
        ListPodSandbox: unary('ListPodSandbox', () => ({ items: this.state.sandboxes })),
      });
      server.addService(pkg.runtime.v1.ImageService!.service, {
        ListImages: unary('ListImages', () => ({ images: this.state.images })),
      });
    }
    if (serves === 'v1alpha2') {
      const raw = (b: Buffer) => b;
      server.addService(
        {
          Version: {
            path: '/runtime.v1alpha2.RuntimeService/Version',
            requestStream: false,
            responseStream: false,
            requestSerialize: raw,
            requestDeserialize: raw,
            responseSerialize: raw,
            responseDeserialize: raw,
          },
        },
        { Version: unary('v1alpha2.Version', () => Buffer.alloc(0)) },
      );
    }
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${this.socket}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    this.server = server;
  }

  stop(): void {
    this.server?.forceShutdown();
    this.server = undefined;
    rmSync(this.socket, { force: true });
  }
}
