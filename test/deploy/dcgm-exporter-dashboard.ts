// NVIDIA's dcgm-exporter Grafana dashboard as a check on `--metrics-compat dcgm`: every panel of
// the dashboard dcgm-exporter users already run must show every GPU that answers, in the units
// the dashboard expects. Used by the healthy-host and the fault end-to-end suites.
import { join } from 'node:path';
import { expect } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import type { PrometheusServer } from '../helpers/prometheus.js';
import { loadDashboard, runDashboard } from './grafana-queries.js';

/** The dashboard, kept as a fixture (collectors/dcgm/fixtures/SOURCES.md). */
export const NVIDIA_DASHBOARD = join(
  REPO_ROOT,
  'collectors/dcgm/fixtures/dcgm-exporter__grafana-dashboard.json',
);

/** Its panels, in order: the dashboard a test runs is the one NVIDIA ships. */
export const NVIDIA_PANELS = [
  'GPU Temperature',
  'GPU Avg. Temp',
  'GPU Power Usage',
  'GPU Power Total',
  'GPU SM Clocks',
  'GPU Utilization',
  'GPU Framebuffer Mem Used',
  'Tensor Core Utilization',
] as const;

/**
 * Runs the dashboard for one agent (`instance`) and asserts that every per-GPU panel shows
 * exactly `gpus` (one series each: no MIG or container duplicates, no lost GPU), that the
 * aggregate panels answer with one value over those GPUs, and that values are in the
 * dashboard's units (°C, W, Hz after its `* 1000000`, %, MiB, 0-1).
 */
export async function expectNvidiaDashboardShows(
  prom: PrometheusServer,
  instance: string,
  gpus: readonly string[],
): Promise<void> {
  const dashboard = loadDashboard(NVIDIA_DASHBOARD);
  expect(dashboard.panels.map((p) => p.panel)).toEqual(NVIDIA_PANELS);
  // One instant for every panel, a few seconds back (older than any scrape still being
  // ingested): the totals are compared with the sum and mean of the per-GPU panels below, which
  // a scrape landing between two queries would make disagree.
  const { variables, results } = await runDashboard(
    prom,
    dashboard,
    { instance: [instance] },
    Date.now() / 1000 - 5,
  );
  expect(variables.instance).toEqual([instance]);
  const byPanel = new Map(results.map((r) => [r.panel, r]));
  for (const r of results) {
    if (r.legend === 'GPU {{gpu}}') {
      expect(r.series.map((s) => s.gpu).sort(), r.panel).toEqual([...gpus].sort());
    } else {
      expect(r.values, r.panel).toHaveLength(1);
    }
  }
  const values = (panel: (typeof NVIDIA_PANELS)[number]) => byPanel.get(panel)!.values;
  for (const t of values('GPU Temperature')) expect(t).toBeGreaterThan(20);
  for (const w of values('GPU Power Usage')) expect(w).toBeGreaterThan(50);
  for (const hz of values('GPU SM Clocks')) expect(hz).toBeGreaterThan(3e8);
  for (const u of values('GPU Utilization')) expect(u).toBeLessThanOrEqual(100);
  for (const mib of values('GPU Framebuffer Mem Used')) expect(mib).toBeGreaterThan(100);
  for (const a of values('Tensor Core Utilization')) expect(a).toBeLessThanOrEqual(1);
  const sum = values('GPU Power Usage').reduce((s, w) => s + w, 0);
  expect(values('GPU Power Total')[0]).toBeCloseTo(sum, 0);
  const temps = values('GPU Temperature');
  expect(values('GPU Avg. Temp')[0]).toBeCloseTo(
    temps.reduce((s, t) => s + t, 0) / temps.length,
    3,
  );
}
