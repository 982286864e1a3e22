/**
 * Xid errors across sources: `gpulse_gpu_xid_errors_total` and one `gpu.xid` event per Xid.
 * The kernel log sees every Xid; DCGM only the last value per GPU, so DCGM counts only while
 * the kernel log cannot be read (otherwise each Xid would be counted twice).
 */
import { counter, SampleBuilder } from '../metric.js';
import type { NewEvent } from '../events.js';
import type { Labels, Sample, Snapshot } from '../types.js';
import {
  normalizePciBusId,
  type XidRecord,
  type XidSeverity,
  type XidSource,
  type XidTotal,
} from '../../collectors/xid.js';
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

/** Follows Xid facts across snapshots; call `update` on each snapshot. */
export class XidTracker {
  /** Bus id → GPU, remembered: a GPU that fell off the bus is no longer listed by anyone. */
  private readonly byBus = new Map<string, GpuIdentity>();
  private readonly byUuid = new Map<string, GpuIdentity>();
  private readonly counts = new Map<string, { labels: Labels; value: number }>();
  private readonly seenTotals = new Map<string, number>();
  private readonly lastSeq = new Map<XidSource, number>();
  private readonly lastXidByGpu = new Map<string, number>();
  private recentByGpu = new Map<string, XidRecord[]>();
  private pending: NewEvent[] = [];
  private kmsgOk = false;

  /** Takes the snapshot's Xid facts. */
  update(snapshot: Snapshot, views: readonly GpuView[]): void {
    for (const v of views) {
      const id = { index: v.reading.index, uuid: v.reading.uuid };
      this.byUuid.set(v.reading.uuid, id);
      const bus = normalizePciBusId(v.reading.pciBusId);
      if (bus) this.byBus.set(bus, id);
    }
    this.kmsgOk = snapshot.collectors.get('kmsg')?.status === 'ok';
    for (const state of snapshot.collectors.values()) {
      const totals = state.output.facts?.xidTotals ?? [];
      for (const t of totals) this.takeTotal(state.collector, t);
      const records = state.output.facts?.xidErrors ?? [];
      for (const r of records) this.takeRecord(r);
    }
  }

  /** Whether a source's Xids count now: DCGM only stands in for an unreadable kernel log. */
  private countsNow(source: XidSource): boolean {
    return source === 'kmsg' || !this.kmsgOk;
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
    if (delta === 0 || !this.countsNow(t.source)) return;
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

  private takeRecord(r: XidRecord): void {
    const last = this.lastSeq.get(r.source) ?? 0;
    // Sequence numbers are per source for the agent's life: anything not above the last is seen.
    if (r.seq <= last) return;
    this.lastSeq.set(r.source, r.seq);
    if (!this.countsNow(r.source)) return;
    const gpu = this.resolve(r);
    const uuid = gpu?.uuid ?? r.gpuUuid ?? '';
    const index = gpu?.index ?? r.gpuIndex;
    const key = uuid || r.pciBusId || '';
    this.lastXidByGpu.set(key, r.xid);
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

  /** The last Xid counted for a GPU (by UUID or bus id). */
  lastXid(uuid: string, pciBusId?: string): number | undefined {
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

  /** The counter series. */
  samples(): Sample[] {
    const b = new SampleBuilder();
    for (const { labels, value } of this.counts.values()) b.add(xidMetrics.errors, labels, value);
    return b.build();
  }
}
