/**
 * Pure parsers for kernel log lines: `/dev/kmsg` records and the NVIDIA driver's Xid and
 * GPU-identity messages inside any log format (kmsg, dmesg, `dmesg -T`, journal, syslog).
 */
import { normalizePciBusId, xidSeverity, type XidSeverity } from '../xid.js';

/** One `/dev/kmsg` record: `<prio>,<seq>,<usec since boot>,<flags>;<message>`. */
export interface KmsgRecord {
  /** Syslog priority and facility (facility * 8 + level). */
  readonly priority: number;
  readonly seq: number;
  /** Microseconds since boot (CLOCK_MONOTONIC) when the kernel logged it. */
  readonly usec: number;
  readonly flags: string;
  readonly message: string;
}

const RECORD_RE = /^(\d+),(\d+),(\d+),([^;]*);(.*)$/;

/**
 * Parses a kmsg record line; undefined for anything else (continuation lines that start with a
 * space and carry `KEY=value` pairs, or lines of other log formats).
 */
export function parseKmsgRecord(line: string): KmsgRecord | undefined {
  const m = RECORD_RE.exec(line);
  if (!m) return undefined;
  return {
    priority: Number(m[1]),
    seq: Number(m[2]),
    usec: Number(m[3]),
    flags: m[4] ?? '',
    message: unescapeKmsg(m[5] ?? ''),
  };
}

// The kernel escapes non-printable bytes (a newline inside a message becomes \x0a).
function unescapeKmsg(text: string): string {
  return text.replace(/\\x([0-9a-f]{2})/gi, (_m, hex: string) =>
    String.fromCharCode(parseInt(hex, 16)),
  );
}

/** An Xid as the driver logs it: `NVRM: Xid (PCI:0000:9b:00): 119, pid=..., name=..., text`. */
export interface XidLine {
  readonly xid: number;
  /** Canonical `dddd:bb:dd`. */
  readonly pciBusId: string;
  readonly severity: XidSeverity;
  /** Everything the driver wrote after the Xid number. */
  readonly text: string;
  readonly pid?: number;
  readonly processName?: string;
}

// SXid (NVSwitch) lines also say "Xid (PCI:...)" but are not GPU errors: require "NVRM: ".
const XID_RE =
  /NVRM: Xid \(PCI:([0-9a-fA-F]{1,8}:[0-9a-fA-F]{1,2}:[0-9a-fA-F]{1,2}(?:\.\d)?)\): (\d+)(?:,\s*(.*))?$/;
// Since driver 418: `pid=1234, name=python3, ...`; the unknown form is `pid='<unknown>', name=<unknown>`.
const PID_RE = /^pid=(?:'<unknown>'|(\d+)),\s*name=(\S*?),\s*/;

/** Finds an Xid in one log line of any format; undefined when there is none. */
export function parseXidLine(line: string): XidLine | undefined {
  // A substring test first: almost no kernel log line is an Xid, and it is ~10× cheaper.
  if (!line.includes('NVRM: Xid (')) return undefined;
  const m = XID_RE.exec(line);
  if (!m) return undefined;
  const pciBusId = normalizePciBusId(m[1]);
  const xid = Number(m[2]);
  if (pciBusId === undefined || !Number.isInteger(xid)) return undefined;
  const text = (m[3] ?? '').trim();
  const pidMatch = PID_RE.exec(text);
  const name = pidMatch?.[2];
  return {
    xid,
    pciBusId,
    severity: xidSeverity(xid, text),
    text,
    ...(pidMatch?.[1] !== undefined ? { pid: Number(pidMatch[1]) } : {}),
    ...(name !== undefined && name !== '<unknown>' ? { processName: name } : {}),
  };
}

/** `NVRM: GPU at PCI:0000:91:00: GPU-b6c3b2be-...`: which UUID sits at which bus address. */
export interface GpuIdentityLine {
  readonly pciBusId: string;
  readonly uuid: string;
}

const IDENTITY_RE =
  /NVRM: GPU at PCI:([0-9a-fA-F]{1,8}:[0-9a-fA-F]{1,2}:[0-9a-fA-F]{1,2}): (GPU-[0-9a-fA-F-]{36})/;

/** Finds the driver's "GPU at PCI:... GPU-uuid" line, logged before the Xids of that GPU. */
export function parseGpuIdentityLine(line: string): GpuIdentityLine | undefined {
  if (!line.includes('NVRM: GPU at PCI:')) return undefined;
  const m = IDENTITY_RE.exec(line);
  const pciBusId = normalizePciBusId(m?.[1]);
  if (!m || pciBusId === undefined || m[2] === undefined) return undefined;
  return { pciBusId, uuid: m[2] };
}
