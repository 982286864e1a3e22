import { appendFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDirs } from '../../test/helpers/temp-dirs.js';
import { NoDataError, CollectorError } from '../../agent/core/errors.js';
import type { CollectContext, CollectorOutput } from '../../agent/core/types.js';
import { collectContext, sampleValue } from '../../test/helpers/collector-harness.js';
import { captureLogger } from '../../test/helpers/log-sink.js';
import { describeWhen, readable } from '../../test/helpers/tools.js';
import type { XidRecord, XidTotal } from '../xid.js';
import { kmsgConfigSchema } from './config.js';
import { createKmsgCollector } from './kmsg.js';
import type { KmsgReader } from './kmsg-reader.js';

const tempDir = tempDirs('gpulse-kmsg-');

function tempFile(content = ''): string {
  const dir = tempDir();
  const path = join(dir, 'kmsg.log');
  writeFileSync(path, content);
  return path;
}

// The agent starts 1000 s after boot; wall clock 1 700 000 000 000 ms at that moment.
const START_UPTIME_S = 1000;
const NOW = 1_700_000_000_000;
const BOOT_MS = NOW - START_UPTIME_S * 1000;

function record(seq: number, sinceBootS: number, message: string, prio = 3): string {
  return `${prio},${seq},${Math.round(sinceBootS * 1e6)},-;${message}\n`;
}

const XID_79 =
  "NVRM: Xid (PCI:0000:91:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.";
const XID_13 =
  "NVRM: Xid (PCI:0000:38:00): 13, pid='<unknown>', name=<unknown>, Graphics SM Warp Exception on (GPC 9, TPC 1, SM 1): Out Of Range Address";
const IDENTITY = 'NVRM: GPU at PCI:0000:91:00: GPU-b6c3b2be-c55b-d076-fa0e-d464e4c7e08b';

function collector(
  path: string,
  mode: 'auto' | 'required' = 'auto',
  open?: (p: string) => Promise<KmsgReader>,
) {
  return createKmsgCollector(kmsgConfigSchema.parse({ path, mode }), {
    uptime: () => Promise.resolve(START_UPTIME_S),
    now: () => NOW,
    ...(open ? { open } : {}),
  });
}

function ctx(): CollectContext {
  return collectContext(() => NOW, captureLogger().log);
}

function xids(out: CollectorOutput): readonly XidRecord[] {
  return out.facts?.xidErrors ?? [];
}

function totals(out: CollectorOutput): readonly XidTotal[] {
  return out.facts?.xidTotals ?? [];
}

function sample(
  out: CollectorOutput,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  return sampleValue(out.samples, name, labels);
}

