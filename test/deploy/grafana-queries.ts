// Grafana dashboards as Grafana runs them against Prometheus: template variables resolved from
// their label_values() queries and interpolated the way Grafana's Prometheus data source does
// for an "All" selection, then every panel query run as an instant query. Works on gpulse's own
// dashboards and on foreign ones (NVIDIA's dcgm-exporter dashboard), for any agent under test.
import { readFileSync } from 'node:fs';
import type { PrometheusServer } from '../helpers/prometheus.js';

/** A panel query of a Grafana dashboard JSON. */
export interface PanelQuery {
  readonly panel: string;
  readonly refId: string;
  readonly expr: string;
  readonly legend?: string;
}

/** A query variable (`label_values(...)`) of a dashboard. */
export interface QueryVariable {
  readonly name: string;
  readonly query: string;
}

/** What a test needs of a dashboard: its panel queries and query variables, in order. */
export interface LoadedDashboard {
  readonly title: string;
  readonly panels: readonly PanelQuery[];
  readonly variables: readonly QueryVariable[];
}

interface JsonPanel {
  title?: string;
  targets?: { expr?: string; refId?: string; legendFormat?: string }[];
  panels?: JsonPanel[];
}

/** Reads a Grafana dashboard JSON (any schema version: rows may nest their panels). */
export function loadDashboard(path: string): LoadedDashboard {
  const json = JSON.parse(readFileSync(path, 'utf8')) as {
    title: string;
    panels: JsonPanel[];
    templating?: { list: { type: string; name: string; query: unknown; definition?: string }[] };
  };
  const panels: PanelQuery[] = [];
  const walk = (list: JsonPanel[]) => {
    for (const p of list) {
      if (p.panels) walk(p.panels);
      for (const t of p.targets ?? []) {
        if (!t.expr) continue;
        panels.push({
          panel: p.title ?? '',
          refId: t.refId ?? '',
          expr: t.expr,
          ...(t.legendFormat ? { legend: t.legendFormat } : {}),
        });
      }
    }
  };
  walk(json.panels);
  const variables = (json.templating?.list ?? [])
    .filter((v) => v.type === 'query')
    .map((v) => ({
      name: v.name,
      // Grafana 6 stores the query as text; newer versions as { query } objects.
      query:
        typeof v.query === 'string'
          ? v.query
          : String((v.query as { query?: string } | null)?.query ?? v.definition ?? ''),
    }));
  return { title: json.title, panels, variables };
}

/** A value as Grafana's Prometheus data source escapes it inside a `=~"..."` regex. */
function regexEscape(value: string): string {
  // Regex metacharacters get a backslash, which the PromQL string literal then needs doubled.
  return value.replace(/[\\$^*+?.()|{}[\]]/g, (c) => `\\\\${c}`);
}

/**
 * Replaces `$name`, `${name}` and `[[name]]` the way Grafana does for a multi-value variable set
 * to "All" without a custom all value: `(v1|v2|...)`, each value regex-escaped. Built-in
 * intervals get the values a dashboard over the last minutes would.
 */
export function interpolate(expr: string, values: Readonly<Record<string, readonly string[]>>) {
  const render = (name: string): string | undefined => {
    if (name === '__rate_interval') return '15s';
    if (name === '__interval') return '5s';
    const v = values[name];
    if (!v) return undefined;
    return v.length === 1 ? regexEscape(v[0]!) : `(${v.map(regexEscape).join('|')})`;
  };
  return expr.replace(
    /\$\{(\w+)\}|\$(\w+)|\[\[(\w+)\]\]/g,
    (all: string, a?: string, b?: string, c?: string) => render(a ?? b ?? c ?? '') ?? all,
  );
}

/**
 * Resolves a dashboard's variables in order, as Grafana does: each query sees the earlier
 * variables' values; `narrow` keeps only the given values of a variable (a user's selection).
 */
export async function resolveVariables(
  prom: PrometheusServer,
  variables: readonly QueryVariable[],
  narrow: Readonly<Record<string, readonly string[]>> = {},
): Promise<Record<string, string[]>> {
  const values: Record<string, string[]> = {};
  for (const v of variables) {
    const m = /^label_values\((?:(.*),\s*)?(\w+)\)$/.exec(v.query.trim());
    if (!m) throw new Error(`variable $${v.name}: unsupported query ${v.query}`);
    const selector = m[1] === undefined ? undefined : interpolate(m[1], values);
    const found = await prom.api<string[]>(
      `/api/v1/label/${m[2]!}/values`,
      selector ? { 'match[]': selector } : {},
    );
    const only = narrow[v.name];
    values[v.name] = [...found].filter((x) => !only || only.includes(x)).sort();
  }
  return values;
}

/** One panel query's answer: the label sets of the series it returned. */
export interface PanelResult extends PanelQuery {
  readonly query: string;
  readonly series: readonly Record<string, string>[];
  readonly values: readonly number[];
}

/**
 * Runs every panel query of a dashboard as an instant query, with the variables resolved and
 * interpolated (every value selected), `narrow` first restricting variables (e.g. one instance).
 * `atSeconds` evaluates every query at that one instant (Unix seconds), so panels that are
 * compared with each other (a total and its parts) see the same scrapes.
 */
export async function runDashboard(
  prom: PrometheusServer,
  dashboard: LoadedDashboard,
  narrow: Readonly<Record<string, readonly string[]>> = {},
  atSeconds?: number,
): Promise<{ variables: Record<string, string[]>; results: PanelResult[] }> {
  const variables = await resolveVariables(prom, dashboard.variables, narrow);
  const results: PanelResult[] = [];
  for (const p of dashboard.panels) {
    const query = interpolate(p.expr, variables);
    const data = await prom.api<{
      resultType: string;
      result: { metric: Record<string, string>; value: [number, string] }[];
    }>('/api/v1/query', atSeconds === undefined ? { query } : { query, time: String(atSeconds) });
    results.push({
      ...p,
      query,
      series: data.result.map((r) => r.metric),
      values: data.result.map((r) => Number(r.value[1])),
    });
  }
  return { variables, results };
}
