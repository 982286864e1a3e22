// Reading the deploy files in tests: the rules, the promtool tests, the dashboards and every
// PromQL expression in them.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT } from '../helpers/cli.js';

/** Absolute path of a file under deploy/. */
export const deployPath = (...parts: string[]): string => join(REPO_ROOT, 'deploy', ...parts);

/** A rule of alerts.yaml as loaded. */
export interface LoadedRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Groups of deploy/prometheus/alerts.yaml. */
export function loadRuleGroups(): { name: string; rules: LoadedRule[] }[] {
  const doc = parse(readFileSync(deployPath('prometheus', 'alerts.yaml'), 'utf8')) as {
    groups: { name: string; rules: LoadedRule[] }[];
  };
  return doc.groups;
}

/** Every rule of alerts.yaml. */
export function loadRules(): LoadedRule[] {
  return loadRuleGroups().flatMap((g) => g.rules);
}

/** A panel query or template variable query of a dashboard. */
export interface DashboardQuery {
  dashboard: string;
  panel: string;
  refId: string;
  expr: string;
}

/** A panel of a dashboard JSON (rows carry their collapsed panels). */
export interface JsonPanel {
  type: string;
  title: string;
  targets?: { expr?: string; refId?: string }[];
  panels?: JsonPanel[];
}

/** The parts of a dashboard JSON the tests read. */
export interface DashboardJson {
  uid: string;
  title: string;
  panels: JsonPanel[];
  templating: { list: { type: string; name: string; query: unknown }[] };
}

/** The dashboards under deploy/grafana/dashboards, parsed. */
export function loadDashboards(): { file: string; json: DashboardJson }[] {
  const dir = deployPath('grafana', 'dashboards');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({
      file,
      json: JSON.parse(readFileSync(join(dir, file), 'utf8')) as DashboardJson,
    }));
}

/** Every panel query of every dashboard (rows included). */
export function panelQueries(): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  for (const { file, json } of loadDashboards()) {
    const walk = (panels: JsonPanel[]) => {
      for (const p of panels) {
        if (p.panels) walk(p.panels);
        for (const t of p.targets ?? []) {
          if (t.expr)
            out.push({ dashboard: file, panel: p.title, refId: t.refId ?? '', expr: t.expr });
        }
      }
    };
    walk(json.panels);
  }
  return out;
}

/** Template variables (name → label_values query) of every dashboard. */
export function variableQueries(): { dashboard: string; name: string; query: string }[] {
  return loadDashboards().flatMap(({ file, json }) =>
    json.templating.list
      .filter((v) => v.type === 'query')
      .map((v) => ({ dashboard: file, name: v.name, query: String(v.query) })),
  );
}

/** gpulse metric names mentioned in a PromQL expression (selectors and name regexes). */
export function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\bgpulse_[a-z0-9_]+/g) ?? [])];
}
