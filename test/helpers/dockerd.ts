import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  createReadStream,
  existsSync,
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
import Docker from 'dockerode';
import { findTool } from './tools.js';

/** Programs the Docker integration suites need, with their Debian packages. */
export const DOCKER_TOOLS = [
  { bin: 'dockerd', pkg: 'docker.io' },
  { bin: 'busybox', pkg: 'busybox-static' },
] as const;

/** Programs the Podman suite needs. */
export const PODMAN_TOOLS = [
  { bin: 'podman', pkg: 'podman' },
  { bin: 'runc', pkg: 'runc' },
  { bin: 'busybox', pkg: 'busybox-static' },
] as const;

/** Tag of the image built from Debian's static busybox. */
export const BUSYBOX = 'busybox:test';

/** A private container engine started by a test. */
export interface TestEngine {
  readonly socket: string;
  readonly dir: string;
  readonly docker: Docker;
  /** Stops the engine (SIGTERM by pid file, SIGKILL after 20 s); the data stays for `start()`. */
  stop(): Promise<void>;
  /** Starts it again on the same socket and data. */
  start(): Promise<void>;
  /** Stops it for good and removes its files. */
  destroy(): Promise<void>;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(
  what: string,
  ms: number,
  ok: () => boolean | Promise<boolean>,
): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await ok()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function pings(docker: Docker): Promise<boolean> {
  try {
    await docker.ping();
    return true;
  } catch {
    return false;
  }
}

/** A tar of a root filesystem with Debian's static busybox and a few applet links. */
function busyboxTar(dir: string): string {
  const root = join(dir, 'rootfs');
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'tmp'), { recursive: true });
  cpSync(findTool('busybox') ?? '/bin/busybox', join(root, 'bin', 'busybox'));
  for (const applet of ['sh', 'sleep', 'cat', 'head', 'tr', 'echo', 'printf', 'yes', 'dd']) {
    symlinkSync('busybox', join(root, 'bin', applet));
  }
  return root;
}

async function importBusybox(docker: Docker, dir: string): Promise<void> {
  const root = busyboxTar(dir);
  const tar = join(dir, 'busybox.tar');
  const r = spawnSync('tar', ['-C', root, '-cf', tar, '.']);
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr.toString()}`);
  const stream = await docker.importImage(createReadStream(tar), { repo: 'busybox', tag: 'test' });
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve()));
  });
}

/** Stops a process by its pid file: SIGTERM, then SIGKILL when it has not exited in `graceMs`. */
async function stopByPidFile(pidFile: string, graceMs: number): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 1 || !pidAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  try {
    await waitFor(`pid ${pid} to exit`, graceMs, () => !pidAlive(pid));
  } catch {
    process.kill(pid, 'SIGKILL');
    await waitFor(`pid ${pid} to die`, 5000, () => !pidAlive(pid));
  }
}

/**
 * Starts a private dockerd (Debian docker.io) on a socket in a temp dir, with its own data and
 * exec roots and no networking, and imports busybox:test. Stopped by pid file, never by name.
 */
export async function startDockerd(): Promise<TestEngine> {
  const dir = mkdtempSync(join(tmpdir(), 'gpulse-dockerd-'));
  const socket = join(dir, 'docker.sock');
  const pidFile = join(dir, 'dockerd.pid');
  const docker = new Docker({ socketPath: socket });
  const launch = async () => {
    const log = openSync(join(dir, 'dockerd.log'), 'a');
    const child = spawn(
      findTool('dockerd') ?? 'dockerd',
      [
        '--host',
        `unix://${socket}`,
        '--iptables=false',
        '--ip-masq=false',
        '--bridge=none',
        '--data-root',
        join(dir, 'data'),
        '--exec-root',
        join(dir, 'exec'),
        '--pidfile',
        pidFile,
        '--shutdown-timeout',
        '1',
      ],
      { stdio: ['ignore', log, log], detached: true },
    );
    child.unref();
    try {
      await waitFor('dockerd to answer', 60_000, () => pings(docker));
    } catch (err) {
      throw new Error(
        `${(err as Error).message}; dockerd log:\n${readFileSync(join(dir, 'dockerd.log'), 'utf8').slice(-2000)}`,
        { cause: err },
      );
    }
  };
  await launch();
  await importBusybox(docker, dir);
  return {
    socket,
    dir,
    docker,
    stop: () => stopByPidFile(pidFile, 20_000),
    start: launch,
    async destroy() {
      try {
        const all = await docker.listContainers({ all: true });
        await Promise.all(all.map((c) => docker.getContainer(c.Id).remove({ force: true })));
      } catch {
        // The daemon may be down already.
      }
      await stopByPidFile(pidFile, 20_000);
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // A mount the daemon left behind keeps its directory; the temp dir is then left too.
      }
    },
  };
}

