import { readFile } from 'node:fs/promises';
import { uptime } from 'node:os';
import { CollectorError, NoDataError, errorMessage } from '../../agent/core/errors.js';
import { counter, gauge, SampleBuilder } from '../../agent/core/metric.js';
import type { CollectContext, CollectorOutput, PolledCollector } from '../../agent/core/types.js';
import type { XidRecord, XidTotal } from '../xid.js';
import type { KmsgConfig } from './config.js';
import { openKmsgReader, type KmsgReader } from './kmsg-reader.js';
import { parseGpuIdentityLine, parseKmsgRecord, parseXidLine } from './parse-kmsg.js';

/** Collector name: folder, config key, log field and `collector` label value. */
export const KMSG = 'kmsg';

/** Self-metrics of the kernel log reader. */
export const kmsgMetrics = {
  records: counter(
    'gpulse_kmsg_records_total',
    'Kernel log records read, by whether they were logged after gpulse started (new) or before (history, not counted as errors).',
    ['age'],
  ),
  lost: counter(
    'gpulse_kmsg_records_lost_total',
    'Kernel log records overwritten before gpulse could read them (the ring buffer wrapped).',
  ),
  reopened: counter(
    'gpulse_kmsg_reopened_total',
    'Times the kernel log file was found truncated or replaced (rotation) and read from its start.',
  ),
  following: gauge('gpulse_kmsg_following', 'Which kernel log gpulse follows (value 1).', [
    'path',
    'kind',
  ]),
  xidsDropped: counter(
    'gpulse_kmsg_xids_dropped_total',
    'Xid records not counted because their (GPU, Xid) pair would have gone past collectors.kmsg.maxXidSeries distinct pairs (a flood of made-up Xids).',
  ),
} as const;

/** What the kmsg collector needs from outside. */
export interface KmsgDeps {
  /** Seconds since boot (default: /proc/uptime). */
  readonly uptime?: () => Promise<number>;
  readonly now?: () => number;
  readonly open?: (path: string) => Promise<KmsgReader>;
}

/** Most recent Xid records kept for events and the API; counts are kept separately and exactly. */
const RECENT_XIDS = 2000;
/** Bus id → UUID pairs remembered (the oldest is forgotten first): GPUs a host can hold, and more. */
const MAX_KNOWN_GPUS = 256;

/** Builds the kernel log collector: Xid errors (and which GPU has which bus id) from `/dev/kmsg`. */
export function createKmsgCollector(config: KmsgConfig, deps: KmsgDeps = {}): PolledCollector {
  return new KmsgCollector(config, deps);
}

async function procUptime(): Promise<number> {
  try {
    const text = await readFile('/proc/uptime', 'utf8');
    const seconds = Number(text.split(/\s+/)[0]);
    if (Number.isFinite(seconds)) return seconds;
  } catch {
    // Not Linux, or /proc not mounted: os.uptime() is coarser but close enough.
  }
  return uptime();
}

class KmsgCollector implements PolledCollector {
  readonly kind = 'polled';
  readonly name = KMSG;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  private reader: KmsgReader | undefined;
  /** Microseconds since boot when gpulse started: older records are history. */
  private startUsec: number | undefined;
  private bootMs = 0;
  private readonly now: () => number;
  private readCalls = 0;
  private lastDeviceSeq = -1;
  private seq = 0;
  private recent: XidRecord[] = [];
  private readonly totals = new Map<string, XidTotal>();
  private readonly uuidByBus = new Map<string, string>();
  private newRecords = 0;
  private historyRecords = 0;
  private lost = 0;
  private reopened = 0;
  private xidsDropped = 0;
  private last: { readonly key: string; readonly output: CollectorOutput } | undefined;

  constructor(
    private readonly config: KmsgConfig,
    private readonly deps: KmsgDeps,
  ) {
    this.intervalMs = config.interval;
    this.timeoutMs = config.timeout;
    this.now = deps.now ?? (() => Date.now());
  }

  async collect(ctx: CollectContext): Promise<CollectorOutput> {
    if (this.startUsec === undefined) {
      const up = await (this.deps.uptime ?? procUptime)();
      this.startUsec = Math.floor(up * 1e6);
      this.bootMs = this.now() - up * 1000;
    }
    const reader = await this.ensureReader();
    let chunk;
    try {
      chunk = await reader.read();
    } catch (err) {
      await this.dropReader();
      throw this.failure(err);
    }
    const firstRead = this.readCalls++ === 0;
    this.lost += chunk.lost;
    if (chunk.reopened) this.reopened++;
    for (const line of chunk.lines) this.take(line, reader.kind, firstRead && !chunk.reopened);
    if (chunk.lost > 0) {
      ctx.log.warn(
        { lost: chunk.lost },
        'kernel log records were overwritten before gpulse read them; Xids among them are not counted',
      );
    }
    return this.output(reader.kind);
  }

  async close(): Promise<void> {
    await this.dropReader();
  }

  private async ensureReader(): Promise<KmsgReader> {
    if (this.reader) return this.reader;
    try {
      this.reader = await (this.deps.open ?? openKmsgReader)(this.config.path);
      this.readCalls = 0;
      return this.reader;
    } catch (err) {
      throw this.failure(err);
    }
  }

  private async dropReader(): Promise<void> {
    const reader = this.reader;
    this.reader = undefined;
    await reader?.close().catch(() => undefined);
  }

