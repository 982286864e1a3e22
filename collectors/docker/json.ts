/**
 * Tolerant readers for Engine API JSON. The API's shape varies by engine (Docker, Podman) and
 * version (fields null, absent or renamed), and a wrong type must mean "not reported", never a crash.
 * Not zod: these run on every stats response of every container, where a schema parse per object
 * would cost more than the collector's whole CPU budget.
 */

/** A JSON object, or undefined. */
export type Json = Readonly<Record<string, unknown>>;

/** The value as an object, or undefined. */
export function obj(value: unknown): Json | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Json)
    : undefined;
}

/** Walks nested object keys. */
export function at(value: unknown, ...keys: readonly string[]): unknown {
  let cur: unknown = value;
  for (const k of keys) {
    const o = obj(cur);
    if (!o) return undefined;
    cur = o[k];
  }
  return cur;
}

/** A string value, or undefined. */
export function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** A finite number, or undefined. */
export function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** An array, or an empty one. */
export function arr(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : [];
}

/** A string map (labels, event attributes), dropping non-string values. */
export function stringMap(value: unknown): Readonly<Record<string, string>> {
  const out: Record<string, string> = {};
  const o = obj(value);
  if (!o) return out;
  for (const [k, v] of Object.entries(o)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** Milliseconds of an RFC 3339 time; undefined for Go's zero time ("0001-01-01T00:00:00Z") and garbage. */
export function timeMs(value: unknown): number | undefined {
  const s = str(value);
  if (!s || s.startsWith('0001-01-01')) return undefined;
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? ms : undefined;
}
