/** The longest delay a Node.js timer keeps: longer ones fire after 1 ms instead. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Bounds of duration settings (README, "Limits"): none may reach MAX_TIMER_MS. */
export const DURATION_LIMITS = {
  /** Any duration setting without a tighter bound (24 days). */
  max: 24 * 86_400_000,
  /** Sampling and evaluation intervals: a monitor sampling less than hourly is not one. */
  interval: 3_600_000,
  /** Limits of one call (a one-shot command, a request). */
  timeout: 600_000,
} as const;

const UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses "500ms", "15s", "1m", "1h30m", "7d" or a bare number of milliseconds.
 * Hand-written: a dozen lines, and the `ms` package does not accept compound values like "1h30m".
 */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : undefined;
  const text = input.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    total += Number(m[1]) * (UNITS[m[2] ?? ''] ?? NaN);
    consumed = re.lastIndex;
  }
  if (consumed === 0 || consumed !== text.length || !Number.isFinite(total)) return undefined;
  return total;
}

/** Formats milliseconds the way the config accepts them back ("1500ms", "15s", "2m"). */
export function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0 && ms > 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
