// The observability stack end to end, GPU part: a real Prometheus scrapes four `gpulse simulate`
// agents, each playing a fault scenario, with deploy/prometheus/alerts.yaml loaded (only `for:`
// shortened, expressions untouched). Every panel query of the GPU, fleet and model-update
// dashboards must return series (prometheus-stack-e2e.test.ts runs the rest), and the alerts the
// scenarios stand for must fire in Prometheus's own /api/v1/alerts.
// Worst case bounded at 180 s (start 90 s, alerts 70 s, panels 20 s); about 50 s when all goes
// well (the lost GPU falls off the bus 30 s after its agent starts).
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { parse, stringify } from 'yaml';
import { generateKeyPair } from '../../edge/models/signing.js';
import { publishModel } from '../../edge/models/publish.js';
import { freePort, REPO_ROOT, startCli, type CliProcess } from '../helpers/cli.js';
import { StoreServer } from '../helpers/models/store-server.js';
import { writeModel } from '../helpers/models/model-gen.js';
import { startPrometheus, type PrometheusServer } from '../helpers/prometheus.js';
import { describeWithTools, tools } from '../helpers/tools.js';
import { deployPath } from './deploy-files.js';
import { emptyPanels, waitForAlerts } from './panel-check.js';

const APP_XID =
  '13, pid=4100, name=python, Graphics SM Warp Exception on (GPC 9, TPC 1, SM 1): Out Of Range Address';

/** A kernel log record (kmsg format) of an Xid on the h100-8x GPU at PCI bus `bus`, logged now. */
function xidRecord(seq: number, bus: string, xid: string): string {
  const usec = Math.round(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1e6);
  return `3,${seq},${usec},-;NVRM: Xid (PCI:0000:${bus}:00): ${xid}\n`;
}

/** Alerts the scenarios below must fire (the rest need events the simulator cannot make). */
const EXPECTED_ALERTS = [
  'GpulseAgentDown', // a scrape target nobody listens on
  'GpulseGpuThermalSlowdown', // agent "thermal": thermal-throttle
  'GpulseGpuSoftwareThermalThrottling',
  'GpulseGpuPowerBrakeSlowdown', // agent "power": power-brake
  'GpulseGpuXidCritical', // agent "power": Xids in its kernel log
  'GpulseGpuXidWarning',
  'GpulseGpuApplicationXidBurst',
  'GpulseGpuUtilizationSaturated', // training load at 100 %
  'GpulseGpuMemoryNearlyFull', // agent "memory": memory-full
  'GpulseGpuMemoryFull',
  'GpulseGpuFallenOffBus', // agent "lost": gpu-lost
  'GpulseNvidiaSmiRestarting',
  'GpulseModelUpdateRolledBack', // agent "thermal": a model whose health check fails
  'GpulseModelUpdateFailing', // agent "thermal": a model signed by a key it does not trust
];

