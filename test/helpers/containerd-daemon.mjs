// A private containerd (Debian's, with its CRI plugin) driven through the CRI API as a kubelet
// would, shared by the test suites (through test/helpers/containerd.ts) and bench:kubernetes: its
// own config, root, state and socket in a temp dir, host-network pods (no CNI), and a busybox
// image built here as an OCI image layout (no registry is reachable). Plain JavaScript on purpose,
// as dockerd-daemon.mjs: bench scripts run under node without a build of the tests. It speaks
// gRPC with @grpc/grpc-js and @grpc/proto-loader itself rather than through the agent's
// collectors/grpc-client.ts: the tests run from sources (a dist/ copy may be stale or missing),
// and a fixture that used the client under test could not tell a bug in it from one in the
// runtime. Types: containerd-daemon.d.mts.
import { spawn, spawnSync } from 'node:child_process';
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
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { pollUntil } from './dockerd-daemon.mjs';

/** The image every pod and container runs (the sandbox image too): static busybox, `sleep`. */
export const TEST_IMAGE = 'docker.io/library/gpulse-busybox:test';

/** The CRI API file the agent ships (Kubernetes cri-api). */
export const CRI_PROTO_PATH = fileURLToPath(
  new URL('../../collectors/cri/proto/api.proto', import.meta.url),
);

/** Pods stopped and removed at once by `stop()` (a hundred at once time out on 2 cores). */
const STOP_BATCH = 8;

const DIGEST = (data) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** `tar` with argument arrays; throws with its stderr. */
function tar(args) {
  const r = spawnSync('tar', args);
  if (r.status !== 0) throw new Error(`tar ${args.join(' ')} failed: ${r.stderr.toString()}`);
}

/**
 * An OCI image layout tar (path returned) of a root filesystem holding the static busybox at
 * `busybox`, named TEST_IMAGE and running `sleep 100000`: what `ctr images import` takes.
 */
