// A healthy host end to end: a real Prometheus scrapes `gpulse simulate --metrics-compat dcgm`
// (8 H100s, DCGM running, no fault). NVIDIA's own dcgm-exporter dashboard must show every GPU in
// every panel, and gpulse's GPU and fleet dashboards must show data in every panel (0 where
// nothing went wrong), except what the hardware cannot have (HEALTHY_HOST_GAPS, with the reason).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { parse, stringify } from 'yaml';
import { startCli, type CliProcess } from '../helpers/cli.js';
import { startPrometheus, type PrometheusServer } from '../helpers/prometheus.js';
import { describeWithTools, tools } from '../helpers/tools.js';
import { deployPath } from './deploy-files.js';
import { expectNvidiaDashboardShows } from './dcgm-exporter-dashboard.js';
import { loadDashboard, runDashboard, type PanelResult } from './grafana-queries.js';

/**
 * Panels of gpulse's GPU and fleet dashboards that stay empty on a healthy simulated H100 SXM
 * host, each for a reason of the hardware (or of this test machine), never of gpulse.
 */
export const HEALTHY_HOST_GAPS: Readonly<Record<string, string>> = {
  'gpulse-gpu.json / Fan speed / A':
    'SXM boards have no fan of their own (nvidia-smi: fan.speed [N/A])',
  'gpulse-gpu.json / Retired pages / A':
    'page retirement is replaced by row remapping since Ampere (H100: retired_pages.* [N/A])',
  'gpulse-gpu.json / Reset pending or remap failed / C':
    'page retirement pending: no page retirement since Ampere (the remap queries A and B answer)',
  'gpulse-gpu.json / MIG devices / A': 'MIG is off on this board (no MIG devices)',
  'gpulse-gpu.json / MIG memory used share / A': 'MIG is off on this board (no MIG devices)',
  'gpulse-gpu.json / MIG multiprocessors / A': 'MIG is off on this board (no MIG devices)',
};

/** Panels the issue found empty on a healthy host: each must now answer 0 (or energy in W). */
const ZERO_WHEN_HEALTHY = [
  'gpulse-fleet.json / Firing alerts / A',
  'gpulse-fleet.json / Xid errors / A',
  'gpulse-fleet.json / Collector errors / A',
  'gpulse-fleet.json / Rejected output lines / A',
  'gpulse-gpu.json / Xid errors / A',
  'gpulse-gpu.json / Reset pending or remap failed / A',
  'gpulse-gpu.json / Reset pending or remap failed / B',
];

const variablesGpus = ['0', '1', '2', '3', '4', '5', '6', '7'];

const key = (dashboard: string, r: PanelResult) => `${dashboard} / ${r.panel} / ${r.refId}`;

