/**
 * Gateways of one share group and which of them serves which device.
 *
 * The broker hands each telemetry message of a `$share/<group>/...` subscription to one member,
 * but which one is its business: Mosquitto rotates through the members message by message, so a
 * device's batches would land on every gateway in turn and show on each of them. Instead every
 * device has one owner, chosen by rendezvous (highest random weight) hashing over the live
 * members: each gateway computes the same owner from the same member list, a member that leaves
 * hands only its own devices over (spread over the others), and one that joins takes a fair share.
 * A member that gets a message of a device it does not own forwards it to the owner's inbox topic.
 *
 * Members announce themselves with a retained presence message, refreshed every heartbeat, and
 * register an empty retained message as their last will: a gateway that dies (SIGKILL, lost
 * connection) disappears from every member's list as soon as the broker notices, and one whose
 * will got lost (a broker restart) after a few missed heartbeats.
 */
import type { Clock } from '../../agent/core/clock.js';

/** Root of the topics gateways of a share group talk over (devices have no access to it). */
export const GROUP_ROOT = 'gpulse/gateway/v1';

/** `gpulse/gateway/v1/<group>/member/<id>`: a member's retained presence (empty: gone). */
export function memberTopic(group: string, member: string): string {
  return `${GROUP_ROOT}/${group}/member/${member}`;
}

/** Filter of every member's presence. */
export function membersFilter(group: string): string {
  return `${GROUP_ROOT}/${group}/member/+`;
}

/** `gpulse/gateway/v1/<group>/inbox/<member>/<site>/<node>/<stream>`: messages forwarded to a member. */
export function inboxTopic(
  group: string,
  member: string,
  device: { readonly site: string; readonly node: string },
  stream: string,
): string {
  return `${GROUP_ROOT}/${group}/inbox/${member}/${device.site}/${device.node}/${stream}`;
}

/** Filter of one member's inbox. */
export function inboxFilter(group: string, member: string): string {
  return `${GROUP_ROOT}/${group}/inbox/${member}/+/+/+`;
}

/** The member id (one topic level) of a gateway from its MQTT client id. */
export function memberId(clientId: string): string {
  return clientId.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 128) || 'gateway';
}

/** 32-bit FNV-1a of `text`, continuing from `hash`. */
function fnv1a(text: string, hash = 0x811c9dc5): number {
  let h = hash;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** MurmurHash3's finalizer: FNV alone leaves the high bits of similar keys alike. */
function mix(h: number): number {
  let x = h;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Options of a group view. */
export interface GroupOptions {
  readonly clock: Clock;
  /** A member not heard for this long is taken as gone (its will was lost). */
  readonly memberTimeoutMs: number;
}

/** One gateway's view of its share group: the live members and the owner of each device. */
export class GatewayGroup {
  /** Other members, with when they were last heard. */
  private readonly others = new Map<string, number>();
  /** Members (this one included), sorted, each with its hash seed. */
  private ring: readonly { readonly id: string; readonly seed: number }[] = [];

  constructor(
    /** This gateway's member id. */
    readonly self: string,
    private readonly options: GroupOptions,
  ) {
    this.rebuild();
  }

  /** Takes a presence message of `member` (`present` false: its empty will); true when the members changed. */
  heard(member: string, present: boolean): boolean {
    if (member === this.self) return false;
    if (!present) {
      if (!this.others.delete(member)) return false;
      this.rebuild();
      return true;
    }
    const known = this.others.has(member);
    this.others.set(member, this.options.clock.now());
    if (known) return false;
    this.rebuild();
    return true;
  }

  /** Forgets members not heard within the timeout; true when the members changed. */
  expire(): boolean {
    const now = this.options.clock.now();
    let changed = false;
    for (const [id, at] of this.others)
      if (now - at > this.options.memberTimeoutMs) {
        this.others.delete(id);
        changed = true;
      }
    if (changed) this.rebuild();
    return changed;
  }

  /** Live member ids, this one included, sorted. */
  members(): string[] {
    return this.ring.map((m) => m.id);
  }

  /** The member that serves a device. */
  ownerOf(site: string, node: string): string {
    if (this.ring.length === 1) return this.self;
    const key = `${site}/${node}`;
    let best = '';
    let bestScore = -1;
    for (const m of this.ring) {
      const score = mix(fnv1a(key, m.seed));
      // The ring is sorted: on a tie the smaller id wins on every member alike.
      if (score > bestScore) {
        best = m.id;
        bestScore = score;
      }
    }
    return best;
  }

  /** True when this gateway serves the device. */
  owns(site: string, node: string): boolean {
    return this.ownerOf(site, node) === this.self;
  }

  private rebuild(): void {
    this.ring = [this.self, ...this.others.keys()]
      .sort()
      .map((id) => ({ id, seed: fnv1a(`${id}\u0000`) }));
  }
}
