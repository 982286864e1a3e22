import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import {
  BUSYBOX,
  busyboxTar,
  engineHandle,
  pings,
  pollUntil,
  startDockerd as startDaemon,
  type TestEngine,
} from './dockerd-daemon.mjs';
import { findTool, tools } from './tools.js';

export { BUSYBOX, type TestEngine };

/** Programs the Docker integration suites need, with their Debian packages. */
export const DOCKER_TOOLS = tools('dockerd', 'busybox');

/** Programs the Podman suite needs. */
export const PODMAN_TOOLS = tools('podman', 'runc', 'busybox');

/**
 * Starts a private dockerd (Debian docker.io) on a socket in a temp dir (or `options.dir`), with
 * its own data and exec roots and no networking, and imports busybox:test unless `image` is false.
 * Stopped by pid file, never by name. The starter itself is shared with the benches.
 */
export function startDockerd(
  options: {
    readonly dir?: string;
    readonly args?: readonly string[];
    readonly image?: boolean;
  } = {},
): Promise<TestEngine> {
  return startDaemon({
    dockerd: findTool('dockerd') ?? 'dockerd',
    busybox: options.image === false ? undefined : busyboxPath(),
    dir: options.dir,
    args: options.args,
  });
}

function busyboxPath(): string {
  return findTool('busybox') ?? '/bin/busybox';
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
  const tar = busyboxTar(dir, busyboxPath());
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
    await pollUntil('podman service to answer', 60_000, () => pings(docker));
    chmodSync(socket, 0o660);
  };
  await launch();
  return engineHandle({
    socket,
    dir,
    docker,
    pidFile,
    graceMs: 10_000,
    launch,
    afterStop: () => spawnSync(podman, [...base, 'system', 'reset', '--force'], { env }),
  });
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
