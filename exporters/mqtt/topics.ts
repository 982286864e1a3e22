/**
 * The MQTT topic map of a gpulse fleet: `gpulse/v1/<site>/<node>/<stream>`.
 * One fixed, documented schema (mqtt2prometheus #1/#133: free-form topics are hard to consume).
 */

/** Root of every gpulse topic; the version segment changes only with incompatible payloads. */
export const TOPIC_ROOT = 'gpulse/v1';

/** Streams a node publishes, with what each carries. */
export interface NodeStreams {
  /** Batched snapshots of every series (QoS 0 or 1 by config, default 1). */
  readonly telemetry: 'telemetry';
  /** Agent events: OOM kills, GPU OOM, Xid, throttling episodes, updates, drift (QoS 1). */
  readonly events: 'events';
  /** Retained online/offline state; the offline message is the MQTT last will (QoS 1). */
  readonly status: 'status';
  /** Retained series identities of the node's telemetry (QoS 1), for receivers that missed the inline copy. */
  readonly schema: 'schema';
}

/** Name of one stream a node publishes. */
export type StreamName = keyof NodeStreams;

/** Every published stream, in a fixed order. */
export const STREAMS: readonly StreamName[] = ['telemetry', 'events', 'status', 'schema'];

/** Identity of one device in the fleet. */
export interface NodeId {
  readonly site: string;
  readonly node: string;
}

// Letters, digits, dot, dash and underscore: never an MQTT wildcard (+ #), a level separator (/)
// or a leading $ (reserved for broker topics), and safe as a Prometheus label value and a file name.
const SEGMENT_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Why a site or node name is unusable, or undefined when it is fine. */
export function segmentProblem(kind: 'site' | 'node', value: string): string | undefined {
  if (SEGMENT_RE.test(value)) return undefined;
  return `${kind} ${JSON.stringify(value)} must be 1-64 characters of letters, digits, ".", "-" or "_", starting with a letter or digit (it is one MQTT topic level)`;
}

/** A node name derived from a host name: invalid characters become "-". */
export function nodeFromHostname(hostname: string): string {
  const cleaned = hostname
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 64);
  return cleaned.length > 0 ? cleaned : 'node';
}

/** `gpulse/v1/<site>/<node>` */
export function nodePrefix(id: NodeId): string {
  return `${TOPIC_ROOT}/${id.site}/${id.node}`;
}

/** Topic of one stream of a node. */
export function streamTopic(id: NodeId, stream: StreamName): string {
  return `${nodePrefix(id)}/${stream}`;
}

/** Topic under the node's prefix, e.g. `cmd/model-update` → `gpulse/v1/s/n/cmd/model-update`. */
export function nodeTopic(id: NodeId, suffix: string): string {
  return `${nodePrefix(id)}/${suffix.replace(/^\/+/, '')}`;
}

/** Filter of one stream across the whole fleet (what a gateway subscribes to). */
export function fleetFilter(stream: StreamName, root = TOPIC_ROOT): string {
  return `${root}/+/+/${stream}`;
}

/** An MQTT 5 shared subscription of a filter: the broker gives each message to one group member. */
export function sharedFilter(group: string, filter: string): string {
  return `$share/${group}/${filter}`;
}

/** A fleet topic split into its parts. */
export interface ParsedTopic extends NodeId {
  readonly stream: StreamName;
}

/** Parses `gpulse/v1/<site>/<node>/<stream>`; undefined for anything else (counted by the gateway). */
export function parseStreamTopic(topic: string, root = TOPIC_ROOT): ParsedTopic | undefined {
  if (!topic.startsWith(`${root}/`)) return undefined;
  const parts = topic.slice(root.length + 1).split('/');
  if (parts.length !== 3) return undefined;
  const [site, node, stream] = parts as [string, string, string];
  if (!SEGMENT_RE.test(site) || !SEGMENT_RE.test(node)) return undefined;
  if (!(STREAMS as readonly string[]).includes(stream)) return undefined;
  return { site, node, stream: stream as StreamName };
}

/** True when `topic` matches the MQTT filter `filter` (with + and # wildcards). */
export function topicMatches(filter: string, topic: string): boolean {
  return levelsMatch(filter.split('/'), topic.split('/'));
}

/**
 * The filter levels a subscription matches topics with: a shared subscription's
 * `$share/<group>/` prefix is not part of its filter (MQTT 5 §4.8.2).
 */
export function subscriptionLevels(subscription: string): readonly string[] {
  return subscription.replace(/^\$share\/[^/]+\//, '').split('/');
}

/** `topicMatches` on a filter and a topic already split into levels (split once, matched often). */
export function levelsMatch(filter: readonly string[], topic: readonly string[]): boolean {
  for (let i = 0; i < filter.length; i++) {
    const level = filter[i];
    // `a/#` also matches `a` itself (MQTT 3.1.1 §4.7.1.2).
    if (level === '#') return topic.length >= i;
    if (i >= topic.length) return false;
    if (level === '+') continue;
    if (level !== topic[i]) return false;
  }
  return filter.length === topic.length;
}