describeWithTools(
  'dashboards and alerts against a real Prometheus scraping gpulse simulate',
  tools('prometheus'),
  () => {
    const agents: CliProcess[] = [];
    let prom: PrometheusServer | undefined;
    let store: StoreServer | undefined;
    let tmp = '';
    let started = 0;
    let nobody = 0;
    let burst: Promise<void> | undefined;
    let launching: Promise<PromiseSettledResult<CliProcess>[]> | undefined;

    beforeAll(async () => {
      tmp = await mkdtemp(join(tmpdir(), 'gpulse-deploy-e2e-'));
      started = Date.now();

      // Models from a real signed store: "detector" commits (its first three downloads stall, so its
      // progress stays visible for ~12 s, after Prometheus has started), "broken" fails its health check and rolls back,
      // "foreign" is signed by a key the device does not trust and is refused.
      const keys = await generateKeyPair(join(tmp, 'keys'));
      const otherKeys = await generateKeyPair(join(tmp, 'other-keys'));
      const storeDir = join(tmp, 'store');
      for (const name of ['detector', 'broken', 'foreign']) {
        const from = join(tmp, 'export', name);
        await writeModel(from, Buffer.alloc(300_000, name));
        await publishModel({
          name,
          version: '1.0.0',
          release: 1,
          from,
          store: storeDir,
          keyPath: name === 'foreign' ? otherKeys.privatePath : keys.privatePath,
          expiresInMs: 86_400_000,
        });
      }
      store = new StoreServer({
        root: storeDir,
        fault: (path, attempt) =>
          path.startsWith('detector/') && /\/(blobs|chunks)\//.test(path) && attempt <= 3
            ? { kind: 'stall', afterBytes: 4096 }
            : undefined,
      });
      const storeUrl = await store.start();
      const models = ['detector', 'broken', 'foreign'].map((name) => ({
        name,
        source: `${storeUrl}${name}/`,
        dir: join(tmp, 'device', name),
        trust: keys.publicPath,
        schedule: 'off',
        stallTimeout: '4s',
        health:
          name === 'broken' ? { command: ['false'], trialWindow: '0s' } : { trialWindow: '0s' },
      }));

      // A host with a temperature sensor (this machine has none) for the host temperature panel.
      const sys = join(tmp, 'sys');
      await mkdir(join(sys, 'class', 'thermal', 'thermal_zone0'), { recursive: true });
      await writeFile(join(sys, 'class', 'thermal', 'thermal_zone0', 'type'), 'x86_pkg_temp\n');
      await writeFile(join(sys, 'class', 'thermal', 'thermal_zone0', 'temp'), '48000\n');

      // Agent "power" follows a kernel log file; Xids are appended once it runs (records logged
      // before the agent started are history and not counted).
      const kmsg = join(tmp, 'kmsg');
      await writeFile(kmsg, '');

      const sim = (args: string[], env: NodeJS.ProcessEnv = {}) =>
        startCli(['simulate', '--interval', '1s', '--xml-interval', '3s', ...args], {
          GPULSE_LOG_LEVEL: 'warn',
          ...env,
        });
      const v100 = join(
        REPO_ROOT,
        'collectors/nvidia-smi/fixtures/xml/tesla-v100-sxm3-32gb-retired-pages__410.104__v10__pai.xml',
      );
      // Every agent that comes up is stopped by afterAll, even one that starts after this hook
      // failed or timed out (afterAll waits for the launches first).
      launching = Promise.allSettled(
        [
          sim(
            ['--profile', 'h200-mig', '--scenario', 'thermal-throttle:after=0s,for=inf,ramp=5s'],
            {
              GPULSE_MODELS: JSON.stringify(models),
              GPULSE_HOST_SYS_ROOT: sys,
            },
          ),
          sim(['--profile', 'h100-8x', '--scenario', 'power-brake:after=0s,for=inf'], {
            GPULSE_KMSG: kmsg,
          }),
          sim(['--profile', 'rtx-4080-super', '--scenario', 'memory-full:after=0s,ramp=5s']),
          // Lost after its first -q -x documents, so its retired pages reach Prometheus first.
          sim(['--capture', v100, '--scenario', 'gpu-lost:after=30s']),
          // In scenario order, whichever comes up first: the tests below address them by index.
        ].map((p, i) => p.then((a) => (agents[i] = a))),
      );
      for (const r of await launching) if (r.status === 'rejected') throw r.reason;

      // The rules file as shipped, with every `for:` cut to 0s so a one-minute test sees firing.
      const rules = parse(readFileSync(deployPath('prometheus', 'alerts.yaml'), 'utf8')) as {
        groups: { rules: { for?: string }[] }[];
      };
      for (const g of rules.groups) for (const r of g.rules) r.for = '0s';
      nobody = await freePort();
      const config = {
        global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '1s' },
        rule_files: ['alerts.yaml'],
        scrape_configs: [
          {
            job_name: 'gpulse',
            static_configs: [
              { targets: [...agents.map((a) => `127.0.0.1:${a.port}`), `127.0.0.1:${nobody}`] },
            ],
          },
        ],
      };
      prom = await startPrometheus(join(tmp, 'prometheus'), stringify(config), {
        'alerts.yaml': stringify(rules),
      });
      // The kernel names GPUs by PCI bus: the agent maps them once nvidia-smi has answered.
      await agents[1]!.waitForMetrics((b) => b.includes('gpulse_gpu_info{'));
      // A double-bit ECC Xid on GPU 0, a row-remap-pending Xid on GPU 1 and one application Xid on
      // GPU 2; once Prometheus has scraped the application Xid, a burst of five more.
      await appendFile(
        kmsg,
        xidRecord(
          1,
          '0a',
          "48, pid='<unknown>', name=<unknown>, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer",
        ) +
          xidRecord(2, '11', "63, pid='<unknown>', name=<unknown>, Row remapping pending") +
          xidRecord(3, '18', APP_XID),
      );
      // increase() counts from the first sample Prometheus holds: the burst must come after it.
      const p = prom;
      burst = (async () => {
        await vi.waitFor(
          async () => {
            const { result } = await p.api<{ result: unknown[] }>('/api/v1/query', {
              query: 'gpulse_gpu_xid_errors_total{severity="info"} == 1',
            });
            if (result.length === 0) throw new Error('Prometheus holds no application Xid yet');
          },
          { timeout: 60_000, interval: 500 },
        );
        await appendFile(
          kmsg,
          [4, 5, 6, 7, 8].map((seq) => xidRecord(seq, '18', APP_XID)).join(''),
        );
      })().catch(() => undefined);
      // Four agents, Prometheus and a store start together, and gpulse_gpu_info waits for the
      // first -q -x document: on a loaded 2-core machine that takes most of a minute.
    }, 90_000);

    afterAll(async () => {
      await launching;
      await burst;
      await prom?.stop();
      await Promise.all(agents.map((a) => a?.stop()));
      await store?.stop();
      if (tmp) await rm(tmp, { recursive: true, force: true });
    });

    it('fires the alerts the scenarios stand for', async () => {
      const p = prom!;
      const firing = await waitForAlerts(p, EXPECTED_ALERTS, 65_000);
      const byName = (n: string) => firing.filter((a) => a.labels.alertname === n);
      // Each alert fired for the agent whose scenario causes it, with its annotations rendered.
      const port = (i: number) => `127.0.0.1:${agents[i]!.port}`;
      expect(new Set(byName('GpulseGpuThermalSlowdown').map((a) => a.labels.instance))).toEqual(
        new Set([port(0)]),
      );
      expect(byName('GpulseGpuPowerBrakeSlowdown').map((a) => a.labels.instance)).toContain(
        port(1),
      );
      expect(
        byName('GpulseGpuPowerBrakeSlowdown').every((a) => a.labels.instance === port(1)),
      ).toBe(true);
      expect(
        byName('GpulseGpuXidCritical').map((a) => [a.labels.instance, a.labels.gpu, a.labels.xid]),
      ).toEqual([[port(1), '0', '48']]);
      expect(byName('GpulseGpuXidWarning').map((a) => [a.labels.gpu, a.labels.xid])).toEqual([
        ['1', '63'],
      ]);
      expect(
        byName('GpulseGpuApplicationXidBurst').map((a) => [a.labels.gpu, a.labels.xid]),
      ).toEqual([['2', '13']]);
      expect(byName('GpulseGpuMemoryFull').map((a) => a.labels.instance)).toEqual([port(2)]);
      // The V100 of the capture, by the UUID the capture gives it.
      expect(byName('GpulseGpuFallenOffBus').map((a) => a.labels)).toEqual([
        expect.objectContaining({
          instance: port(3),
          gpu: '0',
          uuid: 'GPU-ef23ffa6-c9fd-93d5-aeb8-612c087255ff',
          severity: 'critical',
        }),
      ]);
      expect(byName('GpulseModelUpdateRolledBack')[0]?.labels).toMatchObject({
        instance: port(0),
        model: 'broken',
        severity: 'warning',
      });
      // The target nobody listens on. (Under load a 1 s scrape of a live agent may time out too,
      // which fires it for that agent as well: `for:` is 0s here.)
      expect(byName('GpulseAgentDown').map((a) => a.labels.instance)).toContain(
        `127.0.0.1:${nobody}`,
      );
      for (const a of firing) {
        expect(a.annotations.summary, a.labels.alertname).toBeTruthy();
        expect(a.annotations.description, a.labels.alertname).not.toMatch(/<no value>|\{\{/);
      }
      // The lost GPU's agent reports the GPU fallen off the bus; its nvidia-smi collector still
      // works (it reads the GPU as lost), so no collector alert fires for it.
      expect(byName('GpulseGpuFallenOffBus').map((a) => a.labels.instance)).toContain(port(3));
      expect(byName('GpulseCollectorFailing')).toEqual([]);
    }, 70_000);

    it('returns series for every panel query and template variable of its dashboards', async () => {
      const result = await emptyPanels(prom!, {
        stack: false,
        startedMs: started,
        limitMs: 15_000,
      });
      expect(result.checked).toBeGreaterThan(100);
      expect(result.empty).toEqual([]);
      // Energy comes from DCGM where nvidia-smi prints none: no panel of these dashboards is a gap.
      expect(result.gaps).toEqual([]);
    }, 20_000);
  },
);