/**
 * Starts Podman's Docker-compatible API (`podman system service`) on a private socket with its
 * own storage, runc and cgroupfs (environment.md); busybox:test imported.
 */
export async function startPodman(): Promise<TestEngine> {
  const dir = mkdtempSync(join(tmpdir(), 'gpulse-podman-'));
  const socket = join(dir, 'podman.sock');
  const pidFile = join(dir, 'service.pid');
  const conf = join(dir, 'containers.conf');
  writeFileSync(
    conf,
    [
      '[containers]',
      'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]',
      '[engine]',
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = "${join(dir, 'events.log')}"`,
      '',
    ].join('\n'),
  );
  const env = { ...process.env, CONTAINERS_CONF: conf };
  const podman = findTool('podman') ?? 'podman';
  const base = [
    '--root',
    join(dir, 'root'),
    '--runroot',
    join(dir, 'runroot'),
    '--tmpdir',
    join(dir, 'tmp'),
  ];
  const docker = new Docker({ socketPath: socket });
  const root = busyboxTar(dir);
  const tar = join(dir, 'busybox.tar');
  spawnSync('tar', ['-C', root, '-cf', tar, '.']);
  const imp = spawnSync(podman, [...base, 'import', tar, BUSYBOX], { env });
  if (imp.status !== 0) throw new Error(`podman import failed: ${imp.stderr.toString()}`);
  const launch = async () => {
    const log = openSync(join(dir, 'service.log'), 'a');
    const child = spawn(podman, [...base, 'system', 'service', '--time=0', `unix://${socket}`], {
      stdio: ['ignore', log, log],
      env,
      detached: true,
    });
    child.unref();
    writeFileSync(pidFile, String(child.pid));
    await waitFor('podman service to answer', 60_000, () => pings(docker));
    chmodSync(socket, 0o660);
  };
  await launch();
  return {
    socket,
    dir,
    docker,
    stop: () => stopByPidFile(pidFile, 10_000),
    start: launch,
    async destroy() {
      try {
        const all = await docker.listContainers({ all: true });
        await Promise.all(all.map((c) => docker.getContainer(c.Id).remove({ force: true })));
      } catch {
        // already down
      }
      await stopByPidFile(pidFile, 10_000);
      spawnSync(podman, [...base, 'system', 'reset', '--force'], { env });
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // see startDockerd
      }
    },
  };
}

/** Creates and starts a container without networking; resolves with its id. */
export async function runContainer(
  docker: Docker,
  options: {
    readonly name: string;
    readonly cmd: readonly string[];
    readonly image?: string;
    readonly env?: readonly string[];
    readonly labels?: Readonly<Record<string, string>>;
    readonly memory?: number;
    readonly restart?: string;
  },
): Promise<string> {
  const c = await docker.createContainer({
    name: options.name,
    Image: options.image ?? BUSYBOX,
    Cmd: [...options.cmd],
    Env: options.env ? [...options.env] : undefined,
    Labels: options.labels ? { ...options.labels } : undefined,
    HostConfig: {
      NetworkMode: 'none',
      Memory: options.memory,
      // Equal swap limit: the limit is the limit (no swap to escape to).
      MemorySwap: options.memory,
      RestartPolicy: options.restart ? { Name: options.restart } : undefined,
    },
  });
  await c.start();
  return c.id;
}