describeWithTools('a healthy host: every dashboard panel answers', tools('prometheus'), () => {
  let agent: CliProcess | undefined;
  let mig: CliProcess | undefined;
  let launching: Promise<unknown> | undefined;
  let prom: PrometheusServer | undefined;
  let tmp = '';
  let instance = '';

  /** Waits until Prometheus holds `seconds` s of GPU 0's energy samples from the agent (1 s scrapes). */
  async function energySamplesHeld(seconds: number, timeoutMs: number): Promise<void> {
    await vi.waitFor(
      async () => {
        const { result } = await prom!.api<{ result: unknown[] }>('/api/v1/query', {
          query: `count_over_time(gpulse_gpu_energy_joules_total{instance="${instance}", gpu="0"}[1m]) >= ${seconds}`,
        });
        if (result.length !== 1) throw new Error(`Prometheus has under ${seconds} s of samples`);
      },
      { timeout: timeoutMs, interval: 500 },
    );
  }

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'gpulse-healthy-e2e-'));
    const sim = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      startCli(
        [
          'simulate',
          '--interval',
          '1s',
          '--xml-interval',
          '3s',
          '--metrics-compat',
          'dcgm',
          ...args,
        ],
        { GPULSE_LOG_LEVEL: 'warn', ...env },
      );
    // A host with a temperature sensor, as servers have (this test machine has none).
    const sys = join(tmp, 'sys');
    await mkdir(join(sys, 'class', 'thermal', 'thermal_zone0'), { recursive: true });
    await writeFile(join(sys, 'class', 'thermal', 'thermal_zone0', 'type'), 'x86_pkg_temp\n');
    await writeFile(join(sys, 'class', 'thermal', 'thermal_zone0', 'temp'), '48000\n');
    // The host's CPU share needs two samples: 2 s apart instead of 15. A second host runs
    // the real H100 MIG capture's layout (four GPU instances). afterAll waits for both
    // launches and stops whichever came up, even after a timeout here.
    const launches = Promise.allSettled([
      sim([], { GPULSE_HOST_INTERVAL: '2s', GPULSE_HOST_SYS_ROOT: sys }).then((a) => (agent = a)),
      sim(['--profile', 'h100-mig'], { GPULSE_HOST_MODE: 'off' }).then((a) => (mig = a)),
    ]);
    launching = launches;
    for (const r of await launches) if (r.status === 'rejected') throw r.reason;
    if (!agent || !mig) throw new Error('both agents started, yet one is missing');
    instance = `127.0.0.1:${agent.port}`;
    // The rules as shipped: on a healthy host none fires, and "Firing alerts" must say 0.
    const rules = readFileSync(deployPath('prometheus', 'alerts.yaml'), 'utf8');
    prom = await startPrometheus(
      join(tmp, 'prometheus'),
      stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '1s' },
        rule_files: ['alerts.yaml'],
        scrape_configs: [
          {
            job_name: 'gpulse',
            static_configs: [{ targets: [instance, `127.0.0.1:${mig.port}`] }],
          },
        ],
      }),
      { 'alerts.yaml': stringify(parse(rules)) },
    );
    // DCGM's profiling series, the -q -x extras and the host's CPU share are in, and Prometheus
    // holds 18 s of them.
    await agent.waitForMetrics(
      (b) =>
        b.includes('DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{') &&
        b.includes('gpulse_gpu_remapped_rows_pending{') &&
        b.includes('gpulse_gpu_energy_joules_total{') &&
        b.includes('gpulse_host_cpu_utilization_ratio{'),
      40_000,
    );
    // 1 s scrapes miss their timeout now and then on a loaded 2-core machine.
    await energySamplesHeld(18, 45_000);
  }, 120_000);

  afterAll(async () => {
    await launching;
    await prom?.stop();
    await Promise.all([agent?.stop(), mig?.stop()]);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("shows all 8 GPUs in every panel of NVIDIA's dcgm-exporter dashboard", async () => {
    await expectNvidiaDashboardShows(prom!, instance, variablesGpus);
  });

  it('answers every panel of the GPU and fleet dashboards, 0 where nothing went wrong', async () => {
    const empty: string[] = [];
    const gaps: string[] = [];
    const seen = new Map<string, PanelResult>();
    for (const file of ['gpulse-fleet.json', 'gpulse-gpu.json']) {
      const { results } = await runDashboard(
        prom!,
        loadDashboard(deployPath('grafana', 'dashboards', file)),
        { instance: [instance] },
      );
      for (const r of results) {
        seen.set(key(file, r), r);
        if (r.series.length > 0) continue;
        if (HEALTHY_HOST_GAPS[key(file, r)]) gaps.push(key(file, r));
        else empty.push(`${key(file, r)}: ${r.query}`);
      }
    }
    expect(empty).toEqual([]);
    // Every allowed gap is really empty here (a stale entry would hide a regression).
    expect(gaps.sort()).toEqual(Object.keys(HEALTHY_HOST_GAPS).sort());
    for (const k of ZERO_WHEN_HEALTHY) {
      const r = seen.get(k);
      expect(r?.values.length, k).toBeGreaterThan(0);
      for (const v of r!.values) expect(v, k).toBe(0);
    }
    const energy = seen.get('gpulse-gpu.json / Energy / A')!;
    expect(energy.series.map((s) => s.gpu).sort()).toEqual(variablesGpus);
  });

  it('grows the energy counter by the power the GPUs draw', async () => {
    // DCGM samples energy every 5 s and a loaded machine can hand a sample to the agent a few
    // seconds late, so the counter is compared over 30 s: the ideal ratio is 25/30 to 35/30,
    // and the bounds leave room for one late sample at either end.
    await energySamplesHeld(33, 60_000);
    const now = Date.now() / 1000;
    const at = async (query: string, time: number) =>
      Number(
        (
          await prom!.api<{ result: { value: [number, string] }[] }>('/api/v1/query', {
            query,
            time: String(time),
          })
        ).result[0]?.value[1],
      );
    const joules =
      (await at(`sum(gpulse_gpu_energy_joules_total{instance="${instance}"})`, now)) -
      (await at(`sum(gpulse_gpu_energy_joules_total{instance="${instance}"})`, now - 30));
    const watts = await at(
      `sum(avg_over_time(gpulse_gpu_power_draw_watts{instance="${instance}"}[30s]))`,
      now,
    );
    expect(joules / 30 / watts).toBeGreaterThan(0.6);
    expect(joules / 30 / watts).toBeLessThan(1.4);
  }, 90_000);

  it("labels a MIG host's GPU instances as dcgm-exporter does, with their profiles", async () => {
    const migInstance = `127.0.0.1:${mig!.port}`;
    const query = async (q: string) =>
      (
        await prom!.api<{
          result: { metric: Record<string, string>; value: [number, string] }[];
        }>('/api/v1/query', { query: q })
      ).result;
    // The profiles and GPU instance ids of the real capture (nvidia-smi -L and -q), per instance.
    await vi.waitFor(
      async () => {
        if (
          (await query(`DCGM_FI_DEV_FB_USED{instance="${migInstance}", GPU_I_ID!=""}`)).length !== 4
        )
          throw new Error('the MIG instances are not scraped yet');
      },
      { timeout: 20_000, interval: 500 },
    );
    const fb = await query(`DCGM_FI_DEV_FB_TOTAL{instance="${migInstance}"}`);
    expect(
      fb
        .map((r) => [r.metric.GPU_I_PROFILE ?? '', r.metric.GPU_I_ID ?? '', Number(r.value[1])])
        .sort((a, b) => Number(a[1]) - Number(b[1])),
    ).toEqual([
      ['', '', 81559],
      ['3g.40gb', '2', 40448],
      ['2g.20gb', '3', 20096],
      ['1g.10gb', '9', 9984],
      ['1g.10gb', '10', 9984],
    ]);
    const info = await query(`gpulse_mig_info{instance="${migInstance}"}`);
    expect(info.map((r) => r.metric.profile).sort()).toEqual([
      '1g.10gb',
      '1g.10gb',
      '2g.20gb',
      '3g.40gb',
    ]);
    for (const r of info) expect(r.metric.mig_uuid).toMatch(/^MIG-[0-9a-f-]{36}$/);
  });
});
