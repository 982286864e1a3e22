// nvidia_gpu_exporter's own Grafana dashboards (collectors/nvidia-smi/fixtures/nvidia-gpu-exporter/,
// MIT, see SOURCES.md there) against `gpulse simulate --metrics-compat nvidia-gpu-exporter`
// scraped by a real Prometheus: every panel query and template variable, with the variables set
// as Grafana sets them, returns data, except the panels listed in NO_SOURCE with the reason.
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';
import { allSeries, CLI, REPO_ROOT, type CliProcess, startSimulate } from '../helpers/cli.js';
import { startPrometheus, type PrometheusServer } from '../helpers/prometheus.js';
import { describeWithTools, tools } from '../helpers/tools.js';

const FIXTURES = join(REPO_ROOT, 'collectors/nvidia-smi/fixtures/nvidia-gpu-exporter');
const DASHBOARDS = ['dashboard.json', 'dashboard-overview.json'] as const;

/**
 * Metrics the dashboards chart that no gpulse source can fill, with the reason; the panels built
 * on them stay empty (the test checks that exactly these do, so a new source shows here).
 */
const NO_SOURCE: Readonly<Record<string, string>> = {
  nvidia_smi_mig_sm_activity_ratio:
    'per-GPU-instance SM activity comes from NVML’s GPM interface in the exporter’s NVML backend; nvidia-smi prints no such field and gpulse’s DCGM collector watches whole GPUs, not GPU instances',
  nvidia_smi_mig_tensor_activity_ratio:
    'per-GPU-instance tensor activity: NVML GPM, as nvidia_smi_mig_sm_activity_ratio',
};

/**
 * Names the dashboards query only as an alternative to one gpulse serves: drivers before 535
 * call the throttle flags clocks_throttle_reasons.*, and every query asks for both spellings.
 */
const ALTERNATIVE = /^nvidia_smi_clocks_throttle_reasons_/;

interface Target {
  readonly dashboard: string;
  readonly panel: string;
  readonly refId: string;
  readonly expr: string;
}

interface Variable {
  readonly name: string;
  readonly query: string;
  readonly regex: string;
  readonly multi: boolean;
}

interface Dashboard {
  readonly file: string;
  readonly targets: Target[];
  readonly variables: Variable[];
}

interface GrafanaPanel {
  title?: string;
  panels?: GrafanaPanel[];
  targets?: { refId?: string; expr?: string }[];
}

function loadDashboard(file: string): Dashboard {
  const json = JSON.parse(readFileSync(join(FIXTURES, file), 'utf8')) as {
    panels: GrafanaPanel[];
    templating: {
      list: {
        name: string;
        type: string;
        query: string | { query: string };
        regex?: string;
        multi?: boolean;
        includeAll?: boolean;
      }[];
    };
  };
  const targets: Target[] = [];
  const walk = (panels: readonly GrafanaPanel[] = []): void => {
    for (const p of panels) {
      walk(p.panels);
      for (const t of p.targets ?? []) {
        if (t.expr)
          targets.push({
            dashboard: file,
            panel: p.title ?? '',
            refId: t.refId ?? '',
            expr: t.expr,
          });
      }
    }
  };
  walk(json.panels);
  const variables = json.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => ({
      name: v.name,
      query: typeof v.query === 'string' ? v.query : v.query.query,
      regex: v.regex ?? '',
      multi: Boolean(v.multi || v.includeAll),
    }));
  return { file, targets, variables };
}

/** `$name` → its value in a query (Grafana's own syntax, no other variables used). */
function substitute(expr: string, values: Readonly<Record<string, string>>): string {
  return expr
    .replace(/\$__rate_interval/g, '4s')
    .replace(/\$(\w+)/g, (m, name: string) => values[name] ?? m);
}

