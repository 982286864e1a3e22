import { existsSync } from 'node:fs';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { inContainer } from '../settings.js';
import type { Check, CheckOutcome } from '../types.js';

/** Inode of the initial PID namespace (PROC_PID_INIT_INO in the kernel's proc_ns.h). */
const HOST_PID_NS = 'pid:[4026531836]';
const INIT_NAMES = new Set(['systemd', 'init', 'launchd', 'openrc-init', 'runit', 's6-svscan']);

/** The host's processes visible under the configured proc root (GPU process → container attribution). */
export const hostProcCheck: Check = {
  id: 'host-proc',
  title: 'host /proc',
  async run(ctx): Promise<CheckOutcome> {
    // The agent-wide procRoot is the one GPU process attribution reads.
    const root = ctx.config.procRoot;
    let pids: number;
    try {
      pids = (await readdir(root)).filter((n) => /^\d+$/.test(n)).length;
    } catch (err) {
      return {
        status: 'fail',
        required: false,
        finding: `cannot read ${root}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        problem: 'GPU processes cannot be attributed to containers and host metrics are missing',
        fix: `mount the host's /proc read-only (\`-v /proc:/host/proc:ro\`) and set GPULSE_PROC_ROOT=/host/proc (procRoot)`,
        details: { procRoot: root },
      };
    }
    // Reading pid 1's namespace needs ptrace rights (often refused even to root in a sandbox);
    // our own is always readable, and being in the initial namespace settles it too.
    const ns = await readlink(join(root, '1', 'ns', 'pid')).catch(() => undefined);
    const selfNs = await readlink(join(root, 'self', 'ns', 'pid')).catch(() => undefined);
    const init = (await readFile(join(root, '1', 'comm'), 'utf8').catch(() => '')).trim();
    const details = {
      procRoot: root,
      pids,
      ...((ns ?? selfNs) ? { pidNamespace: ns ?? selfNs ?? '' } : {}),
      ...(init ? { pid1: init } : {}),
    };
    const host =
      ns !== undefined
        ? ns === HOST_PID_NS
        : selfNs === HOST_PID_NS || INIT_NAMES.has(init)
          ? true
          : undefined;
    const container = inContainer(ctx.env, existsSync);
    const fix = container
      ? "share the host PID namespace: `docker run --pid=host` (Kubernetes: hostPID: true), or mount the host's /proc (`-v /proc:/host/proc:ro`) and set GPULSE_PROC_ROOT=/host/proc"
      : `point GPULSE_PROC_ROOT (procRoot, --proc-root) at the host's /proc`;
    if (host === true)
      return {
        status: 'ok',
        required: false,
        finding: `${root} shows the host PID namespace: ${pids} processes visible`,
        details,
      };
    if (host === false || (container && pids < 10))
      return {
        status: 'warn',
        required: false,
        finding: `${root} shows a container's PID namespace: only ${pids} processes visible`,
        problem:
          'GPU processes of other containers are invisible, so they are not attributed to containers',
        fix,
        details,
      };
    return {
      status: 'ok',
      required: false,
      finding: `${root}: ${pids} processes visible (PID namespace not readable without root; pid 1 is ${init || 'unknown'})`,
      details,
    };
  },
};
