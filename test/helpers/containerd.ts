// A private containerd (Debian's, with its CRI plugin) driven through the CRI API as a kubelet
// would: its own config, root, state and socket in a temp dir, host-network pods (no CNI), and a
// busybox image built here as an OCI image layout (no registry is reachable).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { CRI_PROTO } from '../../collectors/cri/cri-client.js';
import {
  callUnary,
  LOCAL_CHANNEL_OPTIONS,
  loadGrpcService,
  unixTarget,
  type GrpcService,
} from '../../collectors/grpc-client.js';
import { pollUntil } from './dockerd-daemon.mjs';
import { findTool, runningAsRoot, toolsInstalled, tools, type Precondition } from './tools.js';

/** What a containerd suite needs: the programs (with their Debian packages) and root. */
export const CONTAINERD_PRECONDITIONS: readonly Precondition[] = [
  toolsInstalled(tools('containerd', 'ctr', 'runc', 'busybox', 'tar')),
  runningAsRoot('run containerd and its containers'),
];

/** The image every pod and container runs (the sandbox image too): static busybox, `sleep`. */
export const TEST_IMAGE = 'docker.io/library/gpulse-busybox:test';

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
  /** The image id (`sha256:...`) of TEST_IMAGE, which the kubelet passes to CreateContainer. */
  readonly imageId: string;
  /** One CRI runtime.v1 RuntimeService call. */
  cri<R>(method: string, request: object): Promise<R>;
  /** RunPodSandbox with the host network; returns the sandbox id. */
  runPod(pod: PodMeta): Promise<string>;
  /** CreateContainer + StartContainer of `sleep` in a pod; returns its id and host PID. */
  startContainer(sandboxId: string, pod: PodMeta, name: string): Promise<TestContainer>;
  /** Stops and removes every pod, stops containerd and unmounts what it mounted; idempotent. */
  stop(): Promise<void>;
}

const DIGEST = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** `tar` with argument arrays; throws with its stderr. */
function tar(args: readonly string[]): void {
  const r = spawnSync('tar', args);
  if (r.status !== 0) throw new Error(`tar ${args.join(' ')} failed: ${r.stderr.toString()}`);
}

/**
 * An OCI image layout tar (path returned) of a root filesystem holding Debian's static busybox,
 * named TEST_IMAGE and running `sleep 100000`: what `ctr images import` takes.
 */
export function busyboxOciTar(dir: string): string {
  const root = join(dir, 'rootfs');
  mkdirSync(join(root, 'bin'), { recursive: true });
  for (const d of ['tmp', 'proc', 'sys', 'dev', 'etc']) mkdirSync(join(root, d));
  const busybox = findTool('busybox');
  if (!busybox) throw new Error('busybox not installed (Debian: busybox-static)');
  cpSync(busybox, join(root, 'bin', 'busybox'));
  for (const applet of ['sh', 'sleep', 'cat']) symlinkSync('busybox', join(root, 'bin', applet));
  const layout = join(dir, 'layout');
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const layerTar = join(dir, 'layer.tar');
  tar(['-C', root, '-cf', layerTar, '.']);
  const blob = (data: Buffer): { digest: string; size: number } => {
    const digest = DIGEST(data);
    writeFileSync(join(blobs, digest.slice('sha256:'.length)), data);
    return { digest, size: data.length };
  };
  const layer = blob(readFileSync(layerTar));
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const config = blob(
    Buffer.from(
      JSON.stringify({
        architecture: arch,
        os: 'linux',
        config: {
          Env: ['PATH=/bin'],
          Cmd: ['/bin/sleep', '100000'],
        },
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
      }),
    ),
  );
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
      }),
    ),
  );
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          platform: { architecture: arch, os: 'linux' },
          annotations: {
            'io.containerd.image.name': TEST_IMAGE,
            'org.opencontainers.image.ref.name': 'test',
          },
        },
      ],
    }),
  );
  const image = join(dir, 'image.tar');
  tar(['-C', layout, '-cf', image, 'oci-layout', 'index.json', 'blobs']);
  return image;
}

/** containerd's config: everything under `dir`, CRI on (host-network pods only) or off. */
function configToml(dir: string, socket: string, cri: boolean): string {
  // Off as Docker's own containerd has it: the socket answers gRPC, runtime.v1 is UNIMPLEMENTED.
  const disabled = cri ? '' : 'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n';
  return `version = 2
${disabled}root = "${dir}/root"
state = "${dir}/state"
[grpc]
  address = "${socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${TEST_IMAGE}"
  # The sandbox's oom_score_adj of -998 needs CAP_SYS_RESOURCE, which this machine lacks.
  restrict_oom_score_adj = true
  # Two suites may run a containerd each: no fixed port for the streaming server.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/cni"
`;
}