/** The metric names a query reads (regex matchers `{__name__=~"x_.+"}` are checked as queries). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\bnvidia_smi_\w+/g)].map((m) => m[0]).filter((n) => !n.endsWith('_'));
}

/** The text Grafana gives a `query_result()` series (what a variable's regex is applied to). */
function resultText(s: { metric: Record<string, string>; value: [number, string] }): string {
  const labels = Object.keys(s.metric)
    .sort()
    .map((k) => `${k}="${s.metric[k]}"`)
    .join(', ');
  return `{${labels}} ${s.value[1]} ${Math.round(s.value[0] * 1000)}`;
}

/** A variable's values as Grafana lists them, given the variables before it. */
async function variableValues(
  prom: PrometheusServer,
  v: Variable,
  set: Readonly<Record<string, string>>,
): Promise<string[]> {
  const q = substitute(v.query, set);
  const labelValues = /^label_values\((.*),\s*(\w+)\)$/.exec(q);
  if (labelValues) {
    return prom.api<string[]>(`/api/v1/label/${labelValues[2]}/values`, {
      'match[]': labelValues[1]!,
    });
  }
  const queryResult = /^query_result\((.*)\)$/.exec(q);
  if (!queryResult) throw new Error(`variable $${v.name}: unexpected query ${q}`);
  const result = await prom.api<{
    result: { metric: Record<string, string>; value: [number, string] }[];
  }>('/api/v1/query', { query: queryResult[1]! });
  const slashed = /^\/(.*)\/([gimsuy]*)$/.exec(v.regex);
  if (!slashed) throw new Error(`variable $${v.name}: unexpected regex ${v.regex}`);
  const re = new RegExp(slashed[1]!, slashed[2]!.includes('g') ? slashed[2] : `${slashed[2]}g`);
  const values: string[] = [];
  for (const s of result.result) {
    for (const m of resultText(s).matchAll(re)) if (m.groups?.value) values.push(m.groups.value);
  }
  return [...new Set(values)];
}

/** Every choice a user can make in a dashboard's variables (a multi-value one: "All"). */
async function selections(
  prom: PrometheusServer,
  variables: readonly Variable[],
  set: Readonly<Record<string, string>> = {},
): Promise<Record<string, string>[]> {
  const [first, ...rest] = variables;
  if (!first) return [{ ...set }];
  const values = await variableValues(prom, first, set);
  if (values.length === 0)
    throw new Error(`variable $${first.name} lists nothing (${first.query})`);
  const choices = first.multi ? [`(${values.join('|')})`] : values;
  const out: Record<string, string>[] = [];
  for (const value of choices)
    out.push(...(await selections(prom, rest, { ...set, [first.name]: value })));
  return out;
}

const dirs: string[] = [];
const running: CliProcess[] = [];
afterAll(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'gpulse-ngx-dash-'));
  dirs.push(d);
  return d;
}

async function simulate(args: string[], env: NodeJS.ProcessEnv): Promise<CliProcess> {
  const cli = await startSimulate(args, { GPULSE_DCGM_INTERVAL: '500ms', ...env });
  running.push(cli);
  return cli;
}

function kmsgRecord(seq: number, message: string): string {
  const usec = Math.round(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1e6);
  return `3,${seq},${usec},-;${message}\n`;
}

it('the CLI names the accepted namings when --metrics-compat is wrong', () => {
  for (const [args, wrong] of [
    [['simulate', '--metrics-compat', 'nvidia_gpu_exporter'], 'metrics.compat.0'],
    [['run', '--metrics-compat', 'dcgm,nvidia-gpu-exporter,telegraf'], 'metrics.compat.2'],
    [['run', '--metrics-compat', 'none,dcgm'], '"none" cannot be combined'],
  ] as const) {
    const r = spawnSync(process.execPath, [CLI, ...args, '--listen', '127.0.0.1:0'], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status, args.join(' ')).toBe(2);
    expect(r.stderr).toContain(wrong);
    expect(r.stderr).toContain('(from --metrics-compat)');
    if (!wrong.startsWith('"none"'))
      expect(r.stderr).toContain('expected one of none, dcgm, nvidia-gpu-exporter, got');
  }
});

