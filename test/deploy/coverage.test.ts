// Dashboards and alerts cover the agent's metrics, and name no metric the agent does not export:
// a typo in a panel or rule fails here instead of showing an empty panel in production.
import { describe, expect, it } from 'vitest';
import { declaredMetrics } from '../../agent/metric.js';
// Loaded for the metric declarations they make at module load.
import '../../agent/build-agent.js';
import '../../agent/run-agent.js';
import '../../edge/models/metrics.js';
import { loadRules, metricNames, panelQueries, variableQueries } from './deploy-files.js';

/**
 * Metrics of features whose branch has not landed on main yet: dashboards and alerts already use
 * them (names as those branches declare them). Each entry must disappear once its branch lands,
 * which the last test enforces.
 */
export const PENDING_METRICS: Readonly<Record<string, string>> = {
  gpulse_gpu_xid_errors_total: 'health',
  gpulse_container_gpu_memory_used_bytes: 'containers',
  gpulse_container_gpu_utilization_ratio: 'containers',
  gpulse_container_gpu_request_info: 'containers',
  gpulse_container_gpu_oom_total: 'containers',
  gpulse_container_oom_kills_total: 'containers',
  gpulse_container_restarts_total: 'containers',
  gpulse_container_exit_code: 'containers',
  gpulse_container_cpu_cores_used: 'containers',
  gpulse_container_cpu_limit_cores: 'containers',
  gpulse_container_cpu_usage_seconds_total: 'containers',
  gpulse_container_memory_working_set_bytes: 'containers',
  gpulse_container_memory_limit_bytes: 'containers',
  gpulse_container_memory_usage_bytes: 'containers',
  gpulse_container_network_receive_bytes_total: 'containers',
  gpulse_container_network_transmit_bytes_total: 'containers',
  gpulse_container_block_read_bytes_total: 'containers',
  gpulse_container_block_write_bytes_total: 'containers',
  gpulse_container_info: 'containers',
  gpulse_container_running: 'containers',
  gpulse_container_pids: 'containers',
  gpulse_container_start_time_seconds: 'containers',
  gpulse_gpu_process_utilization_ratio: 'containers',
  gpulse_gpu_process_memory_utilization_ratio: 'containers',
  gpulse_docker_events_connected: 'containers',
  gpulse_docker_events_reconnects_total: 'containers',
  gpulse_docker_log_followers: 'containers',
  gpulse_docker_log_lines_total: 'containers',
  gpulse_fleet_devices: 'edge',
  gpulse_fleet_device_up: 'edge',
  gpulse_fleet_device_info: 'edge',
  gpulse_fleet_device_last_seen_timestamp_seconds: 'edge',
  gpulse_fleet_broker_connected: 'edge',
  gpulse_fleet_messages_total: 'edge',
  gpulse_fleet_rejected_messages_total: 'edge',
  gpulse_fleet_events_total: 'edge',
  gpulse_mqtt_connected: 'edge',
  gpulse_mqtt_published_total: 'edge',
  gpulse_mqtt_reconnects_total: 'edge',
  gpulse_mqtt_spool_bytes: 'edge',
  gpulse_mqtt_spool_oldest_age_seconds: 'edge',
  gpulse_mqtt_spool_dropped_total: 'edge',
  gpulse_drift_dataset_share: 'drift',
  gpulse_drift_dataset_detected: 'drift',
  gpulse_drift_detected: 'drift',
  gpulse_drift_score: 'drift',
  gpulse_drift_method_info: 'drift',
  gpulse_drift_threshold: 'drift',
  gpulse_drift_observations_total: 'drift',
  gpulse_drift_rejected_total: 'drift',
  gpulse_drift_window_samples: 'drift',
  gpulse_drift_reference_rows: 'drift',
  gpulse_drift_evaluations_total: 'drift',
  gpulse_drift_reference_info: 'drift',
};

/** Declared metrics deliberately left off the dashboards, with the reason. */
export const NOT_CHARTED: Readonly<Record<string, string>> = {};

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
