// A private dockerd (Debian docker.io) and a busybox image for it, shared by the test suites
// (through test/helpers/dockerd.ts) and the bench scripts. Plain JavaScript on purpose: bench
// scripts run under node without a build of the tests, and importing this file directly means
// no step can be forgotten that would leave a bench running an old copy. Types: dockerd-daemon.d.mts.
import { spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';

/** Tag of the image built from Debian's static busybox. */
export const BUSYBOX = 'busybox:test';

const APPLETS = ['sh', 'sleep', 'cat', 'head', 'tr', 'echo', 'printf', 'yes', 'dd'];

/** Whether a process with this pid exists. */
export function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once `ok()` holds, checked every 100 ms; rejects naming `what` after `ms`. */
export async function pollUntil(what, ms, ok) {
  // Not vi.waitFor: bench scripts run outside vitest and use this too.
  const end = Date.now() + ms;
  for (;;) {
    if (await ok()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Whether the engine behind `docker` answers /_ping. */
export async function pings(docker) {
  try {
    await docker.ping();
    return true;
  } catch {
    return false;
  }
}

/** A tar (path returned) of a root filesystem with the static busybox and a few applet links. */
export function busyboxTar(dir, busybox) {
  const root = join(dir, 'rootfs');
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'tmp'), { recursive: true });
  cpSync(busybox, join(root, 'bin', 'busybox'));
  for (const applet of APPLETS) symlinkSync('busybox', join(root, 'bin', applet));
  const tar = join(dir, 'busybox.tar');
  const r = spawnSync('tar', ['-C', root, '-cf', tar, '.']);
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr.toString()}`);
  return tar;
}

async function importBusybox(docker, dir, busybox) {
  const stream = await docker.importImage(createReadStream(busyboxTar(dir, busybox)), {
    repo: 'busybox',
    tag: 'test',
  });
  await new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve()));
  });
}

/** Stops a process by its pid file: SIGTERM, then SIGKILL when it has not exited in `graceMs`. */
export async function stopByPidFile(pidFile, graceMs) {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 1 || !pidAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  try {
    await pollUntil(`pid ${pid} to exit`, graceMs, () => !pidAlive(pid));
  } catch {
    process.kill(pid, 'SIGKILL');
    await pollUntil(`pid ${pid} to die`, 5000, () => !pidAlive(pid));
  }
}

/** Removes every container of the engine, 16 at a time (a hundred at once time out on 2 cores). */
export async function removeAllContainers(docker) {
  try {
    const all = await docker.listContainers({ all: true });
    for (let i = 0; i < all.length; i += 16) {
      await Promise.all(
        all.slice(i, i + 16).map((c) => docker.getContainer(c.Id).remove({ force: true })),
      );
    }
  } catch {
    // The daemon may be down already.
  }
}

/**
 * Starts a private dockerd on a socket in `options.dir` (a new temp dir by default), with its own
 * data and exec roots and no networking, and imports busybox:test unless `options.busybox` is
 * undefined. Stopped by pid file, never by name.
 */
export async function startDockerd(options) {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'gpulse-dockerd-'));
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, 'docker.sock');
  const pidFile = join(dir, 'dockerd.pid');
  const docker = new Docker({ socketPath: socket });
  const launch = async () => {
    const log = openSync(join(dir, 'dockerd.log'), 'a');
    const child = spawn(
      options.dockerd,
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
        ...(options.args ?? []),
      ],
      { stdio: ['ignore', log, log], detached: true },
    );
    child.unref();
    try {
      await pollUntil('dockerd to answer', 60_000, () => pings(docker));
    } catch (err) {
      throw new Error(
        `${err.message}; dockerd log:\n${readFileSync(join(dir, 'dockerd.log'), 'utf8').slice(-2000)}`,
        { cause: err },
      );
    }
  };
  await launch();
  if (options.busybox !== undefined) {
    try {
      await importBusybox(docker, dir, options.busybox);
    } catch (err) {
      await stopByPidFile(pidFile, 20_000);
      throw err;
    }
  }
  return engineHandle({ socket, dir, docker, pidFile, graceMs: 20_000, launch });
}

/**
 * The stop/start/destroy handle of an engine run by pid file; `afterStop` runs in destroy once
 * the engine is down, before its folder is removed.
 */
export function engineHandle({ socket, dir, docker, pidFile, graceMs, launch, afterStop }) {
  return {
    socket,
    dir,
    docker,
    stop: () => stopByPidFile(pidFile, graceMs),
    start: launch,
    async destroy() {
      await removeAllContainers(docker);
      await stopByPidFile(pidFile, graceMs);
      afterStop?.();
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // A mount the daemon left behind keeps its directory; the temp dir is then left too.
      }
    },
  };
}
