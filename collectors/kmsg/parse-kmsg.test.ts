import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { normalizePciBusId, xidSeverity } from '../xid.js';
import { parseGpuIdentityLine, parseKmsgRecord, parseXidLine } from './parse-kmsg.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');

function lines(file: string): string[] {
  return readFileSync(join(FIXTURES, file), 'utf8').split('\n');
}

/**
 * Every Xid line of every fixture, counted by GPU (bus id), Xid and severity. The counts were
 * taken with `grep -o 'NVRM: Xid (PCI:[^)]*): [0-9]*' | sort | uniq -c` on each file; the
 * severities are §4.3 of the research notes (unknown Xids: warning; NVLink 144–150 by their
 * Fatal/Nonfatal word).
 */
const EXPECTED: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  'dev-kmsg-raw__nvswitch-open-calico__negative__gpud.log': {},
  'dev-kmsg-raw__peermem-errors-plus-test-line__gpud.log': {},
  'dmesg-decode-iso__boot-log-driver-550.90.07-load__negative__gpud.log': {},
  'journalctl-k-short-iso__calico-k8s-node__negative__gpud.log': {},
  'journalctl-k-short-iso__docker-veth__negative__gpud.log': {},
  'dmesg-plus-syslog__system-oom-legacy__kernel-3.13__cadvisor.log': {},
  'syslog__memcg-oom-legacy-kill-process-score-sacrifice-child__kernel-3.13__cadvisor.log': {},
  'oom-kill__github-issue-excerpts.log': {},
  'dmesg-T__xid-119-gsp-rpc-timeout-with-stack__h100-xe9680__gpud.log': {
    '0000:9b:00 119 critical': 5,
  },
  'dmesg-decode-iso__xid-13-43-plus-oom-kill-variants-edited__gpud.log': {
    '0000:38:00 13 info': 16,
    '0000:38:00 43 info': 1,
  },
  'dmesg-decode-iso__xid-13-x629-xid-43__gpud.log': {
    '0000:38:00 13 info': 629,
    '0000:38:00 43 info': 7,
  },
  'dmesg-time-format-iso__xid-48-63-94-dbe-row-remap-contained__peermem__gpud.log': {
    '0000:19:00 48 critical': 1,
    '0000:19:00 63 warning': 1,
    '0000:19:00 94 warning': 9,
  },
  'dmesg__xid-79-fallen-off-bus-plus-sxid-20034__gpud-readme.log': {
    '0000:91:00 79 critical': 1,
  },
  'xid__github-issue-excerpts.log': {
    '0000:00:00 149 critical': 2,
    '0000:01:00 13 info': 4,
    '0000:01:00 144 warning': 1,
    '0000:01:00 31 info': 2,
    '0000:01:00 32 warning': 1,
    '0000:02:00 109 warning': 3,
    '0000:07:00 109 warning': 5,
    '0000:07:00 38 warning': 1,
    '0000:08:00 31 info': 2,
    '0000:26:00 109 warning': 1,
    '0000:44:00 79 critical': 1,
    '0000:61:00 45 info': 6,
    '0000:97:00 45 info': 1,
    '0000:ba:00 45 info': 2,
    '0000:cb:00 109 warning': 1,
    '0000:cb:00 13 info': 3,
    '0000:dc:00 45 info': 2,
    '0000:ed:00 45 info': 2,
    '0018:01:00 145 warning': 1,
    '0019:01:00 149 critical': 1,
  },
};

