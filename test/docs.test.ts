// The README's configuration and metrics references are generated from the code, and this test keeps
// them in sync: `npm run docs` rewrites them, `npm test` fails when they drift.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../agent/config.js';
import { formatDuration } from '../agent/duration.js';
import { declaredMetrics } from '../agent/metric.js';
import { settings } from '../agent/settings.js';
import './helpers/declare-all-metrics.js';
import { REPO_ROOT } from './helpers/cli.js';

const README = join(REPO_ROOT, 'README.md');

function leaves(value: unknown, path: string[] = []): [string[], unknown][] {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>);
    // A listen address is one setting, not two.
    if (path.join('.') === 'listen') return [[path, value]];
    return entries.flatMap(([k, v]) => leaves(v, [...path, k]));
  }
  return [[path, value]];
}

function showDefault(path: string[], value: unknown): string {
  const key = path[path.length - 1] ?? '';
  if (path.join('.') === 'listen') {
    const l = value as { host: string; port: number };
    return `\`${l.host}:${l.port}\``;
  }
  if (
    typeof value === 'number' &&
    /(interval|timeout|age|period|window|delay|ttl|flush)$/i.test(key)
  ) {
    return `\`${formatDuration(value)}\``;
  }
  if (Array.isArray(value)) return value.length === 0 ? '`[]`' : `\`${JSON.stringify(value)}\``;
  if (value === undefined) return '—';
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    return `\`${value}\``;
  }
  return `\`${JSON.stringify(value)}\``;
}

/** The configuration reference table. */
export function configTable(): string {
  const defaults = agentConfigSchema.parse({});
  const byPath = new Map(settings.map((s) => [s.path.join('.'), s]));
  const rows = leaves(defaults).map(([path, value]) => {
    const s = byPath.get(path.join('.'));
    return `| \`${path.join('.')}\` | ${showDefault(path, value)} | ${s?.env ? `\`${s.env}\`` : ''} | ${
      s?.flag ? `\`--${s.flag}\`` : ''
    } | ${(s?.description ?? '').replace(/\|/g, '\\|')} |`;
  });
  return [
    '| key | default | environment | flag | meaning |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

/** The metrics reference table. */
export function metricsTable(): string {
  const rows = declaredMetrics()
    .filter((m) => m.name.startsWith('gpulse_'))
    .map(
      (m) =>
        `| \`${m.name}\` | ${m.type} | ${m.labelNames.map((l) => `\`${l}\``).join(', ')} | ${m.help.replace(/\|/g, '\\|')} |`,
    );
  return ['| metric | type | labels | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

function replaceSection(text: string, name: string, body: string): string {
  const begin = `<!-- BEGIN GENERATED: ${name} -->`;
  const end = `<!-- END GENERATED: ${name} -->`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i === -1 || j === -1)
    throw new Error(`README.md lacks the markers of the generated "${name}" section`);
  return `${text.slice(0, i + begin.length)}\n${body}\n${text.slice(j)}`;
}

describe('README reference sections', () => {
  it('match the code (run `npm run docs` to regenerate)', () => {
    const current = readFileSync(README, 'utf8');
    const wanted = replaceSection(
      replaceSection(current, 'config', configTable()),
      'metrics',
      metricsTable(),
    );
    if (process.env.UPDATE_DOCS === '1') writeFileSync(README, wanted);
    else expect(current).toBe(wanted);
  });

  it('gives every setting one GPULSE_ environment variable and a description', () => {
    const envs = settings.map((s) => s.env).filter(Boolean);
    expect(new Set(envs).size).toBe(envs.length);
    const bound = new Set(settings.filter((s) => s.env).map((s) => s.path.join('.')));
    const unbound = leaves(agentConfigSchema.parse({}))
      .map(([p]) => p.join('.'))
      .filter((p) => !bound.has(p) && !p.startsWith('models.'));
    expect(unbound).toEqual([]);
  });
});
