/**
 * Lost GPUs as events: `gpu.lost` when a GPU source starts listing a GPU as attached but
 * unreachable (fallen off the bus), `gpu.recovered` when it answers again.
 */
import type { NewEvent } from '../../core/events.js';
import type { GpuView } from './gpu-views.js';

function keyOf(v: GpuView): string {
  return v.reading.uuid || `lost:${v.reading.pciBusId ?? v.reading.index}`;
}

function where(v: GpuView): string {
  const bus = v.reading.pciBusId ? ` at ${v.reading.pciBusId}` : '';
  return `GPU ${v.reading.index}${v.reading.name ? ` (${v.reading.name})` : ''}${bus}`;
}

/** Follows which GPUs are lost across snapshots; call `update` on each. */
export class LostGpuEvents {
  private lost = new Map<string, GpuView>();
  private pending: NewEvent[] = [];

  /** Takes the views of a snapshot and queues an event per change. */
  update(views: readonly GpuView[], now: number): void {
    const next = new Map<string, GpuView>();
    for (const v of views) if (v.lost) next.set(keyOf(v), v);
    for (const [key, v] of next) {
      if (this.lost.has(key) || !v.lost) continue;
      this.pending.push({
        type: 'gpu.lost',
        severity: 'critical',
        source: v.sources[0] ?? 'gpu-health',
        ts: v.lost.since,
        message:
          `${where(v)} is lost: "${v.lost.reason}". It no longer answers its driver and every job ` +
          'on it has failed; drain the node and reboot it (Xid 79 in the kernel log says it fell off the bus).',
        labels: { gpu: String(v.reading.index), uuid: v.reading.uuid },
        data: {
          reason: v.lost.reason,
          since: new Date(v.lost.since).toISOString(),
          ...(v.reading.pciBusId ? { pciBusId: v.reading.pciBusId } : {}),
        },
      });
    }
    for (const [key, v] of this.lost) {
      if (next.has(key)) continue;
      const reporter = v.sources[0];
      const back = views.find(
        (x) =>
          !x.lost &&
          (reporter === undefined || x.sources.includes(reporter)) &&
          ((v.reading.uuid !== '' && x.reading.uuid === v.reading.uuid) ||
            (v.reading.pciBusId !== undefined && x.reading.pciBusId === v.reading.pciBusId)),
      );
      // Only the source that reported the loss can say it is over. While that source is away (a
      // stream restarting, the collector stopped), another source's view of the GPU (DCGM lists
      // a lost GPU too) is no recovery, and the GPU stays lost here, so its return as lost is
      // not a second loss.
      if (!back) {
        next.set(key, v);
        continue;
      }
      this.pending.push({
        type: 'gpu.recovered',
        severity: 'info',
        source: back.sources[0] ?? 'gpu-health',
        ts: now,
        message: `${where(back)} answers its driver again`,
        labels: { gpu: String(back.reading.index), uuid: back.reading.uuid },
      });
    }
    this.lost = next;
  }

  /**
   * The views as every surface shows them: a GPU still held lost stays lost (identity only, up 0)
   * while the source that reported the loss is away, whatever another source's view of it says;
   * listed even where no source lists it now. Call after `update`.
   */
  hold(views: readonly GpuView[]): GpuView[] {
    const same = (a: GpuView, b: GpuView) =>
      (a.reading.uuid !== '' && a.reading.uuid === b.reading.uuid) ||
      (a.reading.pciBusId !== undefined && a.reading.pciBusId === b.reading.pciBusId);
    const held = [...this.lost.values()];
    const out = views.map((v) => (v.lost ? v : (held.find((h) => same(h, v)) ?? v)));
    for (const h of held) if (!out.some((v) => v === h || same(v, h))) out.push(h);
    return out;
  }

  /** Events produced since the last call, oldest first. */
  drainEvents(): NewEvent[] {
    const out = this.pending;
    this.pending = [];
    return out;
  }
}
