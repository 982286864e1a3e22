import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { captureLogger } from '../../test/helpers/log-sink.js';
import { attributeProcesses, ProcessContainers } from './process-containers.js';

const A = 'b29faf21b7eff959f64b4192c34d5d67a707fe8561e9eaa608cb27693fba4242';
const B = '1c8fa019edd4b9d4b2856f4932c55929c5c118c808ed5faee9a135ca6e84b039';

let root: string | undefined;
afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

function procRoot(files: Record<string, string>): string {
  root = mkdtempSync(join(tmpdir(), 'gpulse-proc-'));
  for (const [path, text] of Object.entries(files)) {
    const full = join(root, path);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, text);
  }
  return root;
}

describe('ProcessContainers', () => {
  it('resolves PIDs from <procRoot>/<pid>/cgroup, falls back to mountinfo, caches per PID', () => {
    const dir = procRoot({
      '100/cgroup': `4:memory:/docker/${A}\n0::/docker/${A}\n`,
      '200/cgroup': '0::/\n',
      '200/mountinfo': `1 0 8:1 /var/lib/docker/containers/${B}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n`,
      '300/cgroup': '0::/user.slice/user-1000.slice/session-2.scope\n',
    });
    let now = 0;
    const reads: string[] = [];
    const pc = new ProcessContainers({
      procRoot: dir,
      now: () => now,
      readText: (p) => {
        reads.push(p.slice(dir.length));
        try {
          return readFileSync(p, 'utf8');
        } catch {
          return undefined;
        }
      },
    });
    expect(pc.resolve(100)).toEqual({ id: A, runtime: 'docker' });
    expect(pc.resolve(200)).toEqual({ id: B, runtime: 'docker' });
    expect(pc.resolve(300)).toBeUndefined();
    expect(reads).toEqual([
      // PID 1 once: is this the host's /proc?
      '/1/cgroup',
      '/100/cgroup',
      '/200/cgroup',
      '/200/mountinfo',
      '/300/cgroup',
      '/300/mountinfo',
    ]);
    reads.length = 0;
    now = 30_000;
    expect(pc.resolve(100)?.id).toBe(A);
    expect(pc.resolve(300)).toBeUndefined();
    expect(reads).toEqual([]);
    // 200 was not asked about for more than the TTL: forgotten and read again.
    now = 70_000;
    pc.resolve(100);
    expect(pc.size).toBe(2);
    pc.resolve(200);
    expect(reads).toEqual(['/200/cgroup', '/200/mountinfo']);
    // A PID that is not visible is read once per 10 s, not on every tick.
    reads.length = 0;
    expect(pc.resolve(999)).toBeUndefined();
    now = 75_000;
    expect(pc.resolve(999)).toBeUndefined();
    expect(reads).toEqual(['/999/cgroup']);
    now = 80_000;
    pc.resolve(999);
    expect(reads).toEqual(['/999/cgroup', '/999/cgroup']);
  });

  it("says once, with the fix, when procRoot is a container's /proc, not the host's", () => {
    const dir = procRoot({
      '1/cgroup': `0::/system.slice/docker-${B}.scope\n`,
      '100/cgroup': `0::/system.slice/docker-${B}.scope\n`,
    });
    const { log, records } = captureLogger();
    const pc = new ProcessContainers({ procRoot: dir, now: () => 0, log });
    expect(pc.resolve(4242)).toBeUndefined();
    expect(pc.resolve(4243)).toBeUndefined();
    expect(pc.resolve(100)).toEqual({ id: B, runtime: 'docker' });
    const warned = records.filter((r) => r.level === 40);
    expect(warned).toHaveLength(1);
    expect(String(warned[0]?.msg)).toContain(
      `${dir} is the PID namespace of container ${B.slice(0, 12)}`,
    );
    expect(String(warned[0]?.msg)).toContain('GPULSE_PROC_ROOT=/host/proc');
    expect(String(warned[0]?.msg)).toContain('--pid=host');
  });

  it('on the host a PID that is gone is no warning (it just exited)', () => {
    const dir = procRoot({ '1/cgroup': '0::/init.scope\n' });
    const { log, records } = captureLogger();
    const pc = new ProcessContainers({ procRoot: dir, now: () => 0, log });
    expect(pc.resolve(4242)).toBeUndefined();
    expect(records.filter((r) => (r.level as number) >= 40)).toEqual([]);
  });

  it('an unreadable procRoot is said once', () => {
    const { log, records } = captureLogger();
    const pc = new ProcessContainers({ procRoot: '/nonexistent/proc', now: () => 0, log });
    pc.resolve(1);
    pc.resolve(2);
    const warned = records.filter((r) => r.level === 40).map((r) => String(r.msg));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(
      /^cannot read \/nonexistent\/proc\/1\/cgroup: GPU processes cannot be attributed/,
    );
  });

  it('reads the real /proc: this test process runs in no engine container', () => {
    const pc = new ProcessContainers({ procRoot: '/proc', now: () => 0 });
    expect(pc.resolve(process.pid)).toBeUndefined();
    expect(pc.size).toBe(1);
  });
});

describe('attributeProcesses', () => {
  it('fills container fields of processes in containers and leaves the others untouched', () => {
    const dir = procRoot({
      '100/cgroup': `0::/kubepods.slice/kubepods-pod22949dce_fd8b_11ea_8ede_98f2b32c645c.slice/cri-containerd-${A}.scope\n`,
      '300/cgroup': '0::/init.scope\n',
    });
    const pc = new ProcessContainers({ procRoot: dir, now: () => 0 });
    const procs = [
      { pid: 100, gpuUuid: 'GPU-a', processName: 'python' },
      { pid: 300, gpuUuid: 'GPU-a', processName: 'Xorg' },
    ];
    expect(attributeProcesses(procs, pc)).toEqual([
      {
        pid: 100,
        gpuUuid: 'GPU-a',
        processName: 'python',
        containerId: A,
        containerRuntime: 'containerd',
      },
      { pid: 300, gpuUuid: 'GPU-a', processName: 'Xorg' },
    ]);
  });
});
