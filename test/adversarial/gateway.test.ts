// Attacks on the fleet gateway through a real Mosquitto, against the real process
// (`gpulse-gateway`, as a fleet runs it): what one device can send must not take the gateway down,
// blank the other devices, or make the exposition invalid. Each attack alone, then all at once.
// The bounds asserted here are the ones edge/gateway/README.md states (Limits).
import { spawnSync } from 'node:child_process';
import { deflateSync } from 'node:zlib';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { gpuReadingSamples } from '../../collectors/gpu-series.js';
import {
  buildTelemetry,
  CONTENT_TYPE_DEFLATE,
  seriesGroups,
  statusJson,
} from '../../exporters/mqtt/payloads.js';
import { spawnGateway, type GatewayProcess } from '../helpers/gateway.js';
import { h100Readings } from '../helpers/gpu-readings.js';
import { eventually, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { describeWithTools, findTool, tools } from '../helpers/tools.js';

/** Peak resident memory the gateway may reach under any of these attacks (README: Limits). */
const RSS_CEILING = 400 * 1024 * 1024;
const FLOOD_DEVICES = 150;

/** Parses `name{labels} value` lines of a scrape into a map. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function promtool(text: string): { status: number | null; output: string } {
  const r = spawnSync(findTool('promtool') as string, ['check', 'metrics'], {
    input: text,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: r.status, output: r.stdout + r.stderr };
}

const zeros = (n: number): number[] => Array.from({ length: n }, () => 0);

/** A telemetry message as a hostile device builds it: any JSON, deflated. */
function deflated(json: unknown): Buffer {
  return deflateSync(Buffer.from(JSON.stringify(json)), { level: 9 });
}

/**
 * Attack 1 (issue 17): a message of a million values naming a schema the gateway does not know,
 * from each of many devices. Half have more columns than any schema may have (refused at once),
 * half fit the column limit with 50 samples each (held until their schema comes: as received).
 * Parsing them is what costs: tens of ms each on a quiet 2-core machine, 10x that on a busy one.
 */
function unknownSchemaFlood(): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  const tooWide = deflated({
    v: 2,
    seq: 1,
    ts: [1],
    schema_id: 'nope',
    values: zeros(1_000_000),
  });
  const ts = Array.from({ length: 50 }, (_, i) => 1 + i);
  const column = zeros(50);
  const deep = deflated({
    v: 2,
    seq: 1,
    ts,
    schema_id: 'nope',
    values: Array.from({ length: 20_000 }, () => column),
  });
  for (let i = 0; i < FLOOD_DEVICES; i++) {
    out.push([`gpulse/v1/evil/wide-${i}/telemetry`, tooWide]);
    out.push([`gpulse/v1/evil/deep-${i}/telemetry`, deep]);
  }
  return out;
}

/**
 * Attack 2 (issue 17): a schema within the series and label caps whose exposition is hundreds of
 * megabytes: 20,000 metrics on one label set of `labels` labels of 1 KiB each.
 */
function renderBomb(node: string, labels: number): [string, Buffer] {
  const set = Object.fromEntries(
    Array.from({ length: labels }, (_, i) => [
      `l${i}`,
      `${i}`.padEnd(1024, String.fromCharCode(97 + (i % 26))),
    ]),
  );
  const metrics = Array.from({ length: 20_000 }, (_, i) => `m${i}`);
  return [
    `gpulse/v1/evil/${node}/telemetry`,
    deflated({
      v: 2,
      seq: 1,
      ts: [Date.now()],
      schema: { id: `bomb${labels}`, series: [{ labels: set, metrics }] },
      values: metrics.map(() => 1),
    }),
  ];
}

/**
 * Attack 3 (issue 17): a device label named like a gateway label and its renamed form, and the
 * same series in two parts of one batch.
 */
