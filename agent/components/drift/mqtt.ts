import { MODEL_NAME_RE } from './methods.js';

/** Topic filter a node subscribes to for the observations of every model it serves. */
export function observationSubscription(site: string, node: string): string {
  return `gpulse/v1/${site}/${node}/models/+/observations`;
}

/** Topic of one model's observations on one node. */
export function observationTopic(site: string, node: string, model: string): string {
  return `gpulse/v1/${site}/${node}/models/${model}/observations`;
}

const TOPIC_RE = /^gpulse\/v1\/([^/+#]+)\/([^/+#]+)\/models\/([^/+#]+)\/observations$/;

/** Site, node and model of an observations topic, or undefined for any other topic. */
export function parseObservationTopic(
  topic: string,
): { site: string; node: string; model: string } | undefined {
  const m = TOPIC_RE.exec(topic);
  if (!m || !MODEL_NAME_RE.test(m[3] ?? '')) return undefined;
  return { site: m[1] ?? '', node: m[2] ?? '', model: m[3] ?? '' };
}
