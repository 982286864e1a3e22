// Dashboards and alerts cover the agent's metrics, and name no metric the agent does not export:
// a typo in a panel or rule fails here instead of showing an empty panel in production.
import { describe, expect, it } from 'vitest';
import { declaredMetrics } from '../../agent/core/metric.js';
import '../helpers/declare-all-metrics.js';
import { loadRules, metricNames, panelQueries, variableQueries } from './deploy-files.js';
import { NOT_CHARTED, PENDING_METRICS } from './pending-metrics.js';

function referenced(): Map<string, string[]> {
  const where = new Map<string, string[]>();
  const add = (name: string, at: string) => where.set(name, [...(where.get(name) ?? []), at]);
  for (const r of loadRules()) for (const m of metricNames(r.expr)) add(m, `alert ${r.alert}`);
  for (const q of panelQueries())
    for (const m of metricNames(q.expr)) add(m, `${q.dashboard} "${q.panel}"`);
  for (const v of variableQueries())
    for (const m of metricNames(v.query)) add(m, `${v.dashboard} $${v.name}`);
  return where;
}

describe('metric coverage of dashboards and alerts', () => {
  const declared = new Set(declaredMetrics().map((m) => m.name));
  const charted = new Set(panelQueries().flatMap((q) => metricNames(q.expr)));

  it('names only metrics the agent declares (or a pending branch will)', () => {
    const unknown = [...referenced()]
      .filter(([name]) => !declared.has(name) && PENDING_METRICS[name] === undefined)
      .map(([name, at]) => `${name} (${at.join(', ')})`);
    expect(unknown).toEqual([]);
  });

  it('charts every metric the agent declares', () => {
    const missing = [...declared].filter(
      (m) => m.startsWith('gpulse_') && !charted.has(m) && NOT_CHARTED[m] === undefined,
    );
    expect(missing).toEqual([]);
  });

  it('lists as pending only metrics that have not landed yet', () => {
    expect(Object.keys(PENDING_METRICS).filter((m) => declared.has(m))).toEqual([]);
  });
});
