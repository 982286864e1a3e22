import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CgroupStats,
  cpuCores,
  keyValue,
  parseApiStats,
  parseBlkioV1,
  parseIoStatV2,
  parseKeyValues,
  parseNetDev,
  parseSingle,
  PseudoFiles,
} from './stats.js';

const CG = join(import.meta.dirname, 'fixtures', 'cgroup');
const API = join(import.meta.dirname, 'fixtures', 'docker-api');
const cg = (name: string) =>
  readFileSync(join(CG, `${name}__elastic-agent-system-metrics.txt`), 'utf8');
const api = (name: string): unknown => JSON.parse(readFileSync(join(API, name), 'utf8'));

describe('cgroup memory files (fixtures/cgroup v1__*, v2__*)', () => {
  it('v1 limit, usage, failcnt', () => {
    expect(parseSingle(cg('v1__memory.limit_in_bytes__kubepods-container'))).toBe(2147483648);
    expect(parseSingle(cg('v1__memory.usage_in_bytes__kubepods-container'))).toBe(1215860736);
    expect(parseSingle(cg('v1__memory.failcnt__kubepods-container'))).toBe(0);
    // v1's "no limit" is PAGE_COUNTER_MAX pages: no series rather than 8 EiB.
    expect(parseSingle('9223372036854771712\n')).toBeUndefined();
  });
  it('v2 current; literal max is no limit', () => {
    expect(parseSingle(cg('v2__memory.current__docker-scope'))).toBe(9125888);
    expect(parseSingle(cg('v2__memory.max__docker-scope'))).toBeUndefined();
    expect(parseSingle(cg('v2__memory.max__literal-max__user-session-scope'))).toBeUndefined();
  });
  it('oom_kill counters: v1 oom_control with and without the line, v2 memory.events(.local)', () => {
    expect(
      parseKeyValues(cg('v1__memory.oom_control__with-oom_kill-counter__kubepods-container')).get(
        'oom_kill',
      ),
    ).toBe(0);
    const old = parseKeyValues(
      cg('v1__memory.oom_control__without-oom_kill-line-older-kernel__docker-container'),
    );
    expect(old.get('oom_kill')).toBeUndefined();
    expect(old.get('under_oom')).toBe(0);
    const ev = parseKeyValues(cg('v2__memory.events__docker-scope-oom-1-oom_kill-1'));
    expect([ev.get('oom'), ev.get('oom_kill'), ev.get('max')]).toEqual([1, 1, 2]);
    expect(
      parseKeyValues(cg('v2__memory.events.local__docker-scope-all-zero')).get('oom_kill'),
    ).toBe(0);
    const group = parseKeyValues(cg('v2__memory.events__with-oom_group_kill__user-session-scope'));
    expect(group.get('oom_group_kill')).toBe(0);
    expect(group.get('oom_kill')).toBe(0);
  });
  it('memory.stat: v1 total_inactive_file, v2 inactive_file', () => {
    const v1 = parseKeyValues(cg('v1__memory.stat__docker-container'));
    expect(v1.get('total_inactive_file')).toBeTypeOf('number');
    expect(v1.get('cache')).toBe(65101824);
    const eks = parseKeyValues(
      cg('v1__memory.stat__kubepods-cri-containerd-container__amazon-linux-2'),
    );
    expect(eks.get('rss')).toBe(1119465472);
    expect(parseKeyValues(cg('v2__memory.stat__docker-scope')).get('anon')).toBe(411045888);
    expect(
      parseKeyValues(cg('v2__memory.stat__newer-kernel__user-session-scope')).get('file'),
    ).toBe(8621432832);
  });
});

describe('PseudoFiles', () => {
  it('keeps a descriptor and reads fresh content through it; release closes it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpulse-pf-'));
    try {
      const f = join(dir, 'memory.usage_in_bytes');
      writeFileSync(f, '100\n');
      const files = new PseudoFiles();
      expect(files.read(f)).toBe('100\n');
      expect(files.size).toBe(1);
      writeFileSync(f, '2048\n');
      expect(files.read(f)).toBe('2048\n');
      expect(files.size).toBe(1);
      files.release([dir]);
      expect(files.size).toBe(0);
      expect(files.read(join(dir, 'missing'))).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an exited process's /proc file fails to read and is closed, never shows another's data", async () => {
    const child = spawn('sleep', ['30']);
    await new Promise((r) => child.once('spawn', r));
    const files = new PseudoFiles();
    const path = `/proc/${child.pid}/stat`;
    expect(files.read(path)).toMatch(new RegExp(`^${child.pid} \\(sleep\\)`));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // Reaped: the kept descriptor points at a dead task.
    expect(files.read(path)).toBeUndefined();
    expect(files.size).toBe(0);
  });

  it('keeps at most maxOpen descriptors and still reads the rest', () => {
    const files = new PseudoFiles(1);
    expect(files.read('/proc/self/stat')).toBeTruthy();
    expect(files.read('/proc/self/status')).toContain('Name:');
    expect(files.size).toBe(1);
    files.close();
    expect(files.size).toBe(0);
  });
});

