// Shared by the two end-to-end suites that run the dashboards' queries and wait for alerts in a
// real Prometheus: prometheus-e2e.test.ts (GPUs, health, model updates) and
// prometheus-stack-e2e.test.ts (containers on a real Docker Engine, the MQTT edge fleet, drift,
// Jetson). Each panel query belongs to exactly one of them; together they cover every one.
import type { PrometheusServer } from '../helpers/prometheus.js';
import { metricNames, panelQueries, variableQueries, type DashboardQuery } from './deploy-files.js';
import { PENDING_METRICS } from './pending-metrics.js';

/** Dashboards the stack suite fills (the rest, drift panels excepted, are the GPU suite's). */
const STACK_DASHBOARDS = new Set([
  'gpulse-containers.json',
  'gpulse-edge.json',
  'gpulse-jetson.json',
]);

/** Whether a query is the stack suite's: a stack dashboard's, or about drift. */
export function isStackQuery(dashboard: string, expr: string): boolean {
  return (
    STACK_DASHBOARDS.has(dashboard) || metricNames(expr).some((m) => m.startsWith('gpulse_drift_'))
  );
}

/**
 * Panel queries no simulated machine can fill, with the reason. Only these (and metrics of
 * branches not merged yet, PENDING_METRICS) may come back empty.
 */
export const SIMULATOR_GAPS: Readonly<Record<string, string>> = {
  ...Object.fromEntries(
    ['gpulse_cri_runtime_info', 'gpulse_cri_requests_total', 'gpulse_cri_containers'].map((m) => [
      m,
      'needs a CRI runtime socket (containerd, CRI-O) and a GPU process in one of its pods; collectors/cri/containerd.test.ts and test/e2e/kubernetes-cri.test.ts run a real containerd',
    ]),
  ),
  gpulse_jetson_mts_utilization_ratio:
    'only TX2 on L4T 28 prints MTS; no real capture has it and no Jetson profile simulates it (parser unit-tested on collectors/tegrastats/fixtures/synthetic)',
};

/** Grafana's variables as a test sets them: every value of every variable. */
export function substitute(expr: string): string {
  return expr
    .replace(/\$__rate_interval/g, '15s')
    .replace(/\$__interval/g, '5s')
    .replace(/\$(instance|gpu|container|model|site|node)\b/g, '.*');
}

/** `label_values(selector, label)` as a query returning one series per value. */
export function variableAsQuery(q: string): string {
  const m = /^label_values\((.*),\s*(\w+)\)$/.exec(q);
  if (!m) throw new Error(`unexpected variable query ${q}`);
  return `count by (${m[2]}) (${substitute(m[1]!)})`;
}

/** An alert as /api/v1/alerts lists it. */
export interface Alert {
  labels: Record<string, string>;
  state: string;
  annotations: Record<string, string>;
}

/**
 * Every alert seen firing until all of `expected` have fired (or `limitMs` passed), by labels:
 * thresholds at the edge of a simulated load curve flap with `for:` at 0s, so no single instant
 * needs to hold all of them.
 */
export async function waitForAlerts(
  prom: PrometheusServer,
  expected: readonly string[],
  limitMs: number,
): Promise<Alert[]> {
  const seen = new Map<string, Alert>();
  const t0 = Date.now();
  for (;;) {
    for (const a of (await prom.api<{ alerts: Alert[] }>('/api/v1/alerts')).alerts) {
      if (a.state === 'firing') seen.set(JSON.stringify(a.labels), a);
    }
    const names = new Set([...seen.values()].map((a) => a.labels.alertname));
    if (expected.every((a) => names.has(a))) return [...seen.values()];
    if (Date.now() - t0 > limitMs) {
      throw new Error(
        `alerts not firing after ${limitMs / 1000} s: ${expected.filter((a) => !names.has(a)).join(', ')}; firing: ${[...names].join(', ')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * Runs the panel queries (over the whole run, as a dashboard over the last minutes would) and the
 * template variables of one suite; repeats until nothing is missing or `limitMs` passed, since
 * some series appear only once their scenario has played. Returns what stayed empty and the
 * known simulator gaps met.
 */
export async function emptyPanels(
  prom: PrometheusServer,
  options: { stack: boolean; startedMs: number; limitMs: number },
): Promise<{ empty: string[]; gaps: string[]; checked: number }> {
  const mine = (dashboard: string, expr: string) =>
    isStackQuery(dashboard, expr) === options.stack &&
    !metricNames(expr).some((m) => PENDING_METRICS[m]);
  const queries = panelQueries().filter((q: DashboardQuery) => mine(q.dashboard, q.expr));
  // A variable is its dashboard's suite's (the models dashboard's $model lists update models).
  const variables = variableQueries().filter(
    (v) =>
      STACK_DASHBOARDS.has(v.dashboard) === options.stack &&
      !metricNames(v.query).some((m) => PENDING_METRICS[m]),
  );
  const once = async () => {
    const empty: string[] = [];
    const gaps: string[] = [];
    const range = {
      start: String(options.startedMs / 1000 - 5),
      end: String(Date.now() / 1000),
      step: '2',
    };
    for (const q of queries) {
      const data = await prom.api<{ result: unknown[] }>('/api/v1/query_range', {
        query: substitute(q.expr),
        ...range,
      });
      if (data.result.length > 0) continue;
      const where = `${q.dashboard} / ${q.panel} / ${q.refId}`;
      const gap = metricNames(q.expr).find((m) => SIMULATOR_GAPS[m] !== undefined);
      if (gap) gaps.push(`${where}: ${SIMULATOR_GAPS[gap]}`);
      else empty.push(`${where}: ${q.expr}`);
    }
    for (const v of variables) {
      const data = await prom.api<{ result: unknown[] }>('/api/v1/query', {
        query: variableAsQuery(v.query),
      });
      if (data.result.length === 0) empty.push(`${v.dashboard} variable $${v.name}: ${v.query}`);
    }
    return { empty, gaps, checked: queries.length + variables.length };
  };
  const t0 = Date.now();
  let result = await once();
  while (result.empty.length > 0 && Date.now() - t0 < options.limitMs) {
    await new Promise((r) => setTimeout(r, 2000));
    result = await once();
  }
  if (result.gaps.length > 0)
    console.warn(`panels the simulator cannot fill:\n  ${result.gaps.join('\n  ')}`);
  return result;
}