function labelClashes(): [string, Buffer][] {
  const ts = [Date.now()];
  const clash = {
    v: 2,
    seq: 1,
    ts,
    schema: {
      id: 'clash',
      series: [{ labels: { site: 'fake', exported_site: 'dup' }, metrics: ['clash_ratio'] }],
    },
    values: [0.5],
  };
  const part = (n: number, value: number) => ({
    v: 2,
    seq: n,
    ts,
    part: n,
    parts: 2,
    schema: {
      id: `part${n}`,
      series: [{ labels: { gpu: '0' }, metrics: ['twice_ratio', `only${n}_ratio`] }],
    },
    values: [value, value],
  });
  return [
    ['gpulse/v1/evil/clash/telemetry', deflated(clash)],
    ['gpulse/v1/evil/parts/telemetry', deflated(part(1, 0.1))],
    ['gpulse/v1/evil/parts/telemetry', deflated(part(2, 0.2))],
  ];
}

describeWithTools(
  'adversarial: the fleet gateway under attack',
  tools('mosquitto', 'promtool'),
  () => {
    let broker: Mosquitto;
    let client: MqttClient;
    let gateway: GatewayProcess | undefined;
    const series = seriesGroups(gpuReadingSamples(h100Readings(1)));
    let round = 0;

    beforeAll(async () => {
      broker = await startMosquitto();
      client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'attacker' });
    });
    afterEach(async () => {
      await gateway?.stop();
      gateway = undefined;
    });
    afterAll(async () => {
      await client?.endAsync();
      await broker?.destroy();
    });

    async function publish(messages: readonly [string, Buffer][]): Promise<void> {
      // 20 in flight: Mosquitto's default receive maximum.
      let next = 0;
      const worker = async () => {
        while (next < messages.length) {
          const [topic, body] = messages[next++] as [string, Buffer];
          await client.publishAsync(topic, body, {
            qos: 1,
            properties: { contentType: CONTENT_TYPE_DEFLATE },
          });
        }
      };
      await Promise.all(Array.from({ length: 20 }, worker));
    }

    /** Good devices: online and a batch with its schema inline; temperature = `value`. */
    async function goodDevices(value: number): Promise<void> {
      for (const node of ['good-1', 'good-2']) {
        await client.publishAsync(
          `gpulse/v1/good/${node}/status`,
          statusJson({ state: 'online', ts: Date.now(), session: 1, version: '9.9.9' }),
          { qos: 1, retain: true },
        );
        const [m] = buildTelemetry(
          [
            {
              ts: Date.now(),
              series: series.map((g) =>
                'gpu_temperature_celsius' in g.metrics
                  ? { ...g, metrics: { ...g.metrics, gpu_temperature_celsius: value } }
                  : g,
              ),
            },
          ],
          () => ++round,
          { compressAbove: 1024 },
        );
        await client.publishAsync(`gpulse/v1/good/${node}/telemetry`, m!.body, {
          qos: 1,
          properties: { contentType: m!.contentType },
        });
      }
    }

    async function start(): Promise<GatewayProcess> {
      gateway = spawnGateway(['--mqtt-url', broker.url]);
      const gw = gateway;
      await eventually(async () => (await gw.readyz()).ready, 20_000, 'gateway ready');
      await goodDevices(40);
      await eventually(
        async () => (await gw.readyz()).devices >= 2 && (await gw.readyz()).queued === 0,
        20_000,
        'good devices known',
      );
      return gw;
    }

    /**
     * Waits until a counter of the gateway reaches `n` (the scrape answers once the gateway has
     * worked through what it received); says where it stood when it did not.
     */
    async function counted(gw: GatewayProcess, series: string, n: number, timeoutMs: number) {
      let last: number | undefined;
      try {
        return await eventually(
          async () => {
            const t = await gw.metrics();
            last = sample(t, series);
            return last === n && t;
          },
          timeoutMs,
          `${series} to reach ${n}`,
        );
      } catch (err) {
        const logs = gw.logs.slice(-5).map((l) => JSON.stringify(l).slice(0, 300));
        throw new Error(
          `${(err as Error).message}; last value ${last}, gateway exit ${gw.child.exitCode} ${gw.child.signalCode}, logs: ${logs.join(' | ')}`,
          { cause: err },
        );
      }
    }

    /** Waits until every flood device is counted under unknown_schema; checks series_limit counts them too. */
    async function floodRefused(gw: GatewayProcess): Promise<string> {
      const text = await counted(
        gw,
        'gpulse_fleet_rejected_messages_total{reason="unknown_schema"}',
        FLOOD_DEVICES,
        480_000,
      );
      expect(sample(text, 'gpulse_fleet_rejected_messages_total{reason="series_limit"}')).toBe(
        FLOOD_DEVICES,
      );
      return text;
    }

    /** The gateway lived, stayed under the ceiling, and still serves the good devices, current. */
    async function survived(gw: GatewayProcess): Promise<string> {
      await goodDevices(41);
      const text = await eventually(
        async () => {
          const t = await gw.metrics();
          return (
            ['good-1', 'good-2'].every(
              (n) =>
                sample(
                  t,
                  `gpulse_gpu_temperature_celsius{site="good",node="${n}",gpu="0",uuid="${h100Readings(1)[0]!.uuid}"}`,
                ) === 41,
            ) && t
          );
        },
        30_000,
        'the good devices current',
      );
      expect(gw.child.exitCode).toBeNull();
      console.info(`peak RSS ${(gw.peakRss() / 1e6).toFixed(0)} MB`);
      expect(gw.peakRss()).toBeLessThan(RSS_CEILING);
      const check = promtool(text);
      expect(check.output).not.toMatch(/error/i);
      expect(check.status === 0 || check.status === 3).toBe(true);
      return text;
    }

    it('unknown-schema flood: a million values per message from many devices are refused or held as received, then dropped and counted', async () => {
      const gw = await start();
      await publish(unknownSchemaFlood());
      const text = await floodRefused(gw);
      expect(sample(text, 'gpulse_fleet_kept_bytes')).toBeLessThan(1024 * 1024);
      await survived(gw);
    }, 540_000);

    it('render bomb: a schema whose exposition would be hundreds of MB is refused; every scrape stays whole and small', async () => {
      const gw = await start();
      const bombs = [renderBomb('bomb-32', 32), renderBomb('bomb-16', 16)];
      // Within the caps on the wire: a few tens of KB each.
      for (const [, body] of bombs) expect(body.length).toBeLessThan(64 * 1024);
      await publish(bombs);
      const text = await eventually(
        async () => {
          const t = await gw.metrics();
          return (
            sample(t, 'gpulse_fleet_rejected_messages_total{reason="device_bytes"}') === 2 && t
          );
        },
        30_000,
        'the bombs refused',
      );
      expect(text).not.toMatch(/^gpulse_m0\{/m);
      expect(text.length).toBeLessThan(1024 * 1024);
      await survived(gw);
    }, 540_000);

    it('label clashes: no label name repeats and a series in two parts shows once', async () => {
      const gw = await start();
      await publish(labelClashes());
      const text = await eventually(
        async () => {
          const t = await gw.metrics();
          return t.includes('gpulse_only2_ratio{') && t.includes('gpulse_clash_ratio{') && t;
        },
        30_000,
        'the clashing devices relayed',
      );
      expect(text).toContain(
        'gpulse_clash_ratio{site="evil",node="clash",exported_site="dup",exported_exported_site="fake"} 0.5',
      );
      expect(text.match(/^gpulse_twice_ratio\{.*$/gm)).toEqual([
        'gpulse_twice_ratio{site="evil",node="parts",gpu="0"} 0.1',
      ]);
      expect(sample(text, 'gpulse_fleet_renamed_labels_total')).toBe(1);
      expect(sample(text, 'gpulse_fleet_duplicate_series_total')).toBe(1);
      await survived(gw);
    }, 60_000);

    it('all attacks at once, while good devices keep reporting', async () => {
      const gw = await start();
      const attacks = [
        ...unknownSchemaFlood(),
        renderBomb('bomb-32', 32),
        renderBomb('bomb-16', 16),
        ...labelClashes(),
      ];
      await Promise.all([publish(attacks), goodDevices(42)]);
      const text = await floodRefused(gw);
      expect(sample(text, 'gpulse_fleet_rejected_messages_total{reason="device_bytes"}')).toBe(2);
      expect(text).toContain('exported_exported_site="fake"');
      const after = await survived(gw);
      expect(after.length).toBeLessThan(1024 * 1024);
    }, 540_000);
  },
);
