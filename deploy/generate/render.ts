// Renders the generated deploy files: the alert rules, the Kubernetes PrometheusRule (wrapped
// around the rules file itself, so both always carry the same rules) and the Grafana dashboards.
// `npm run docs` writes them; test/deploy/generated.test.ts fails when a committed file differs.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { format } from 'prettier';
import { parse, stringify } from 'yaml';
import { alertConfig, ruleGroups } from './alerts.js';
import { dashboards } from './dashboards.js';
import { buildDashboard } from './grafana.js';

/** Paths (relative to the repository root) of the generated files. */
export const GENERATED = {
  alerts: 'deploy/prometheus/alerts.yaml',
  prometheusRule: 'deploy/kubernetes/prometheusrule.yaml',
  dashboardsDir: 'deploy/grafana/dashboards',
  readme: 'deploy/README.md',
} as const;

function flatten(value: unknown, path: string[] = []): [string, string][] {
  if (value !== null && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) =>
      flatten(v, [...path, k]),
    );
  }
  return [[path.join('.'), String(value)]];
}

/** The alert rules file Prometheus loads. */
export async function renderAlerts(): Promise<string> {
  const width = Math.max(...flatten(alertConfig).map(([k]) => k.length));
  const header = [
    'gpulse alert rules (Prometheus rule file).',
    '',
    'GENERATED from deploy/generate/alerts.ts by `npm run docs`: change thresholds in its',
    '`alertConfig`, not here. Unit tests: alerts.test.yaml (`promtool test rules`).',
    'The Kubernetes PrometheusRule (deploy/kubernetes/prometheusrule.yaml) wraps this file.',
    '',
    'Thresholds, windows and selectors in force:',
    ...flatten(alertConfig).map(([k, v]) => `  ${k.padEnd(width)}  ${v}`),
  ];
  const body = stringify({ groups: ruleGroups }, { lineWidth: 0 });
  return format(`${header.map((l) => `# ${l}`.trimEnd()).join('\n')}\n${body}`, {
    parser: 'yaml',
    singleQuote: true,
    printWidth: 100,
  });
}

/** The PrometheusRule custom resource carrying exactly the groups of the rules file. */
export async function renderPrometheusRule(alertsYaml: string): Promise<string> {
  const rules = parse(alertsYaml) as { groups: unknown[] };
  const resource = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'gpulse',
      labels: {
        'app.kubernetes.io/name': 'gpulse',
        'app.kubernetes.io/component': 'alert-rules',
      },
    },
    spec: { groups: rules.groups },
  };
  const header =
    '# GENERATED from deploy/prometheus/alerts.yaml by `npm run docs` (one source of truth):\n' +
    '# edit deploy/generate/alerts.ts, not this file. Your Prometheus operator picks it up when\n' +
    '# its ruleSelector matches these labels (kube-prometheus-stack: add `release: <name>`).\n';
  return format(header + stringify(resource, { lineWidth: 0 }), {
    parser: 'yaml',
    singleQuote: true,
    printWidth: 100,
  });
}

/** A rule's template text as a reader sees it: `{{ $labels.gpu }}` → `gpu` in code, values → `…`. */
function readable(template: string): string {
  return template
    .replace(/\{\{\s*\$labels\.(\w+)\s*\}\}/g, '`$1`')
    .replace(/\{\{[^}]*\}\}/g, '…')
    .replace(/\|/g, '\\|');
}

/** The alert table of deploy/README.md: every rule, its severity, `for:` and description. */
export function renderAlertTable(): string {
  const rows = ruleGroups.flatMap((g) =>
    g.rules.map(
      (r) =>
        `| \`${r.alert}\` | ${r.labels.severity} | ${r.for === '0m' ? 'at once' : r.for} | ${readable(r.annotations.description)} |`,
    ),
  );
  return [
    '| Alert | Severity | For | Meaning and what to do |',
    '| --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

/** The dashboard table of deploy/README.md: what each dashboard answers, row by row. */
export function renderDashboardTable(): string {
  const rows = dashboards.map(
    (d) =>
      `| **${d.title.replace('gpulse / ', '')}** (\`${d.file}\`) | ${d.description} | ${d.rows.map((r) => r.title).join(', ')} |`,
  );
  return ['| Dashboard | Answers | Rows |', '| --- | --- | --- |', ...rows].join('\n');
}

/** Replaces the text between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`. */
export function replaceBlock(text: string, name: string, body: string): string {
  const begin = `<!-- generated:${name} -->`;
  const end = `<!-- /generated:${name} -->`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`${GENERATED.readme} lacks the ${begin} … ${end} block`);
  return `${text.slice(0, i + begin.length)}\n${body}\n${text.slice(j)}`;
}

/** Every generated file, keyed by its path relative to the repository root. */
export async function renderAll(
  root = join(import.meta.dirname, '..', '..'),
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const readme = await readFile(join(root, GENERATED.readme), 'utf8');
  out.set(
    GENERATED.readme,
    replaceBlock(
      replaceBlock(readme, 'dashboards', renderDashboardTable()),
      'alerts',
      renderAlertTable(),
    ),
  );
  const alerts = await renderAlerts();
  out.set(GENERATED.alerts, alerts);
  out.set(GENERATED.prometheusRule, await renderPrometheusRule(alerts));
  for (const spec of dashboards) {
    const json = JSON.stringify(buildDashboard(spec), null, 2);
    out.set(
      `${GENERATED.dashboardsDir}/${spec.file}`,
      await format(json, { parser: 'json', printWidth: 100 }),
    );
  }
  return out;
}
