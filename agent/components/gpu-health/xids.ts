/**
 * Xid errors across sources: `gpulse_gpu_xid_errors_total` and one `gpu.xid` event per Xid.
 * The kernel log sees every Xid and is counted exactly (from its totals). DCGM only shows the
 * last Xid per GPU: each DCGM Xid waits a grace period and counts only when the kernel log
 * did not log the same Xid on the same GPU around that time, so nothing is counted twice and
 * a host whose kernel log cannot be read still gets DCGM's Xids.
 */
import { counter, SampleBuilder } from '../../core/metric.js';
import type { NewEvent } from '../../core/events.js';
import type { Labels, Sample, Snapshot } from '../../core/types.js';
import {
  normalizePciBusId,
  type XidRecord,
  type XidSource,
  type XidSeverity,
  type XidTotal,
} from '../../../collectors/xid.js';
import type { GpuView } from './gpu-views.js';

/** The Xid counter. */
export const xidMetrics = {
  errors: counter(
    'gpulse_gpu_xid_errors_total',
    'NVIDIA Xid errors since gpulse started, by Xid and severity (critical: drain or reset the GPU; warning: look at it; info: an application fault).',
    ['gpu', 'uuid', 'xid', 'severity'],
  ),
} as const;

interface GpuIdentity {
  readonly index: number;
  readonly uuid: string;
}

/** Options of the tracker. */
export interface XidTrackerOptions {
  /** How long a DCGM Xid waits for the kernel log to report it too (default 10 s). */
  readonly graceMs?: number;
  /** Two sources' Xids this close in time (same GPU, same Xid) are one Xid (default 60 s). */
  readonly windowMs?: number;
}

/** Follows Xid facts across snapshots; call `update` on each snapshot. */
export class XidTracker {
  /** Bus id → GPU, remembered: a GPU that fell off the bus is no longer listed by anyone. */
  private readonly byBus = new Map<string, GpuIdentity>();
  private readonly byUuid = new Map<string, GpuIdentity>();
  private readonly counts = new Map<string, { labels: Labels; value: number }>();
  private readonly seenTotals = new Map<string, number>();
  private readonly lastSeq = new Map<XidSource, number>();
  private readonly lastXidByGpu = new Map<string, { xid: number; at: number }>();
  /** Unix ms of the latest counted Xid per `uuid|xid` (the series of `counts`, severity aside). */
  private readonly lastAtByXid = new Map<string, number>();
  private recentByGpu = new Map<string, XidRecord[]>();
  private pending: NewEvent[] = [];
  /** DCGM Xids waiting for their grace period, with the snapshot time they were first seen. */
  private waiting: { record: XidRecord; seenAt: number }[] = [];
  /** Recent kernel-log Xids by GPU key, to recognise DCGM's view of the same error. */
  private kmsgRecent: { key: string; xid: number; at: number }[] = [];
  private readonly graceMs: number;
  private readonly windowMs: number;

  constructor(options: XidTrackerOptions = {}) {
    this.graceMs = options.graceMs ?? 10_000;
    this.windowMs = options.windowMs ?? 60_000;
  }

  /** Takes the snapshot's Xid facts. */
  update(snapshot: Snapshot, views: readonly GpuView[]): void {
    for (const v of views) {
      const id = { index: v.reading.index, uuid: v.reading.uuid };
      // A GPU lost before anyone named it has no UUID; its bus still maps its Xids.
      if (v.reading.uuid !== '') this.byUuid.set(v.reading.uuid, id);
      const bus = normalizePciBusId(v.reading.pciBusId);
      if (bus) this.byBus.set(bus, id);
    }
    for (const state of snapshot.collectors.values()) {
      for (const t of state.output.facts?.xidTotals ?? []) {
        if (t.source === 'kmsg') this.takeTotal(state.collector, t);
      }
      for (const r of state.output.facts?.xidErrors ?? []) {
        const last = this.lastSeq.get(r.source) ?? 0;
        // Sequence numbers are per source for the agent's life: anything not above the last is seen.
        if (r.seq <= last) continue;
        this.lastSeq.set(r.source, r.seq);
        if (r.source === 'kmsg') {
          this.kmsgRecent.push({ key: this.gpuKey(r), xid: r.xid, at: r.at });
          this.record(r);
        } else {
          this.waiting.push({ record: r, seenAt: snapshot.takenAt });
        }
      }
    }
    this.kmsgRecent = this.kmsgRecent.filter((k) => k.at >= snapshot.takenAt - 2 * this.windowMs);
    const still: typeof this.waiting = [];
    for (const w of this.waiting) {
      if (snapshot.takenAt - w.seenAt < this.graceMs) {
        still.push(w);
        continue;
      }
      const key = this.gpuKey(w.record);
      const seenByKernel = this.kmsgRecent.some(
        (k) =>
          k.key === key && k.xid === w.record.xid && Math.abs(k.at - w.record.at) <= this.windowMs,
      );
      if (seenByKernel) continue;
      this.count(w.record, 1);
      this.record(w.record);
    }
    this.waiting = still;
  }

  /** The GPU an Xid belongs to, as one key whichever source named it (UUID, else bus id). */
  private gpuKey(r: { pciBusId?: string; gpuUuid?: string }): string {
    return this.resolve(r)?.uuid ?? r.gpuUuid ?? r.pciBusId ?? '';
  }

  private resolve(t: {
    pciBusId?: string;
    gpuUuid?: string;
    gpuIndex?: number;
  }): GpuIdentity | undefined {
    return (
      (t.gpuUuid ? this.byUuid.get(t.gpuUuid) : undefined) ??
      (t.pciBusId ? this.byBus.get(t.pciBusId) : undefined)
    );
  }