describe('Xid lines in every kernel log fixture', () => {
  it('covers every fixture file', () => {
    expect(
      readdirSync(FIXTURES)
        .filter((f) => f.endsWith('.log'))
        .sort(),
    ).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(Object.entries(EXPECTED))('%s', (file, expected) => {
    const got: Record<string, number> = {};
    for (const line of lines(file)) {
      const xid = parseXidLine(line);
      // A line yields an Xid exactly when the driver's "NVRM: Xid (PCI:" marker is on it.
      expect(xid !== undefined, line).toBe(line.includes('NVRM: Xid (PCI:'));
      if (!xid) continue;
      const key = `${xid.pciBusId} ${xid.xid} ${xid.severity}`;
      got[key] = (got[key] ?? 0) + 1;
    }
    expect(got).toEqual(expected);
  });
});

describe('parseXidLine', () => {
  it('reads pid, process name and the driver text (dmesg -T, Xid 119)', () => {
    const line = lines('dmesg-T__xid-119-gsp-rpc-timeout-with-stack__h100-xe9680__gpud.log')[2]!;
    expect(parseXidLine(line)).toEqual({
      xid: 119,
      pciBusId: '0000:9b:00',
      severity: 'critical',
      pid: 2024380,
      processName: 'nvidia-smi',
      text: 'pid=2024380, name=nvidia-smi, Timeout after 6s of waiting for RPC response from GPU4 GSP! Expected function 103 (GSP_RM_ALLOC) (0x2081 0x4).',
    });
  });

  it("leaves pid and name out when the driver says '<unknown>' (Xid 79)", () => {
    const line = lines('dmesg__xid-79-fallen-off-bus-plus-sxid-20034__gpud-readme.log')[2]!;
    const xid = parseXidLine(line);
    expect(xid).toMatchObject({ xid: 79, pciBusId: '0000:91:00', severity: 'critical' });
    expect(xid?.pid).toBeUndefined();
    expect(xid?.processName).toBeUndefined();
    expect(xid?.text).toContain('GPU has fallen off the bus.');
  });

  it('reads driver-418 lines without pid/name and the short Xid 79 form', () => {
    expect(
      parseXidLine(
        '[31609.615516] NVRM: Xid (PCI:0000:01:00): 32, Channel ID 00000052 intr 02000000',
      ),
    ).toEqual({
      xid: 32,
      pciBusId: '0000:01:00',
      severity: 'warning',
      text: 'Channel ID 00000052 intr 02000000',
    });
    expect(parseXidLine('NVRM: Xid (PCI:0000:44:00): 79, GPU has fallen off the bus')).toEqual({
      xid: 79,
      pciBusId: '0000:44:00',
      severity: 'critical',
      text: 'GPU has fallen off the bus',
    });
  });

  it('ignores NVSwitch SXid lines and OOM lines', () => {
    for (const line of lines('dmesg__xid-79-fallen-off-bus-plus-sxid-20034__gpud-readme.log')) {
      if (line.includes('SXid')) expect(parseXidLine(line)).toBeUndefined();
    }
    for (const line of lines('oom-kill__github-issue-excerpts.log'))
      expect(parseXidLine(line)).toBeUndefined();
  });

  it('finds the Xid inside a raw kmsg record', () => {
    const record = parseKmsgRecord(
      "3,4120,6781741548779,-;NVRM: Xid (PCI:0000:91:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
    );
    expect(record).toMatchObject({ priority: 3, seq: 4120, usec: 6781741548779, flags: '-' });
    expect(parseXidLine(record!.message)).toMatchObject({ xid: 79, pciBusId: '0000:91:00' });
  });
});

describe('parseKmsgRecord', () => {
  it('parses every record of the raw /dev/kmsg fixtures, repeated sequence numbers included', () => {
    const records = lines('dev-kmsg-raw__peermem-errors-plus-test-line__gpud.log')
      .filter((l) => l !== '')
      .map(parseKmsgRecord);
    expect(records.every((r) => r !== undefined)).toBe(true);
    expect(records.map((r) => r!.seq)).toEqual(Array(8).fill(3973));
    expect(records.at(-1)).toEqual({
      priority: 6,
      seq: 3973,
      usec: 227996662,
      flags: '-',
      message: 'test',
    });
    const other = lines('dev-kmsg-raw__nvswitch-open-calico__negative__gpud.log').filter(
      (l) => l !== '',
    );
    expect(other.map(parseKmsgRecord).filter((r) => r === undefined)).toEqual([]);
    expect(parseKmsgRecord(other[0]!)).toEqual({
      priority: 6,
      seq: 3964,
      usec: 206764307,
      flags: '-',
      message: 'nvidia-nvswitch2: open (major=510)',
    });
  });

  it('rejects other formats and continuation lines, and unescapes \\x0a', () => {
    expect(parseKmsgRecord(' SUBSYSTEM=pci')).toBeUndefined();
    expect(parseKmsgRecord('[ 7839.537911] NVRM: Xid (PCI:0000:26:00): 109')).toBeUndefined();
    expect(parseKmsgRecord('4,1,2,-;line one\\x0aline two')?.message).toBe('line one\nline two');
  });
});

describe('parseGpuIdentityLine', () => {
  it('learns which UUID sits at which bus id', () => {
    expect(
      parseGpuIdentityLine(
        lines('dmesg-T__xid-119-gsp-rpc-timeout-with-stack__h100-xe9680__gpud.log')[0]!,
      ),
    ).toEqual({ pciBusId: '0000:9b:00', uuid: 'GPU-509665ad-b600-ac93-3616-d754b23d636d' });
    expect(
      parseGpuIdentityLine(
        lines('dmesg__xid-79-fallen-off-bus-plus-sxid-20034__gpud-readme.log')[0]!,
      ),
    ).toEqual({ pciBusId: '0000:91:00', uuid: 'GPU-b6c3b2be-c55b-d076-fa0e-d464e4c7e08b' });
    expect(parseGpuIdentityLine('NVRM: GPU Board Serial Number: 1653723052734')).toBeUndefined();
  });
});

describe('normalizePciBusId and xidSeverity', () => {
  it('gives one spelling for the kernel, nvidia-smi and DCGM forms', () => {
    expect(normalizePciBusId('PCI:0000:9b:00')).toBe('0000:9b:00');
    expect(normalizePciBusId('00000000:9B:00.0')).toBe('0000:9b:00');
    expect(normalizePciBusId('00000001:00:00.0')).toBe('0001:00:00');
    expect(normalizePciBusId('00001580:00:00.0')).toBe('1580:00:00');
    expect(normalizePciBusId('0000:91:00.0')).toBe('0000:91:00');
    expect(normalizePciBusId('not a bus')).toBeUndefined();
  });

  it('follows the §4.3 table', () => {
    const table: [number, string][] = [
      [13, 'info'],
      [31, 'info'],
      [43, 'info'],
      [45, 'info'],
      [48, 'critical'],
      [61, 'warning'],
      [62, 'critical'],
      [63, 'warning'],
      [64, 'critical'],
      [74, 'critical'],
      [79, 'critical'],
      [92, 'warning'],
      [94, 'warning'],
      [95, 'critical'],
      [999, 'warning'],
    ];
    for (const [xid, severity] of table) expect(xidSeverity(xid), `Xid ${xid}`).toBe(severity);
    expect(xidSeverity(149, 'NETIR_LINK_EVT Fatal XC0')).toBe('critical');
    expect(xidSeverity(145, 'RLW_RXPIPE Nonfatal XC0')).toBe('warning');
  });
});
