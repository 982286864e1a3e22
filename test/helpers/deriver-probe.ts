import type { NewEvent } from '../../agent/core/events.js';
import type { Deriver, Sample, Snapshot } from '../../agent/core/types.js';

/** Runs a deriver as the store does and keeps the events it returns until a test takes them. */
export class DeriverProbe {
  private pending: NewEvent[] = [];

  constructor(private readonly deriver: Deriver) {}

  /** The series the deriver computes for `snapshot`; its events wait for `drainEvents`. */
  derive(snapshot: Snapshot): readonly Sample[] {
    const { samples, events } = this.deriver.derive(snapshot);
    this.pending.push(...(events ?? []));
    return samples;
  }

  /** Events returned since the last call, oldest first. */
  drainEvents(): NewEvent[] {
    const out = this.pending;
    this.pending = [];
    return out;
  }
}

const probes = new WeakMap<Deriver, DeriverProbe>();

/** The one probe of `owner`'s deriver, so derive and drainEvents calls in a test share it. */
export function probe(owner: { readonly deriver: Deriver }): DeriverProbe {
  let p = probes.get(owner.deriver);
  if (!p) probes.set(owner.deriver, (p = new DeriverProbe(owner.deriver)));
  return p;
}
