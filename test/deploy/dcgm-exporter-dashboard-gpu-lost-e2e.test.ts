// One GPU falls off the bus (Xid 79) on an 8-GPU host running `gpulse simulate --metrics-compat
// dcgm`: NVIDIA's dcgm-exporter dashboard, scraped by a real Prometheus, must keep showing the 7
// GPUs that still answer in every panel (the lost one gone, not frozen), and DCGM_FI_DEV_XID_ERRORS
// must say 79 for the lost GPU. A lost GPU degrades only what it feeds.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { startCli, type CliProcess } from '../helpers/cli.js';
import { startPrometheus, type PrometheusServer } from '../helpers/prometheus.js';
import { describeWithTools } from '../helpers/tools.js';
import { expectNvidiaDashboardShows } from './dcgm-exporter-dashboard.js';

const LOST = '2';
const ANSWERING = ['0', '1', '3', '4', '5', '6', '7'];

describeWithTools(
  "NVIDIA's dcgm-exporter dashboard while one GPU is lost",
  [{ bin: 'prometheus', pkg: 'prometheus' }],
  () => {
    let agent: CliProcess | undefined;
    let launching: Promise<unknown> | undefined;
    let prom: PrometheusServer | undefined;
    let tmp = '';
    let instance = '';

    beforeAll(async () => {
      tmp = await mkdtemp(join(tmpdir(), 'gpulse-gpu-lost-e2e-'));
      // afterAll waits for the launch and stops the agent, even after a timeout here.
      const launch = startCli(
        [
          'simulate',
          '--interval',
          '1s',
          '--xml-interval',
          '3s',
          '--metrics-compat',
          'dcgm',
          '--scenario',
          `gpu-lost:after=12s,gpu=${LOST}`,
        ],
        { GPULSE_LOG_LEVEL: 'warn' },
      ).then((a) => (agent = a));
      launching = launch.catch(() => undefined);
      const started = await launch;
      instance = `127.0.0.1:${started.port}`;
      prom = await startPrometheus(
        join(tmp, 'prometheus'),
        stringify({
          global: { scrape_interval: '1s', scrape_timeout: '1s' },
          scrape_configs: [{ job_name: 'gpulse', static_configs: [{ targets: [instance] }] }],
        }),
      );
      // The loss is under way (the agent reports it: DCGM's Xid 79 or nvidia-smi's "GPU is
      // lost"), then Prometheus scrapes it for 5 s more.
      await started.waitForMetrics(
        (b) =>
          b.includes('reason="gpu_lost"') ||
          new RegExp(`DCGM_FI_DEV_XID_ERRORS\\{gpu="${LOST}"[^}]*GPU_I_ID=""[^}]*\\} 79`).test(b),
        40_000,
      );
      const lostAt = Date.now() / 1000;
      await vi.waitFor(
        async () => {
          const { result } = await prom!.api<{ result: unknown[] }>('/api/v1/query', {
            query: `timestamp(up{instance="${instance}"}) > ${lostAt + 5}`,
          });
          if (result.length !== 1) throw new Error('Prometheus has not scraped the loss for 5 s');
        },
        { timeout: 20_000, interval: 500 },
      );
    }, 60_000);

    afterAll(async () => {
      await launching;
      await prom?.stop();
      await agent?.stop();
      if (tmp) await rm(tmp, { recursive: true, force: true });
    });

    it('shows the 7 GPUs that answer in every panel, and Xid 79 for the lost one', async () => {
      await expectNvidiaDashboardShows(prom!, instance, ANSWERING);
      const xid = await prom!.api<{
        result: { metric: Record<string, string>; value: [number, string] }[];
      }>('/api/v1/query', { query: 'DCGM_FI_DEV_XID_ERRORS' });
      const byGpu = new Map(xid.result.map((r) => [r.metric.gpu, Number(r.value[1])]));
      expect(byGpu.get(LOST)).toBe(79);
      for (const g of ANSWERING) expect(byGpu.get(g), `GPU ${g}`).toBe(0);
    });
  },
);