  private takeTotal(collector: string, t: XidTotal): void {
    const key = `${collector}|${t.source}|${t.pciBusId ?? ''}|${t.gpuUuid ?? ''}|${t.gpuIndex ?? ''}|${t.xid}`;
    const seen = this.seenTotals.get(key) ?? 0;
    // A collector restarted (its totals began again): everything it has now is new.
    const delta = t.count >= seen ? t.count - seen : t.count;
    this.seenTotals.set(key, t.count);
    if (delta > 0) this.count(t, delta);
  }

  private count(
    t: {
      pciBusId?: string;
      gpuUuid?: string;
      gpuIndex?: number;
      xid: number;
      severity: XidSeverity;
    },
    delta: number,
  ): void {
    const gpu = this.resolve(t);
    const labels: Labels = {
      gpu: gpu ? String(gpu.index) : t.gpuIndex !== undefined ? String(t.gpuIndex) : '',
      uuid: gpu?.uuid ?? t.gpuUuid ?? '',
      xid: String(t.xid),
      severity: t.severity,
    };
    const ck = `${labels.gpu}|${labels.uuid}|${labels.xid}|${labels.severity}`;
    const prev = this.counts.get(ck);
    this.counts.set(ck, { labels, value: (prev?.value ?? 0) + delta });
  }

  /** Remembers a counted Xid for the API and queues its event. */
  private record(r: XidRecord): void {
    const gpu = this.resolve(r);
    const uuid = gpu?.uuid ?? r.gpuUuid ?? '';
    const index = gpu?.index ?? r.gpuIndex;
    const key = uuid || r.pciBusId || '';
    this.lastXidByGpu.set(key, { xid: r.xid, at: r.at });
    const xidKey = `${uuid}|${r.xid}`;
    // Bounded with the counters: a (GPU, Xid) pair here is one of `counts` too.
    this.lastAtByXid.set(xidKey, Math.max(this.lastAtByXid.get(xidKey) ?? 0, r.at));
    const list = this.recentByGpu.get(key) ?? [];
    list.push(r);
    this.recentByGpu.set(key, list.slice(-20));
    const where =
      index !== undefined ? `GPU ${index}` : `the GPU at ${r.pciBusId ?? 'an unknown bus id'}`;
    this.pending.push({
      type: 'gpu.xid',
      severity: r.severity,
      source: r.source,
      ts: r.at,
      message: `Xid ${r.xid} on ${where}${r.pciBusId ? ` (${r.pciBusId})` : ''}: ${r.text}`,
      labels: { gpu: index !== undefined ? String(index) : '', uuid },
      data: {
        xid: r.xid,
        severity: r.severity,
        text: r.text,
        source: r.source,
        ...(r.pciBusId ? { pciBusId: r.pciBusId } : {}),
        ...(r.pid !== undefined ? { pid: r.pid } : {}),
        ...(r.processName !== undefined ? { processName: r.processName } : {}),
      },
    });
  }

  /** Whether any Xid source is being read (so "no Xid" can be told apart from "cannot tell"). */
  watching(snapshot: Snapshot): boolean {
    return [...snapshot.collectors.values()].some(
      (s) => s.status === 'ok' && s.output.facts?.xidTotals !== undefined,
    );
  }

  /** Events produced since the last call, oldest first. */
  drainEvents(): NewEvent[] {
    const out = this.pending;
    this.pending = [];
    return out;
  }

  /** The last Xid counted for a GPU (by UUID or bus id), with the Unix ms it happened at. */
  lastXid(uuid: string, pciBusId?: string): { xid: number; at: number } | undefined {
    return this.lastXidByGpu.get(uuid) ?? (pciBusId ? this.lastXidByGpu.get(pciBusId) : undefined);
  }

  /** The most recent Xids counted for a GPU, oldest first. */
  recent(uuid: string, pciBusId?: string): readonly XidRecord[] {
    return (
      this.recentByGpu.get(uuid) ?? (pciBusId ? this.recentByGpu.get(pciBusId) : undefined) ?? []
    );
  }

  /** Xids counted for a GPU, by severity. */
  totals(uuid: string): Partial<Record<XidSeverity, number>> {
    const out: Partial<Record<XidSeverity, number>> = {};
    for (const { labels, value } of this.counts.values()) {
      if (labels.uuid !== uuid) continue;
      const severity = labels.severity as XidSeverity;
      out[severity] = (out[severity] ?? 0) + value;
    }
    return out;
  }

  /** Xids counted per GPU and code (severities summed), with the time of the latest one seen. */
  perXid(): { uuid: string; xid: number; count: number; lastAt?: number }[] {
    const out = new Map<string, { uuid: string; xid: number; count: number; lastAt?: number }>();
    for (const { labels, value } of this.counts.values()) {
      const uuid = labels.uuid ?? '';
      const key = `${uuid}|${labels.xid}`;
      const prev = out.get(key);
      if (prev) prev.count += value;
      else {
        const lastAt = this.lastAtByXid.get(key);
        out.set(key, {
          uuid,
          xid: Number(labels.xid),
          count: value,
          ...(lastAt !== undefined ? { lastAt } : {}),
        });
      }
    }
    return [...out.values()];
  }

  /** The counter series. */
  samples(): Sample[] {
    const b = new SampleBuilder();
    for (const { labels, value } of this.counts.values()) b.add(xidMetrics.errors, labels, value);
    return b.build();
  }
}
