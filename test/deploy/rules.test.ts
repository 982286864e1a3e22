// The alert rules: well formed for Prometheus (promtool), unit-tested (promtool test rules on
// alerts.test.yaml, one firing case per alert), and carried unchanged by the PrometheusRule.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { describeWithTools, tools } from '../helpers/tools.js';
import { deployPath, loadRuleGroups, loadRules } from './deploy-files.js';

describe('alert rules (structure)', () => {
  const rules = loadRules();

  it('covers what the issue asks for', () => {
    const names = rules.map((r) => r.alert);
    expect(names.length).toBeGreaterThanOrEqual(30);
    for (const wanted of [
      'GpulseGpuUtilizationSaturated',
      'GpulseGpuMemoryFull',
      'GpulseGpuThermalSlowdown',
      'GpulseGpuPowerBrakeSlowdown',
      'GpulseGpuXidCritical',
      'GpulseGpuEccUncorrectableErrors',
      'GpulseGpuRowRemapFailure',
      'GpulseContainerGpuOutOfMemory',
      'GpulseContainerOomKilled',
      'GpulseGpuFallenOffBus',
      'GpulseAgentDown',
      'GpulseCollectorFailing',
      'GpulseNvidiaSmiRestarting',
      'GpulseModelDrift',
      'GpulseEdgeDeviceOffline',
      'GpulseSpoolBacklog',
      'GpulseModelUpdateRolledBack',
    ])
      expect(names).toContain(wanted);
    expect(new Set(names).size).toBe(names.length);
  });

  it('gives every alert a severity, a for:, a summary and a description', () => {
    for (const r of rules) {
      expect(['critical', 'warning', 'info'], r.alert).toContain(r.labels?.severity);
      expect(r.for, r.alert).toMatch(/^\d+[smhd]$/);
      expect(r.annotations?.summary?.length ?? 0, r.alert).toBeGreaterThan(10);
      expect(r.annotations?.description?.length ?? 0, r.alert).toBeGreaterThan(30);
      expect(r.alert).toMatch(/^Gpulse[A-Z][A-Za-z]+$/);
    }
  });

  it('has a promtool test case that fires each alert', () => {
    const tests = parse(readFileSync(deployPath('prometheus', 'alerts.test.yaml'), 'utf8')) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
    };
    const fired = new Set(
      tests.tests.flatMap((t) =>
        (t.alert_rule_test ?? [])
          .filter((a) => (a.exp_alerts ?? []).length > 0)
          .map((a) => a.alertname),
      ),
    );
    expect(rules.map((r) => r.alert).filter((a) => !fired.has(a))).toEqual([]);
  });

  it('is carried unchanged by the Kubernetes PrometheusRule', () => {
    const resource = parse(readFileSync(deployPath('kubernetes', 'prometheusrule.yaml'), 'utf8'));
    expect(resource.kind).toBe('PrometheusRule');
    expect(resource.spec.groups).toEqual(loadRuleGroups());
  });
});

describeWithTools('alert rules (promtool)', tools('promtool'), () => {
  it('pass `promtool check rules`', () => {
    const r = spawnSync('promtool', ['check', 'rules', deployPath('prometheus', 'alerts.yaml')], {
      encoding: 'utf8',
    });
    expect(r.stderr + r.stdout).toMatch(new RegExp(`SUCCESS: ${loadRules().length} rules found`));
    expect(r.status).toBe(0);
  });

  it('pass `promtool test rules` (every alert fires where it should and nowhere else)', () => {
    const r = spawnSync(
      'promtool',
      ['test', 'rules', deployPath('prometheus', 'alerts.test.yaml')],
      { encoding: 'utf8' },
    );
    expect(r.stdout + r.stderr).toContain('SUCCESS');
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});