describe('keyValue', () => {
  it('finds one key of memory.stat without confusing it with longer keys', () => {
    const text = cg('v1__memory.stat__docker-container');
    expect(keyValue(text, 'cache')).toBe(65101824);
    expect(keyValue(text, 'total_inactive_file')).toBe(
      parseKeyValues(text).get('total_inactive_file'),
    );
    expect(keyValue('inactive_file_x 1\ninactive_file 7\n', 'inactive_file')).toBe(7);
    expect(keyValue(text, 'no_such_key')).toBeUndefined();
    expect(keyValue(undefined, 'cache')).toBeUndefined();
  });
});

describe('other cgroup and proc files', () => {
  it('blkio v1 sums Read/Write over devices and ignores Sync/Async/Total', () => {
    expect(
      parseBlkioV1(
        '8:0 Read 4096\n8:0 Write 100\n8:0 Sync 4196\n8:0 Total 4196\n8:16 Read 4\nTotal 4200\n',
      ),
    ).toEqual({
      read: 4100,
      write: 100,
    });
  });
  it('io.stat v2', () => {
    expect(
      parseIoStatV2(
        '8:0 rbytes=1000 wbytes=20 rios=3 wios=1 dbytes=0 dios=0\n253:0 rbytes=5 wbytes=0\n',
      ),
    ).toEqual({
      read: 1005,
      write: 20,
    });
  });
  it('net/dev without loopback', () => {
    const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0:    5338      36    0    0    0     0          0         0      648       8    0    0    0     0       0          0
`;
    expect(parseNetDev(text)).toEqual({ rx: 5338, tx: 648 });
  });
});

describe('parseApiStats (fixtures/docker-api)', () => {
  it('moby v1.24 doc example: two networks summed, no blkio list', () => {
    const s = parseApiStats(
      api('containers-id-stats__cgroup-v1__with-precpu__api-v1.24-doc-example__moby.json'),
      undefined,
    );
    expect(s).toEqual({
      source: 'api',
      cpuSeconds: 0.100215355,
      memoryUsageBytes: 6537216,
      memoryLimitBytes: undefined,
      memoryWorkingSetBytes: 6537216,
      networkReceiveBytes: 5338 + 4641,
      networkTransmitBytes: 648 + 690,
      blockReadBytes: undefined,
      blockWriteBytes: undefined,
      pids: 3,
    });
  });
  it('docker-java 1.27 capture: Read/Write of io_service_bytes_recursive', () => {
    const s = parseApiStats(
      api('containers-id-stats__cgroup-v1__with-precpu__api-v1.27-captured__docker-java.json'),
      2095874048,
    );
    expect([s.blockReadBytes, s.blockWriteBytes, s.pids, s.memoryLimitBytes]).toEqual([
      823296, 122880, 2, 2095874048,
    ]);
    expect(s.cpuSeconds).toBeCloseTo(0.212198028, 9);
  });
  it('cgroup v2 first sample: lower-case ops, v2 memory keys', () => {
    const s = parseApiStats(
      api('containers-id-stats__cgroup-v2__precpu-empty-first-sample__otel-contrib.json'),
      268435456,
    );
    expect(s).toMatchObject({
      cpuSeconds: 0.999478,
      memoryUsageBytes: 234647552,
      memoryLimitBytes: 268435456,
      blockReadBytes: 167936,
      blockWriteBytes: 0,
      networkReceiveBytes: 1296,
      pids: 1,
    });
  });
  it('Podman-style nulls and an empty object give absent values, not zeros', () => {
    expect(parseApiStats({}, undefined)).toEqual({
      source: 'api',
      cpuSeconds: undefined,
      memoryUsageBytes: undefined,
      memoryLimitBytes: undefined,
      memoryWorkingSetBytes: undefined,
      networkReceiveBytes: undefined,
      networkTransmitBytes: undefined,
      blockReadBytes: undefined,
      blockWriteBytes: undefined,
      pids: undefined,
    });
  });
});

describe('cpuCores', () => {
  it('is CPU seconds per wall second between samples of one run', () => {
    expect(cpuCores({ cpuSeconds: 10, at: 0 }, { cpuSeconds: 25, at: 10_000 })).toBe(1.5);
    expect(cpuCores(undefined, { cpuSeconds: 25, at: 10_000 })).toBeUndefined();
    // A counter that went down (restarted cgroup) is no rate.
    expect(cpuCores({ cpuSeconds: 10, at: 0 }, { cpuSeconds: 2, at: 10_000 })).toBeUndefined();
  });
});

describe('CgroupStats over a cgroup tree', () => {
  // Regular files stand in for cgroup files here; an unlinked regular file stays readable through
  // a kept descriptor, a removed cgroup's does not (ENODEV, checked against dockerd by hand and by
  // the integration suite), so these tests read without keeping descriptors.
  const read = (p: string) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  };
  let root: string | undefined;
  afterEach(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });
  const id = 'd091340e343d52765b99c385c9c8588717dcdedc0515dfc9c872284abae8bf5c';
  function tree(files: Record<string, string>): string {
    root = mkdtempSync(join(tmpdir(), 'gpulse-cg-'));
    for (const [p, text] of Object.entries(files)) {
      mkdirSync(join(root, p, '..'), { recursive: true });
      writeFileSync(join(root, p), text);
    }
    return root;
  }

  /** Cgroup statistics read from a tree made by `tree` (its cg/ and proc/ folders). */
  function statsOf(dir: string, unified: boolean): CgroupStats {
    return new CgroupStats({
      cgroupRoot: join(dir, 'cg'),
      procRoot: join(dir, 'proc'),
      unified,
      read,
    });
  }

  it('v1: controllers in their own mounts, as on this host', () => {
    const d = `/docker/${id}`;
    const dir = tree({
      'proc/7/cgroup': `8:pids:${d}\n7:blkio:${d}\n4:memory:${d}\n2:cpuacct:${d}\n1:cpu:${d}\n0::${d}\n`,
      'proc/7/net/dev': 'x\ny\n    lo: 9 1 0 0 0 0 0 0 9 1 0 0 0 0 0 0\n',
      [`cg/memory${d}/memory.usage_in_bytes`]: '573440\n',
      [`cg/memory${d}/memory.limit_in_bytes`]: '67108864\n',
      [`cg/memory${d}/memory.stat`]: 'cache 0\ntotal_inactive_file 40960\n',
      [`cg/memory${d}/memory.oom_control`]: 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n',
      [`cg/cpuacct${d}/cpuacct.usage`]: '38793704\n',
      [`cg/blkio${d}/blkio.throttle.io_service_bytes_recursive`]:
        '8:0 Read 4096\n8:0 Write 512\nTotal 4608\n',
      [`cg/pids${d}/pids.current`]: '3\n',
    });
    const s = statsOf(dir, false);
    const loc = s.locate(7)!;
    expect(loc).toEqual({
      version: 1,
      dirs: {
        memory: join(dir, 'cg', 'memory', d),
        cpuacct: join(dir, 'cg', 'cpuacct', d),
        blkio: join(dir, 'cg', 'blkio', d),
        pids: join(dir, 'cg', 'pids', d),
      },
    });
    expect(s.sample(loc, 7, true)).toEqual({
      source: 'cgroup',
      cpuSeconds: 0.038793704,
      memoryUsageBytes: 573440,
      memoryLimitBytes: 67108864,
      memoryWorkingSetBytes: 532480,
      oomKillCounter: 2,
      blockReadBytes: 4096,
      blockWriteBytes: 512,
      pids: 3,
      networkReceiveBytes: 0,
      networkTransmitBytes: 0,
    });
  });

  it('v1 co-mounted cpu,cpuacct', () => {
    const d = `/system.slice/docker-${id}.scope`;
    const dir = tree({
      'proc/7/cgroup': `5:cpu,cpuacct:${d}\n`,
      [`cg/cpu,cpuacct${d}/cpuacct.usage`]: '2000000000\n',
    });
    const s = statsOf(dir, false);
    const loc = s.locate(7)!;
    expect(s.sample(loc, 7, false)).toMatchObject({ cpuSeconds: 2, memoryUsageBytes: undefined });
  });

  it('v2: one directory, memory.events oom_kill, cpu.stat, io.stat; gone cgroup is no sample', () => {
    const d = `/system.slice/docker-${id}.scope`;
    const dir = tree({
      'proc/9/cgroup': `0::${d}\n`,
      [`cg${d}/memory.current`]: '9125888\n',
      [`cg${d}/memory.max`]: 'max\n',
      [`cg${d}/memory.stat`]: 'anon 100\ninactive_file 125888\n',
      [`cg${d}/memory.events`]: cg('v2__memory.events__docker-scope-oom-1-oom_kill-1'),
      [`cg${d}/cpu.stat`]: 'usage_usec 1500000\nuser_usec 1000000\n',
      [`cg${d}/io.stat`]: '8:0 rbytes=10 wbytes=20 rios=1 wios=1\n',
      [`cg${d}/pids.current`]: '4\n',
    });
    const s = statsOf(dir, true);
    const loc = s.locate(9)!;
    expect(loc).toEqual({ version: 2, dir: join(dir, 'cg', d) });
    expect(s.sample(loc, 9, false)).toEqual({
      source: 'cgroup',
      cpuSeconds: 1.5,
      memoryUsageBytes: 9125888,
      memoryLimitBytes: undefined,
      memoryWorkingSetBytes: 9000000,
      oomKillCounter: 1,
      blockReadBytes: 10,
      blockWriteBytes: 20,
      pids: 4,
    });
    rmSync(join(dir, 'cg', d), { recursive: true });
    expect(s.sample(loc, 9, false)).toBeUndefined();
  });

  it('a path relative to another cgroup namespace cannot be located', () => {
    const dir = tree({ 'proc/9/cgroup': '0::/../../system.slice/docker-x.scope\n' });
    const s = statsOf(dir, true);
    expect(s.locate(9)).toBeUndefined();
    expect(s.locate(10)).toBeUndefined();
  });
});