  private failure(err: unknown): Error {
    const code = (err as NodeJS.ErrnoException).code;
    const path = this.config.path;
    let reason = 'read_error';
    let message = `cannot read ${path}: ${errorMessage(err)}`;
    let absent = false;
    if (code === 'ENOENT') {
      reason = 'kmsg_not_found';
      message = `${path} does not exist; Xid errors come from DCGM only (set GPULSE_KMSG to the kernel log, or GPULSE_KMSG_MODE=off)`;
      absent = true;
    } else if (code === 'EACCES' || code === 'EPERM') {
      reason = 'permission_denied';
      message = `${path} is not readable by this user; Xid errors come from DCGM only (run with CAP_SYSLOG, or as root, or set kernel.dmesg_restrict=0)`;
      absent = true;
    }
    if (absent && this.config.mode === 'auto') return new NoDataError(reason, message);
    return new CollectorError(reason, message);
  }

  /** One line: history is skipped (but still teaches bus id → UUID), new Xids are recorded. */
  private take(line: string, kind: KmsgReader['kind'], initialContent: boolean): void {
    const record = parseKmsgRecord(line);
    if (record === undefined && line.startsWith(' ')) return; // dictionary continuation line
    if (record && kind === 'device') {
      // After a reopen the device replays its whole ring: skip what was already taken.
      if (record.seq <= this.lastDeviceSeq) return;
      this.lastDeviceSeq = record.seq;
    }
    const message = record?.message ?? line;
    const identity = parseGpuIdentityLine(message);
    if (identity) this.learnGpu(identity.pciBusId, identity.uuid);
    // A record older than our start is history; a line without a kernel timestamp is history
    // when it was already in the file on the first read, new when appended later.
    const history = record ? record.usec < (this.startUsec ?? 0) : initialContent;
    if (history) this.historyRecords++;
    else this.newRecords++;
    if (history) return;
    const xid = parseXidLine(message);
    if (!xid) return;
    const key = `${xid.pciBusId}|${xid.xid}`;
    if (!this.totals.has(key) && this.totals.size >= this.config.maxXidSeries) {
      // A new pair past the bound: made-up lines must not grow the exposition without end.
      // Pairs already counted keep counting; this one is counted as dropped, not as an Xid.
      this.xidsDropped++;
      return;
    }
    const uuid = this.uuidByBus.get(xid.pciBusId);
    const at = record ? Math.round(this.bootMs + record.usec / 1000) : this.now();
    const full: XidRecord = {
      seq: ++this.seq,
      source: 'kmsg',
      at,
      xid: xid.xid,
      severity: xid.severity,
      pciBusId: xid.pciBusId,
      ...(uuid !== undefined ? { gpuUuid: uuid } : {}),
      text: xid.text,
      ...(xid.pid !== undefined ? { pid: xid.pid } : {}),
      ...(xid.processName !== undefined ? { processName: xid.processName } : {}),
    };
    this.recent.push(full);
    if (this.recent.length > RECENT_XIDS) this.recent = this.recent.slice(-RECENT_XIDS);
    const prev = this.totals.get(key);
    this.totals.set(key, {
      source: 'kmsg',
      pciBusId: xid.pciBusId,
      ...(uuid !== undefined ? { gpuUuid: uuid } : prev?.gpuUuid ? { gpuUuid: prev.gpuUuid } : {}),
      xid: xid.xid,
      severity: xid.severity,
      count: (prev?.count ?? 0) + 1,
    });
  }

  /** Remembers which GPU sits at a bus id, forgetting the longest-unseen one past the bound. */
  private learnGpu(pciBusId: string, uuid: string): void {
    this.uuidByBus.delete(pciBusId);
    this.uuidByBus.set(pciBusId, uuid);
    if (this.uuidByBus.size > MAX_KNOWN_GPUS) {
      const oldest = this.uuidByBus.keys().next().value;
      if (oldest !== undefined) this.uuidByBus.delete(oldest);
    }
  }

  private output(kind: KmsgReader['kind']): CollectorOutput {
    // Every record read moves one of these counts: same counts, same output. Handing back the
    // same object lets the agent skip a snapshot for a quiet log (most seconds of most hosts).
    const key = `${kind} ${this.newRecords} ${this.historyRecords} ${this.lost} ${this.reopened} ${this.xidsDropped}`;
    if (this.last?.key === key) return this.last.output;
    const b = new SampleBuilder();
    b.add(kmsgMetrics.records, { age: 'new' }, this.newRecords)
      .add(kmsgMetrics.records, { age: 'history' }, this.historyRecords)
      .add(kmsgMetrics.lost, {}, this.lost)
      .add(kmsgMetrics.reopened, {}, this.reopened)
      .add(kmsgMetrics.xidsDropped, {}, this.xidsDropped)
      .add(kmsgMetrics.following, { path: this.config.path, kind }, 1);
    // Totals learn a UUID once the driver logs it, even after the first Xid of that GPU.
    const totals = [...this.totals.values()].map((t) => {
      const uuid = t.pciBusId ? this.uuidByBus.get(t.pciBusId) : undefined;
      return uuid && !t.gpuUuid ? { ...t, gpuUuid: uuid } : t;
    });
    const output = {
      samples: b.build(),
      facts: { xidErrors: [...this.recent], xidTotals: totals },
    };
    this.last = { key, output };
    return output;
  }
}