describe('kmsg collector following a file in kmsg record format', () => {
  it('skips records from before the agent started and counts those logged after', async () => {
    const path = tempFile(
      record(10, 500, IDENTITY, 6) +
        record(11, 500.1, XID_79) +
        // A line without a kernel timestamp already in the file is history too.
        `[  500.2] ${XID_13}\n`,
    );
    const c = collector(path);
    const first = await c.collect(ctx());
    expect(xids(first)).toEqual([]);
    expect(totals(first)).toEqual([]);
    expect(sample(first, 'gpulse_kmsg_records_total', { age: 'history' })).toBe(3);
    expect(sample(first, 'gpulse_kmsg_following', { kind: 'file', path })).toBe(1);

    appendFileSync(
      path,
      record(12, 1000.5, XID_79) + `${XID_13}\n` + record(13, 1001, 'eth0: link up', 6),
    );
    const second = await c.collect(ctx());
    expect(xids(second)).toEqual([
      {
        seq: 1,
        source: 'kmsg',
        at: BOOT_MS + 1_000_500,
        xid: 79,
        severity: 'critical',
        pciBusId: '0000:91:00',
        // Learnt from the identity line of the history, which is not itself counted.
        gpuUuid: 'GPU-b6c3b2be-c55b-d076-fa0e-d464e4c7e08b',
        text: "pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
      },
      expect.objectContaining({
        seq: 2,
        xid: 13,
        severity: 'info',
        pciBusId: '0000:38:00',
        at: NOW,
      }),
    ]);
    expect(totals(second)).toEqual([
      {
        source: 'kmsg',
        pciBusId: '0000:91:00',
        gpuUuid: 'GPU-b6c3b2be-c55b-d076-fa0e-d464e4c7e08b',
        xid: 79,
        severity: 'critical',
        count: 1,
      },
      { source: 'kmsg', pciBusId: '0000:38:00', xid: 13, severity: 'info', count: 1 },
    ]);
    expect(sample(second, 'gpulse_kmsg_records_total', { age: 'new' })).toBe(3);

    // Nothing new: nothing more counted.
    const third = await c.collect(ctx());
    expect(totals(third).reduce((n, t) => n + t.count, 0)).toBe(2);
    await c.close?.();
  });

  it('keeps a half-written line until its newline arrives', async () => {
    const path = tempFile();
    const c = collector(path);
    await c.collect(ctx());
    const line = record(20, 1002, XID_79);
    appendFileSync(path, line.slice(0, 25));
    expect(xids(await c.collect(ctx()))).toEqual([]);
    appendFileSync(path, line.slice(25));
    expect(xids(await c.collect(ctx())).map((r) => r.xid)).toEqual([79]);
    await c.close?.();
  });

  it('hands back the same output object while nothing new was logged', async () => {
    const path = tempFile(record(1, 10, 'boot message'));
    const c = collector(path);
    const first = await c.collect(ctx());
    // Same object: the agent then skips a snapshot for the quiet second.
    expect(await c.collect(ctx())).toBe(first);
    appendFileSync(path, record(2, 1001, 'usb 1-1: new device'));
    const second = await c.collect(ctx());
    expect(second).not.toBe(first);
    expect(sample(second, 'gpulse_kmsg_records_total', { age: 'new' })).toBe(1);
    expect(xids(second)).toEqual([]);
    appendFileSync(path, record(3, 1002, XID_79));
    const third = await c.collect(ctx());
    expect(xids(third).map((r) => r.xid)).toEqual([79]);
    expect(await c.collect(ctx())).toBe(third);
    await c.close?.();
  });

  it('survives truncation (copytruncate) and rotation without losing or repeating records', async () => {
    const path = tempFile(record(1, 1001, XID_79));
    const c = collector(path);
    expect(xids(await c.collect(ctx()))).toHaveLength(1);

    truncateSync(path, 0);
    appendFileSync(path, record(2, 1002, XID_13));
    const afterTruncate = await c.collect(ctx());
    expect(xids(afterTruncate).map((r) => r.xid)).toEqual([79, 13]);
    expect(sample(afterTruncate, 'gpulse_kmsg_reopened_total')).toBe(1);

    // Written to the old file after our last read, then rotated away: still read, once.
    appendFileSync(path, record(3, 1003, XID_79));
    renameSync(path, `${path}.1`);
    writeFileSync(path, record(4, 1004, XID_13));
    const afterRotate = await c.collect(ctx());
    expect(xids(afterRotate).map((r) => r.xid)).toEqual([79, 13, 79, 13]);
    expect(sample(afterRotate, 'gpulse_kmsg_reopened_total')).toBe(2);
    const t = Object.fromEntries(totals(afterRotate).map((x) => [x.xid, x.count]));
    expect(t).toEqual({ 79: 2, 13: 2 });
    expect(xids(await c.collect(ctx()))).toHaveLength(4);
    await c.close?.();
  });

  it('replays every line of the Xid flood fixture appended after start: 629 Xid 13 and 7 Xid 43', async () => {
    const { readFileSync } = await import('node:fs');
    const flood = readFileSync(
      join(import.meta.dirname, 'fixtures', 'dmesg-decode-iso__xid-13-x629-xid-43__gpud.log'),
      'utf8',
    );
    const path = tempFile();
    const c = collector(path);
    await c.collect(ctx());
    // The fixture's last line has no newline; a follower waits for it, so add it.
    appendFileSync(path, `${flood}\n`);
    const out = await c.collect(ctx());
    expect(Object.fromEntries(totals(out).map((t) => [t.xid, t.count]))).toEqual({
      13: 629,
      43: 7,
    });
    expect(xids(out)).toHaveLength(636);
    expect(xids(out).map((r) => r.seq)).toEqual(Array.from({ length: 636 }, (_, i) => i + 1));
    await c.close?.();
  });
});

describe('kmsg collector when the kernel log cannot be read', () => {
  it('a missing path is "no data" in auto mode and an error when required', async () => {
    const missing = join(tmpdir(), 'gpulse-no-such-kmsg');
    await expect(collector(missing).collect(ctx())).rejects.toSatisfy(
      (e) =>
        e instanceof NoDataError && e.reason === 'kmsg_not_found' && /GPULSE_KMSG/.test(e.message),
    );
    await expect(collector(missing, 'required').collect(ctx())).rejects.toSatisfy(
      (e) => e instanceof CollectorError && e.reason === 'kmsg_not_found',
    );
  });

  it('permission denied says how to fix it', async () => {
    const open = () =>
      Promise.reject(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }));
    await expect(collector('/dev/kmsg', 'auto', open).collect(ctx())).rejects.toSatisfy(
      (e) =>
        e instanceof NoDataError &&
        e.reason === 'permission_denied' &&
        /CAP_SYSLOG/.test(e.message),
    );
  });

  it('a device reopened after a read error does not count its replayed ring twice', async () => {
    let opens = 0;
    let failNext = false;
    const ring = [record(100, 1001, XID_79), record(101, 1002, XID_13)].map((l) => l.trim());
    const open = (): Promise<KmsgReader> => {
      opens++;
      let served = false;
      return Promise.resolve({
        kind: 'device' as const,
        read: () => {
          if (failNext) {
            failNext = false;
            return Promise.reject(Object.assign(new Error('EIO'), { code: 'EIO' }));
          }
          const lines = served ? [] : ring;
          served = true;
          return Promise.resolve({ lines, lost: 0, reopened: false });
        },
        close: () => Promise.resolve(),
      });
    };
    const c = collector('/dev/kmsg', 'auto', open);
    expect(xids(await c.collect(ctx()))).toHaveLength(2);
    failNext = true;
    await expect(c.collect(ctx())).rejects.toSatisfy((e) => e instanceof CollectorError);
    const again = await c.collect(ctx());
    expect(opens).toBe(2);
    expect(xids(again)).toHaveLength(2);
  });
});

