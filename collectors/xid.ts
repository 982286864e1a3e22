/**
 * NVIDIA Xid errors as every source reports them (kernel log, DCGM): the record shape, the
 * severity policy and PCI bus id normalisation shared by the kmsg and dcgm collectors.
 */
import type { EventSeverity } from '../agent/core/events.js';

/** How bad an Xid is: `critical` pages someone, `warning` files a ticket, `info` is an app fault. */
export type XidSeverity = EventSeverity;

/** Where an Xid was seen. */
export type XidSource = 'kmsg' | 'dcgm';

/** One Xid error, as seen once by one source. */
export interface XidRecord {
  /** Monotonic per source within this agent run; events are emitted once per (source, seq). */
  readonly seq: number;
  readonly source: XidSource;
  /** Unix ms when the error happened (kernel timestamp or sample time). */
  readonly at: number;
  readonly xid: number;
  readonly severity: XidSeverity;
  /** Canonical `dddd:bb:dd` (see `normalizePciBusId`); absent when the source only knows the GPU id. */
  readonly pciBusId?: string;
  readonly gpuUuid?: string;
  /** GPU index where the source knows it (DCGM). */
  readonly gpuIndex?: number;
  /** The driver's words after the Xid number (kernel log), or the Xid's meaning (DCGM). */
  readonly text: string;
  readonly pid?: number;
  readonly processName?: string;
}

/** Xids counted by one source since it started, per GPU and code. */
export interface XidTotal {
  readonly source: XidSource;
  readonly pciBusId?: string;
  readonly gpuUuid?: string;
  readonly gpuIndex?: number;
  readonly xid: number;
  readonly severity: XidSeverity;
  readonly count: number;
}

declare module '../agent/core/facts.js' {
  interface Facts {
    /** Recent Xid records (bounded), oldest first. */
    xidErrors: readonly XidRecord[];
    /** Cumulative Xid counts since the source started. */
    xidTotals: readonly XidTotal[];
  }
}

interface XidMeaning {
  readonly severity: XidSeverity;
  readonly meaning: string;
}

/**
 * Severity per Xid, from shared/docs/research/edge-mqtt-ota-drift.md §4.3 (NVIDIA's Xid catalog),
 * plus 68 (an application error for the Kubernetes device plugin, like 13/31/43/45) and
 * 119/120 (GSP firmware timeouts/errors, on nvidia_gpu_exporter's must-alert list).
 */
export const XID_TABLE: ReadonlyMap<number, XidMeaning> = new Map([
  [13, { severity: 'info', meaning: 'Graphics Engine Exception' }],
  [31, { severity: 'info', meaning: 'GPU memory page fault' }],
  [43, { severity: 'info', meaning: 'GPU stopped processing' }],
  [45, { severity: 'info', meaning: 'Preemptive cleanup, due to previous errors' }],
  [48, { severity: 'critical', meaning: 'Double Bit ECC Error' }],
  [61, { severity: 'warning', meaning: 'Internal micro-controller breakpoint/warning' }],
  [62, { severity: 'critical', meaning: 'Internal micro-controller halt' }],
  [63, { severity: 'warning', meaning: 'ECC page retirement or row remapping recording event' }],
  [64, { severity: 'critical', meaning: 'ECC page retirement or row remapper recording failure' }],
  [68, { severity: 'info', meaning: 'NVDEC0 Exception' }],
  [74, { severity: 'critical', meaning: 'NVLink Error' }],
  [79, { severity: 'critical', meaning: 'GPU has fallen off the bus' }],
  [92, { severity: 'warning', meaning: 'High single-bit ECC error rate' }],
  [94, { severity: 'warning', meaning: 'Contained ECC error' }],
  [95, { severity: 'critical', meaning: 'Uncontained ECC error' }],
  [119, { severity: 'critical', meaning: 'GSP RPC timeout' }],
  [120, { severity: 'critical', meaning: 'GSP error' }],
]);

/**
 * Severity of an Xid. NVLink Xids 144–150 carry their own verdict in the text ("Fatal" or
 * "Nonfatal"); an Xid the table does not know is a `warning`: worth a look, not a page.
 */
export function xidSeverity(xid: number, text = ''): XidSeverity {
  const known = XID_TABLE.get(xid);
  if (known) return known.severity;
  if (xid >= 144 && xid <= 150) {
    if (/\bNonfatal\b/i.test(text)) return 'warning';
    if (/\bFatal\b/i.test(text)) return 'critical';
  }
  return 'warning';
}

/** NVIDIA's short description of an Xid, when the table knows it. */
export function xidMeaning(xid: number): string | undefined {
  return XID_TABLE.get(xid)?.meaning;
}

/**
 * Canonical PCI address of a GPU, `dddd:bb:dd` in lower-case hex without the function:
 * nvidia-smi prints `00000000:0A:00.0`, DCGM `00000001:00:00.0`, the kernel `0000:9b:00`.
 */
export function normalizePciBusId(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const m = /^(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})(?:\.[0-7])?$/i.exec(
    text.trim().replace(/^PCI:/i, ''),
  );
  if (!m) return undefined;
  const hex = (s: string | undefined, width: number): string =>
    parseInt(s ?? '0', 16)
      .toString(16)
      .padStart(width, '0');
  return `${hex(m[1], 4)}:${hex(m[2], 2)}:${hex(m[3], 2)}`;
}