export function busyboxOciTar(dir, busybox) {
  const root = join(dir, 'rootfs');
  mkdirSync(join(root, 'bin'), { recursive: true });
  for (const d of ['tmp', 'proc', 'sys', 'dev', 'etc']) mkdirSync(join(root, d));
  cpSync(busybox, join(root, 'bin', 'busybox'));
  for (const applet of ['sh', 'sleep', 'cat']) symlinkSync('busybox', join(root, 'bin', applet));
  const layout = join(dir, 'layout');
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const layerTar = join(dir, 'layer.tar');
  tar(['-C', root, '-cf', layerTar, '.']);
  const blob = (data) => {
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
function configToml(dir, socket, cri) {
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

/** Runs `ctr` against the containerd at `socket` in the k8s.io namespace; returns stdout. */
export function ctr(socket, args, program = 'ctr') {
  const r = spawnSync(program, ['-a', socket, '-n', 'k8s.io', ...args], { timeout: 60_000 });
  if (r.status !== 0) throw new Error(`ctr ${args.join(' ')} failed: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** Unmounts everything mounted under `dir`, innermost first (containerd leaves shm and rootfs). */
export function unmountUnder(dir) {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .reverse();
  for (const m of mounts) spawnSync('umount', ['-l', m]);
}

let services;

/** The CRI RuntimeService and ImageService clients' constructors, loaded once per process. */
async function criServices() {
  services ??= protoLoader
    .load(CRI_PROTO_PATH, { keepCase: true, longs: String, enums: String, defaults: true })
    .then((definition) => {
      const v1 = grpc.loadPackageDefinition(definition).runtime.v1;
      return { runtime: v1.RuntimeService, images: v1.ImageService };
    });
  return services;
}

/** One unary call with a deadline; rejects with the gRPC error (its `code` and `details`). */
function unary(client, method, request, timeoutMs) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + timeoutMs }, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

/** The pod's sandbox config, as the kubelet passes it to RunPodSandbox and CreateContainer. */
function podConfig(dir, pod) {
  return {
    metadata: { ...pod, attempt: 0 },
    log_directory: join(dir, 'logs', pod.uid),
    linux: { security_context: { namespace_options: { network: 'NODE' } } },
  };
}

/**
 * Starts a private containerd with TEST_IMAGE imported (built from `options.busybox`); with
 * `cri: false`, one whose CRI plugin is disabled (as Docker's is), serving no CRI and holding no
 * image. Its own process group, so a Ctrl-C reaches only the caller, which can still stop the
 * pods through it. Stopped by `stop()`, never by name.
 */
export async function startContainerd(options) {
  const withCri = options.cri ?? true;
  const ctrProgram = options.ctr ?? 'ctr';
  const dir = mkdtempSync(join(tmpdir(), 'gpulse-containerd-'));
  const socket = join(dir, 'containerd.sock');
  mkdirSync(join(dir, 'cni'));
  mkdirSync(join(dir, 'logs'));
  const config = join(dir, 'config.toml');
  writeFileSync(config, configToml(dir, socket, withCri));
  const log = openSync(join(dir, 'containerd.log'), 'a');
  const child = spawn(options.containerd ?? 'containerd', ['--config', config], {
    stdio: ['ignore', log, log],
    detached: true,
  });
  const exited = new Promise((resolve) => child.once('exit', () => resolve()));
  const pods = [];
  let client;
  let stopped = false;
  let imageId = '';

  async function cri(method, request, timeoutMs = 60_000) {
    const { runtime } = await criServices();
    client ??= new runtime(`unix://${socket}`, grpc.credentials.createInsecure());
    return unary(client, method, request, timeoutMs);
  }

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const all = pods.splice(0);
    for (let i = 0; i < all.length; i += STOP_BATCH) {
      await Promise.all(
        all.slice(i, i + STOP_BATCH).map(async (pod) => {
          await cri('StopPodSandbox', { pod_sandbox_id: pod }).catch(() => undefined);
          await cri('RemovePodSandbox', { pod_sandbox_id: pod }).catch(() => undefined);
        }),
      );
    }
    // Containers outlive containerd: whatever is still running is killed through it first.
    try {
      for (const id of ctr(socket, ['tasks', 'ls', '-q'], ctrProgram).split('\n').filter(Boolean)) {
        spawnSync(ctrProgram, ['-a', socket, '-n', 'k8s.io', 'tasks', 'kill', '-s', 'SIGKILL', id]);
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

  async function runPod(pod) {
    const r = await cri('RunPodSandbox', { config: podConfig(dir, pod) });
    pods.push(r.pod_sandbox_id);
    return r.pod_sandbox_id;
  }

  async function startContainer(sandboxId, pod, name, command = ['/bin/sleep', '100000']) {
    // As the kubelet does: the image by id, the name the user wrote beside it.
    const { container_id: id } = await cri('CreateContainer', {
      pod_sandbox_id: sandboxId,
      config: {
        metadata: { name, attempt: 0 },
        image: { image: imageId, user_specified_image: TEST_IMAGE },
        command: [...command],
        log_path: `${name}.log`,
        labels: {
          'io.kubernetes.container.name': name,
          'io.kubernetes.pod.name': pod.name,
          'io.kubernetes.pod.namespace': pod.namespace,
          'io.kubernetes.pod.uid': pod.uid,
        },
        linux: { security_context: { namespace_options: { network: 'NODE' } } },
      },
      sandbox_config: podConfig(dir, pod),
    });
    await cri('StartContainer', { container_id: id });
    const status = await cri('ContainerStatus', { container_id: id, verbose: true });
    const pid = JSON.parse(status.info.info ?? '{}').pid;
    if (!pid) throw new Error(`no pid in ContainerStatus of ${id}`);
    return { id, pid };
  }

  const handle = (version) => ({
    dir,
    socket,
    pid: child.pid,
    version,
    imageId,
    cri,
    runPod,
    startContainer,
    stop,
  });

  try {
    await pollUntil('containerd to answer', 30_000, async () => {
      if (child.exitCode !== null)
        throw new Error(
          `containerd exited: ${readFileSync(join(dir, 'containerd.log'), 'utf8').slice(-2000)}`,
        );
      if (!withCri) return spawnSync(ctrProgram, ['-a', socket, 'version']).status === 0;
      return cri('Version', {}, 5000).then(
        () => true,
        () => false,
      );
    });
    if (!withCri) return handle('');
    const { runtime_version: version } = await cri('Version', {});
    if (!options.busybox) throw new Error('busybox not installed (Debian: busybox-static)');
    ctr(socket, ['images', 'import', busyboxOciTar(dir, options.busybox)], ctrProgram);
    const { images } = await criServices();
    const imageClient = new images(`unix://${socket}`, grpc.credentials.createInsecure());
    const status = await unary(
      imageClient,
      'ImageStatus',
      { image: { image: TEST_IMAGE } },
      30_000,
    ).finally(() => imageClient.close());
    imageId = status.image?.id ?? '';
    if (!imageId) throw new Error(`${TEST_IMAGE} not found after the import`);
    return handle(version);
  } catch (err) {
    await stop();
    throw err;
  }
}
