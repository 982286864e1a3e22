// deploy/prometheus/gateway-group.yml against a real Prometheus scraping three gateways of one
// share group (in this process) on a real Mosquitto: each device's series keep one identity
// (instance "gpulse-fleet") when the gateway serving it stops and another one takes it over, and
// the gateways' own series keep their instance.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../edge/gateway/command.js';
import { createGateway, type Gateway } from '../../edge/gateway/gateway.js';
import { buildTelemetry, statusJson } from '../../exporters/mqtt/payloads.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { silentLogger } from '../helpers/log-sink.js';
import { eventually, removeDir, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { startPrometheus, type PrometheusServer } from '../helpers/prometheus.js';
import { describeWithTools, tools } from '../helpers/tools.js';

const FILE = join(REPO_ROOT, 'deploy', 'prometheus', 'gateway-group.yml');
const NODES = ['cam-1', 'cam-2', 'cam-3', 'cam-4', 'cam-5', 'cam-6'];

interface ScrapeConfig {
  job_name: string;
  scrape_interval?: string;
  static_configs: { targets: string[] }[];
}

describeWithTools(
  'deploy/prometheus/gateway-group.yml',
  tools('promtool', 'prometheus', 'mosquitto'),
  () => {
    let broker: Mosquitto;
    let client: MqttClient;
    let prometheus: PrometheusServer;
    let dir: string;
    const gateways: { gw: Gateway; address: string; stopped: boolean }[] = [];
    let timer: NodeJS.Timeout | undefined;
    let batch = 0;

    beforeAll(async () => {
      broker = await startMosquitto();
      for (const name of ['a', 'b', 'c']) {
        const { config } = loadGatewayConfig({
          flags: {
            'mqtt-url': broker.url,
            listen: '127.0.0.1:0',
            'share-group': 'fleet',
            'gateway-client-id': `gw-${name}`,
          },
        });
        const gw = createGateway(config, { log: silentLogger(), version: '0.0.0-test' });
        gateways.push({ gw, address: await gw.start(), stopped: false });
      }
      client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'devices' });
      const send = () => {
        batch++;
        for (const node of NODES) {
          const [m] = buildTelemetry(
            [
              {
                ts: Date.now(),
                series: [{ labels: { gpu: '0' }, metrics: { gpu_temperature_celsius: batch } }],
              },
            ],
            () => batch,
            { compressAbove: 1024 },
          );
          void client.publishAsync(
            `gpulse/v1/site/${node}/status`,
            statusJson({ state: 'online', ts: Date.now(), session: 1, version: '9.9.9' }),
            { qos: 1, retain: true },
          );
          // Inline schema each time: this test is about Prometheus, not the schema's travels.
          void client.publishAsync(`gpulse/v1/site/${node}/telemetry`, m!.body, {
            qos: 1,
            properties: { contentType: m!.contentType },
          });
        }
        timer = setTimeout(send, 300);
      };
      send();
      // The example as shipped, with these three gateways as targets and a test's pace.
      const doc = parse(readFileSync(FILE, 'utf8')) as {
        global: Record<string, string>;
        scrape_configs: ScrapeConfig[];
      };
      doc.global.scrape_interval = '1s';
      doc.global.scrape_timeout = '1s';
      doc.scrape_configs[0]!.static_configs = [
        { targets: gateways.map((g) => new URL(g.address).host) },
      ];
      dir = mkdtempSync(join(tmpdir(), 'gpulse-prom-group-'));
      prometheus = await startPrometheus(dir, stringify(doc));
    }, 60_000);

    afterAll(async () => {
      clearTimeout(timer);
      for (const node of NODES)
        await client
          ?.publishAsync(`gpulse/v1/site/${node}/status`, '', { qos: 1, retain: true })
          .catch(() => undefined);
      await client?.endAsync();
      await prometheus?.stop();
      for (const g of gateways) await g.gw.stop();
      await broker?.destroy();
      if (dir) removeDir(dir);
    });

    it('passes promtool check config', () => {
      const r = spawnSync('promtool', ['check', 'config', FILE], { encoding: 'utf8' });
      expect(r.status, r.stdout + r.stderr).toBe(0);
    });

    type Vector = { metric: Record<string, string>; value: [number, string] }[];
    const query = (q: string) =>
      prometheus.api<{ result: Vector }>('/api/v1/query', { query: q }).then((d) => d.result);

    it('keeps one series per device across a failover; the gateways keep their own instance', async () => {
      await eventually(
        async () =>
          (await query('gpulse_gpu_temperature_celsius')).length === NODES.length &&
          (await query('gpulse_fleet_group_members == 3')).length === 3,
        60_000,
        'every device scraped from its gateway',
      );
      const series = await query('gpulse_gpu_temperature_celsius');
      expect(new Set(series.map((s) => s.metric.instance))).toEqual(new Set(['gpulse-fleet']));
      const own = await query('gpulse_fleet_group_members');
      expect(new Set(own.map((s) => s.metric.instance)).size).toBe(3);
      // Stop the gateway serving cam-1: another one takes it over.
      const holder = await Promise.all(
        gateways.map(async (g) =>
          (await (await fetch(`${g.address}/metrics`)).text()).includes('node="cam-1"'),
        ),
      );
      const victim = gateways[holder.indexOf(true)]!;
      await victim.gw.stop();
      victim.stopped = true;
      const stoppedAt = batch;
      await eventually(
        async () => {
          const [s] = await query('gpulse_gpu_temperature_celsius{node="cam-1"}');
          return s !== undefined && Number(s.value[1]) > stoppedAt;
        },
        60_000,
        'cam-1 served by another gateway',
      );
      // Before and after the takeover: one series, the same labels.
      const history = await query(
        'count_over_time(gpulse_gpu_temperature_celsius{node="cam-1"}[5m])',
      );
      expect(history).toHaveLength(1);
      expect(history[0]!.metric).toMatchObject({
        instance: 'gpulse-fleet',
        node: 'cam-1',
        gpu: '0',
      });
    }, 120_000);
  },
);