describe('kmsg collector under a flood of made-up Xids', () => {
  it('counts at most maxXidSeries (GPU, Xid) pairs, drops and counts the rest, keeps the real ones', async () => {
    const path = tempFile();
    const c = createKmsgCollector(kmsgConfigSchema.parse({ path, maxXidSeries: 50 }), {
      uptime: () => Promise.resolve(START_UPTIME_S),
      now: () => NOW,
    });
    await c.collect(ctx());
    // A real Xid first, then 20,000 distinct lines (each its own bus id and Xid code).
    let text = record(1, 1001, IDENTITY, 6) + record(2, 1001, XID_79);
    for (let i = 0; i < 20_000; i++) {
      const bus = `${(i & 0xff).toString(16)}:${((i >> 8) & 0x1f).toString(16)}`;
      text += record(3 + i, 1002, `NVRM: Xid (PCI:0000:${bus}): ${1000 + i}, made up`);
    }
    // The real GPU's Xid again, after the flood: its pair is counted already, so it still counts.
    text += record(30_000, 1003, XID_79);
    appendFileSync(path, text);
    const out = await c.collect(ctx());
    const t = totals(out);
    expect(t).toHaveLength(50);
    expect(t.find((x) => x.xid === 79)).toEqual({
      source: 'kmsg',
      pciBusId: '0000:91:00',
      gpuUuid: 'GPU-b6c3b2be-c55b-d076-fa0e-d464e4c7e08b',
      xid: 79,
      severity: 'critical',
      count: 2,
    });
    expect(sample(out, 'gpulse_kmsg_xids_dropped_total')).toBe(20_000 - 49);
    // Dropped Xids are no events either: the recent list holds only counted ones.
    expect(xids(out)).toHaveLength(51);
  });

  it('forgets the oldest bus id → UUID pairs past the bound, the newest stay', async () => {
    const path = tempFile();
    const c = collector(path);
    await c.collect(ctx());
    let text = '';
    for (let i = 0; i < 1000; i++) {
      const uuid = `GPU-${i.toString(16).padStart(8, '0')}-0000-0000-0000-000000000000`;
      text += record(
        1 + i,
        1001,
        `NVRM: GPU at PCI:0000:${(i >> 4).toString(16)}:${(i & 15).toString(16)}: ${uuid}`,
        6,
      );
    }
    text += record(2000, 1002, `NVRM: Xid (PCI:0000:3e:07): 79, gone`);
    text += record(2001, 1002, `NVRM: Xid (PCI:0000:00:00): 79, gone`);
    appendFileSync(path, text);
    const out = await c.collect(ctx());
    // 0x3e7 = 999: the last GPU learnt is known; the first one was forgotten.
    expect(totals(out).map((x) => [x.pciBusId, x.gpuUuid])).toEqual([
      ['0000:3e:07', 'GPU-000003e7-0000-0000-0000-000000000000'],
      ['0000:00:00', undefined],
    ]);
  });
});

// Every test machine and CI run as root on a host that has /dev/kmsg (environment.md); a
// container without it, or a user without root, is told to fix that, and CI fails.
describeWhen(
  'kmsg collector on this machine’s /dev/kmsg',
  [readable('/dev/kmsg', 'run as root on a host or container that has /dev/kmsg')],
  () => {
    it('reads the ring as history, record by record, without blocking', async () => {
      const c = createKmsgCollector(kmsgConfigSchema.parse({}));
      const out = await c.collect(ctx());
      expect(sample(out, 'gpulse_kmsg_following', { kind: 'device', path: '/dev/kmsg' })).toBe(1);
      expect(sample(out, 'gpulse_kmsg_records_total', { age: 'history' })).toBeGreaterThan(0);
      // A second read returns (O_NONBLOCK; a blocking read would hang until the test times out)
      // with the history counted once: nothing new, or a few new lines.
      const history = sample(out, 'gpulse_kmsg_records_total', { age: 'history' });
      const again = await c.collect(ctx());
      expect(sample(again, 'gpulse_kmsg_records_total', { age: 'history' })).toBe(history);
      await c.close?.();
    });
  },
);