/** Runs `ctr` against the private containerd in the k8s.io namespace; returns stdout. */
function ctr(socket: string, args: readonly string[]): string {
  const r = spawnSync('ctr', ['-a', socket, '-n', 'k8s.io', ...args], { timeout: 60_000 });
  if (r.status !== 0) throw new Error(`ctr ${args.join(' ')} failed: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** Unmounts everything mounted under `dir`, innermost first (containerd leaves shm and rootfs). */
function unmountUnder(dir: string): void {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .reverse();
  for (const m of mounts) spawnSync('umount', ['-l', m]);
}

/**
 * Starts a private containerd with TEST_IMAGE imported; with `cri: false`, one whose CRI plugin
 * is disabled (as Docker's is), serving no CRI and holding no image. Stopped by `stop()`, never
 * by name.
 */
export async function startContainerd(
  options: { readonly cri?: boolean } = {},
): Promise<TestContainerd> {
  const withCri = options.cri ?? true;
  const dir = mkdtempSync(join(tmpdir(), 'gpulse-containerd-'));
  const socket = join(dir, 'containerd.sock');
  mkdirSync(join(dir, 'cni'));
  mkdirSync(join(dir, 'logs'));
  const config = join(dir, 'config.toml');
  writeFileSync(config, configToml(dir, socket, withCri));
  const log = openSync(join(dir, 'containerd.log'), 'a');
  const child: ChildProcess = spawn('containerd', ['--config', config], {
    stdio: ['ignore', log, log],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pods: string[] = [];
  let client: grpc.Client | undefined;
  let service: GrpcService | undefined;
  let stopped = false;
  let imageId = '';

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    for (const pod of pods.splice(0)) {
      await cri('StopPodSandbox', { pod_sandbox_id: pod }).catch(() => undefined);
      await cri('RemovePodSandbox', { pod_sandbox_id: pod }).catch(() => undefined);
    }
    // Containers outlive containerd: whatever is still running is killed through it first.
    try {
      for (const id of ctr(socket, ['tasks', 'ls', '-q']).split('\n').filter(Boolean)) {
        spawnSync('ctr', ['-a', socket, '-n', 'k8s.io', 'tasks', 'kill', '-s', 'SIGKILL', id]);
      }
    } catch {
      // containerd is down already
    }
    client?.close();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  };

  async function cri<R>(method: string, request: object): Promise<R> {
    service ??= await loadGrpcService(CRI_PROTO, 'runtime.v1', 'RuntimeService');
    client ??= new service.Client(
      unixTarget(socket),
      service.grpc.credentials.createInsecure(),
      LOCAL_CHANNEL_OPTIONS,
    );
    return callUnary<R>(service, client, method, request, 60_000);
  }

  function podConfig(pod: PodMeta): object {
    return {
      metadata: { ...pod, attempt: 0 },
      log_directory: join(dir, 'logs', pod.uid),
      linux: { security_context: { namespace_options: { network: 'NODE' } } },
    };
  }

  async function runPod(pod: PodMeta): Promise<string> {
    const r = await cri<{ pod_sandbox_id: string }>('RunPodSandbox', { config: podConfig(pod) });
    pods.push(r.pod_sandbox_id);
    return r.pod_sandbox_id;
  }

  async function startContainer(
    sandboxId: string,
    pod: PodMeta,
    name: string,
  ): Promise<TestContainer> {
    // As the kubelet does: the image by id, the name the user wrote beside it.
    const { container_id: id } = await cri<{ container_id: string }>('CreateContainer', {
      pod_sandbox_id: sandboxId,
      config: {
        metadata: { name, attempt: 0 },
        image: { image: imageId, user_specified_image: TEST_IMAGE },
        command: ['/bin/sleep', '100000'],
        log_path: `${name}.log`,
        labels: {
          'io.kubernetes.container.name': name,
          'io.kubernetes.pod.name': pod.name,
          'io.kubernetes.pod.namespace': pod.namespace,
          'io.kubernetes.pod.uid': pod.uid,
        },
        linux: { security_context: { namespace_options: { network: 'NODE' } } },
      },
      sandbox_config: podConfig(pod),
    });
    await cri('StartContainer', { container_id: id });
    const status = await cri<{ info: Record<string, string> }>('ContainerStatus', {
      container_id: id,
      verbose: true,
    });
    const pid = (JSON.parse(status.info.info ?? '{}') as { pid?: number }).pid;
    if (!pid) throw new Error(`no pid in ContainerStatus of ${id}`);
    return { id, pid };
  }

  try {
    await pollUntil('containerd to answer', 30_000, async () => {
      if (child.exitCode !== null)
        throw new Error(
          `containerd exited: ${readFileSync(join(dir, 'containerd.log'), 'utf8').slice(-2000)}`,
        );
      if (!withCri) return spawnSync('ctr', ['-a', socket, 'version']).status === 0;
      return cri('Version', {}).then(
        () => true,
        () => false,
      );
    });
    if (!withCri) return { dir, socket, imageId: '', cri, runPod, startContainer, stop };
    ctr(socket, ['images', 'import', busyboxOciTar(dir)]);
    const images = await loadGrpcService(CRI_PROTO, 'runtime.v1', 'ImageService');
    const imageClient = new images.Client(
      unixTarget(socket),
      images.grpc.credentials.createInsecure(),
      LOCAL_CHANNEL_OPTIONS,
    );
    const status = await callUnary<{ image: { id: string } | null }>(
      images,
      imageClient,
      'ImageStatus',
      { image: { image: TEST_IMAGE } },
      30_000,
    );
    imageClient.close();
    imageId = status.image?.id ?? '';
    if (!imageId) throw new Error(`${TEST_IMAGE} not found after the import`);

    return { dir, socket, imageId, cri, runPod, startContainer, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