describeWithTools(
  'nvidia_gpu_exporter’s Grafana dashboards against gpulse',
  tools('prometheus'),
  () => {
    it('every panel query and variable returns data, but for the metrics no gpulse source has', async () => {
      const kmsg = join(tempDir(), 'kmsg');
      writeFileSync(kmsg, '');
      // An 8-GPU box (processes, DCGM energy and PCIe, Xids), a MIG box and a GeForce desktop
      // (the only simulated board with a fan); the MIG box also serves the dcgm naming, so the
      // combined form of the flag runs end to end.
      const box = await simulate(['--metrics-compat', 'nvidia-gpu-exporter'], {
        GPULSE_KMSG: kmsg,
      });
      const mig = await simulate(
        ['--profile', 'h100-mig', '--metrics-compat', 'dcgm,nvidia-gpu-exporter'],
        { GPULSE_KMSG_MODE: 'off' },
      );
      const desktop = await simulate(
        ['--profile', 'rtx-4080-super', '--metrics-compat', 'nvidia-gpu-exporter'],
        { GPULSE_KMSG_MODE: 'off' },
      );
      await desktop.waitForMetrics(
        (b) => allSeries(b, 'nvidia_smi_fan_speed_ratio').length === 1,
        40_000,
      );
      const boxBody = await box.waitForMetrics(
        (b) =>
          allSeries(b, 'nvidia_smi_compute_app_info').length > 0 &&
          allSeries(b, 'nvidia_smi_gpu_info').length === 8 &&
          allSeries(b, 'gpulse_collector_up').some(
            (s) => s.labels.collector === 'kmsg' && s.value === 1,
          ),
        40_000,
      );
      const gpu0 = allSeries(boxBody, 'nvidia_smi_gpu_info').find((s) => s.labels.index === '0');
      // 00000000:1B:00.0 → the kernel's 0000:1b:00
      const bus = gpu0!.labels.pci_bus_id!.replace(/^0000(\w{4}:\w{2}:\w{2})\.\d$/, '$1');
      appendFileSync(
        kmsg,
        kmsgRecord(
          1,
          `NVRM: Xid (PCI:${bus}): 13, pid=4100, name=python, Graphics SM Warp Exception on (GPC 9, TPC 1, SM 1): Out Of Range Address`,
        ),
      );
      const migBody = await mig.waitForMetrics(
        (b) => allSeries(b, 'nvidia_smi_mig_memory_used_bytes').length > 0,
        40_000,
      );
      expect(allSeries(migBody, 'DCGM_FI_DEV_FB_USED').length).toBeGreaterThan(0);
      expect(allSeries(boxBody, 'DCGM_FI_DEV_FB_USED')).toEqual([]);
      await box.waitForMetrics(
        (b) =>
          allSeries(b, 'nvidia_smi_xid_errors_total').some(
            (s) => s.labels.uuid === gpu0!.labels.uuid && s.labels.xid === '13' && s.value === 1,
          ),
        20_000,
      );

      const prom = await startPrometheus(
        tempDir(),
        [
          'global:',
          '  scrape_interval: 1s',
          '  scrape_timeout: 1s',
          'scrape_configs:',
          '  - job_name: nvidia_gpu_exporter',
          '    static_configs:',
          `      - targets: ['127.0.0.1:${box.port}', '127.0.0.1:${mig.port}', '127.0.0.1:${desktop.port}']`,
          '',
        ].join('\n'),
      );
      try {
        const startedMs = Date.now();
        const row = async (q: string) =>
          (
            await prom.api<{
              result: { metric: Record<string, string>; value: [number, string] }[];
            }>('/api/v1/query', { query: q })
          ).result;
        await expect
          .poll(async () => (await row('count(nvidia_smi_gpu_info)'))[0]?.value[1], {
            timeout: 30_000,
          })
          .toBe('10');
        const dashboards = DASHBOARDS.map(loadDashboard);
        const targets = dashboards.flatMap((d) => d.targets);
        // dashboard.json's 49 queries (the count: none answered before) and the
        // overview's 30.
        expect(dashboards.map((d) => d.targets.length)).toEqual([49, 30]);

        const run = async () => {
          const empty = new Set<string>();
          const sentinelOnly: string[] = [];
          for (const d of dashboards) {
            const choices = await selections(prom, d.variables);
            // One instance per box; dashboard.json lists the GPUs one by one (8 + 1 + 1).
            if (d.file === 'dashboard.json') expect(choices).toHaveLength(10);
            else expect(choices).toHaveLength(3);
            for (const t of d.targets) {
              const where = `${t.dashboard} / ${t.panel} / ${t.refId}`;
              let found = false;
              let onlySentinel = true;
              for (const set of choices) {
                const data = await prom.api<{ result: { values: [number, string][] }[] }>(
                  '/api/v1/query_range',
                  {
                    query: substitute(t.expr, set),
                    start: String(startedMs / 1000 - 30),
                    end: String(Date.now() / 1000),
                    step: '1',
                  },
                );
                if (data.result.length === 0) continue;
                found = true;
                // "or … * 0 - 1" is the dashboard's "no data" stand-in: -1 everywhere is no data.
                if (data.result.some((s) => s.values.some(([, v]) => v !== '-1')))
                  onlySentinel = false;
              }
              if (!found) empty.add(where);
              else if (onlySentinel && t.expr.includes('* 0 - 1')) sentinelOnly.push(where);
            }
          }
          return { empty, sentinelOnly };
        };
        const expectedEmpty = new Set(
          targets
            .filter((t) => metricNames(t.expr).some((m) => NO_SOURCE[m]))
            .map((t) => `${t.dashboard} / ${t.panel} / ${t.refId}`),
        );
        // Rates need two samples, and the Xid and MIG series their first scrapes: poll.
        await vi.waitFor(
          async () => {
            const result = await run();
            expect(result.sentinelOnly).toEqual([]);
            expect([...result.empty].sort()).toEqual([...expectedEmpty].sort());
          },
          { timeout: 45_000, interval: 2000 },
        );
        expect(expectedEmpty.size).toBe(3);

        // Every name the dashboards read is served, so no panel passes on a fallback branch
        // alone (the ECC detail and the "or" alternatives included).
        const names = new Set(
          dashboards.flatMap((d) => [
            ...d.targets.flatMap((t) => metricNames(t.expr)),
            ...d.variables.flatMap((v) => metricNames(v.query)),
          ]),
        );
        const absent: string[] = [];
        for (const name of names) {
          const r = await prom.api<{ result: unknown[] }>('/api/v1/query', {
            query: `count(last_over_time(${name}[5m]))`,
          });
          if (r.result.length === 0) absent.push(name);
        }
        expect(absent.filter((n) => !ALTERNATIVE.test(n)).sort()).toEqual(
          Object.keys(NO_SOURCE).sort(),
        );
        expect(absent.filter((n) => ALTERNATIVE.test(n))).toHaveLength(7);

        // Values as the exporter serves them: uuid without GPU-, bytes, ratios, Hz.
        const info = await row('nvidia_smi_gpu_info');
        expect(info).toHaveLength(10);
        for (const s of info) expect(s.metric.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f-]{27}$/);
        // Both namings come from one snapshot per scrape: the same bytes on both boxes.
        const used = await row(
          'sum by (instance) (nvidia_smi_memory_used_bytes) - sum by (instance) (gpulse_gpu_memory_used_bytes)',
        );
        expect(used.map((s) => s.value[1])).toEqual(['0', '0', '0']);
        const util = await row('max(nvidia_smi_utilization_gpu_ratio)');
        expect(Number(util[0]!.value[1])).toBeLessThanOrEqual(1);
        const recovery = await row('nvidia_smi_gpu_recovery_action');
        expect(recovery.map((s) => s.value[1])).toEqual(Array(10).fill('0'));
        // Completed on the NVLink-capable boards; the GeForce prints N/A, so no series.
        const fabric = await row('nvidia_smi_fabric_state');
        expect(fabric.map((s) => s.value[1])).toEqual(Array(9).fill('3'));
      } finally {
        await prom.stop();
      }
    }, 180_000);
  },
);
