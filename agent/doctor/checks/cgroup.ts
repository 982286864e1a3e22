import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Check, CheckOutcome } from '../types.js';

async function isDir(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** cgroup version of the host (per-container CPU/memory come from cgroup files). */
export const cgroupCheck: Check = {
  id: 'cgroup',
  title: 'cgroup version',
  async run(ctx): Promise<CheckOutcome> {
    const root = ctx.config.cgroupRoot;
    const controllers = await readFile(join(root, 'cgroup.controllers'), 'utf8').catch(
      () => undefined,
    );
    if (controllers !== undefined) {
      const list = controllers.trim().split(/\s+/).filter(Boolean);
      const missing = ['cpu', 'memory'].filter((c) => !list.includes(c));
      if (missing.length > 0)
        return {
          status: 'warn',
          required: false,
          finding: `v2 (unified) at ${root}, but without the ${missing.join(' and ')} controller`,
          problem: `per-container ${missing.join('/')} usage cannot be read from cgroup files`,
          fix: 'enable the controllers on the kernel command line (e.g. `cgroup_enable=memory`) and reboot; gpulse falls back to the Engine API meanwhile',
          details: { version: 2, root, controllers: list },
        };
      return {
        status: 'ok',
        required: false,
        finding: `v2 (unified) at ${root}: ${list.join(' ')}`,
        details: { version: 2, root, controllers: list },
      };
    }
    if (await isDir(join(root, 'memory'))) {
      const hybrid = await isDir(join(root, 'unified'));
      return {
        status: 'ok',
        required: false,
        finding: `v1 (${hybrid ? 'hybrid, v2 mounted at unified/' : 'legacy'}) at ${root}`,
        details: { version: 1, root, hybrid },
      };
    }
    return {
      status: 'warn',
      required: false,
      finding: `no cgroup filesystem under ${root}`,
      problem: 'per-container CPU and memory come from the slower Engine API stats calls instead',
      fix: `mount the host's cgroup tree read-only (\`-v /sys/fs/cgroup:/host/sys/fs/cgroup:ro\`) and set GPULSE_CGROUP_ROOT=/host/sys/fs/cgroup (cgroupRoot)`,
      details: { root },
    };
  },
};
