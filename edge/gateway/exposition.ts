/**
 * Prometheus text exposition (format 0.0.4) of the fleet. Hand-written on purpose: prom-client
 * renders every series of a registry on each scrape, while the gateway keeps each device's
 * series pre-rendered when its telemetry arrives and only concatenates them on a scrape, which is
 * what makes thousands of devices cheap.
 */

/** Escapes a label value (backslash, double quote, newline). */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** Escapes HELP text (backslash and newline). */
export function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));
}

/** Formats a sample value the way Prometheus parses it. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** `{a="1",b="2"}` from ordered label pairs ('' when none). */
export function formatLabels(pairs: readonly (readonly [string, string])[]): string {
  if (pairs.length === 0) return '';
  const parts = pairs.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  // Braces inside the join: the gateway keeps these strings per device, and one join gives one
  // flat string where wrapping the joined text would keep two concatenation nodes around it.
  parts[0] = `{${parts[0] as string}`;
  parts[parts.length - 1] += '}';
  return parts.join(',');
}

/** One sample line. */
export function sampleLine(
  name: string,
  pairs: readonly (readonly [string, string])[],
  value: number,
): string {
  return `${name}${formatLabels(pairs)} ${formatValue(value)}\n`;
}

/** One family: HELP, TYPE and its lines (already rendered). */
export function familyText(
  name: string,
  help: string,
  type: 'gauge' | 'counter',
  lines: readonly string[],
): string {
  return `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n${lines.join('')}`;
}
