// The connection owner against a real Mosquitto (and aedes for MQTT 3.1.1): reconnect backoff,
// the long wait after an authorization refusal, protocol fallback, resubscription, no secrets in logs.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { FakeClock } from '../../agent/core/clock.js';
import { createLogger } from '../../agent/core/logger.js';
import { loadConfig } from '../../agent/config.js';
import { captureLogger, silentLogger } from '../../test/helpers/log-sink.js';
import {
  eventually,
  freePort,
  removeDir,
  startMosquitto,
  type Mosquitto,
} from '../../test/helpers/mosquitto.js';
import { describeWithTools, tools } from '../../test/helpers/tools.js';
import { startEmbeddedBroker } from '../gateway/embedded-broker.js';
import { createMqttComponent } from './component.js';
import { buildAgent } from '../../agent/build-agent.js';
import { MqttConnection, type ConnectionOptions, type IncomingMessage } from './publisher.js';

describeWithTools('MqttConnection', tools('mosquitto'), () => {
  let secured: Mosquitto;
  const cleanups: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    const passwd = mkdtempSync(join(tmpdir(), 'gpulse-passwd-'));
    const file = join(passwd, 'passwd');
    const made = spawnSync('mosquitto_passwd', ['-b', '-c', file, 'device', 'right-pw'], {
      encoding: 'utf8',
    });
    if (made.status !== 0) throw new Error(made.stderr);
    secured = await startMosquitto({
      listener: `listener {port} 127.0.0.1\nallow_anonymous false\npassword_file ${file}`,
    });
    cleanups.push(() => removeDir(passwd));
  });
  afterEach(async () => {
    for (const c of cleanups.splice(1).reverse()) await c();
  });
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await secured.destroy();
  });

  /** A connection on a fake clock that records when each attempt was made. */
  function connection(options: Partial<ConnectionOptions> & { url: string }) {
    const clock = new FakeClock();
    const attempts: number[] = [];
    const { log, records } = captureLogger();
    const conn = new MqttConnection({
      protocol: '5',
      clientId: `test-${Math.random().toString(16).slice(2)}`,
      keepaliveMs: 30_000,
      reconnectMinMs: 1000,
      reconnectMaxMs: 8000,
      authRetryMs: 600_000,
      clock,
      log,
      random: () => 1,
      connect: (url: string, o: IClientOptions): MqttClient => {
        attempts.push(clock.now());
        return mqtt.connect(url, o);
      },
      ...options,
    });
    cleanups.push(() => conn.stop());
    return { conn, clock, attempts, records };
  }

  /** Waits (real time) until the failed attempt scheduled its retry on the fake clock. */
  async function retryScheduled(clock: FakeClock): Promise<void> {
    await eventually(() => clock.pending() > 0, 10_000, 'a scheduled retry');
  }

  it('reconnects with full-jitter exponential backoff, capped (1 s, 2 s, 4 s, 8 s, 8 s)', async () => {
    const port = await freePort(); // nothing listens here
    const { conn, clock, attempts, records } = connection({ url: `mqtt://127.0.0.1:${port}` });
    conn.start();
    const gaps: number[] = [];
    for (const expected of [1000, 2000, 4000, 8000, 8000]) {
      await retryScheduled(clock);
      const before = attempts.length;
      await clock.advance(expected - 1);
      expect(attempts.length, `no attempt before ${expected} ms`).toBe(before);
      await clock.advance(1);
      expect(attempts.length).toBe(before + 1);
      gaps.push((attempts[before] as number) - (attempts[before - 1] as number));
    }
    expect(gaps).toEqual([1000, 2000, 4000, 8000, 8000]);
    expect(conn.reconnects).toBe(5);
    // Logged once, not once per attempt.
    expect(records.filter((r) => String(r.msg).startsWith('cannot connect'))).toHaveLength(1);
  });

  it('waits the auth retry (0.5-1.5x, here 5 min) after the broker refuses the credentials', async () => {
    const { conn, clock, attempts, records } = connection({
      url: secured.url,
      username: 'device',
      password: 'wrong-pw',
      random: () => 0,
    });
    conn.start();
    await retryScheduled(clock);
    await clock.advance(299_999);
    expect(attempts).toHaveLength(1);
    await clock.advance(1);
    expect(attempts).toHaveLength(2);
    const refusal = records.find((r) => String(r.msg).includes('refused this client'));
    expect(refusal?.level).toBe(50);
    expect(String(refusal?.msg)).toMatch(/Bad User Name or Password|Not authorized/);
    expect(JSON.stringify(records)).not.toContain('wrong-pw');
  });

  it('renews its subscriptions after the broker restarts (telegraf #16038)', async () => {
    const broker = await startMosquitto();
    cleanups.push(() => broker.destroy());
    const received: IncomingMessage[] = [];
    const conn = new MqttConnection({
      url: broker.url,
      protocol: '5',
      clientId: 'resubscriber',
      keepaliveMs: 30_000,
      reconnectMinMs: 100,
      reconnectMaxMs: 500,
      authRetryMs: 600_000,
      clock: (await import('../../agent/core/clock.js')).systemClock,
      log: silentLogger(),
    });
    cleanups.push(() => conn.stop());
    conn.subscribe('cmd/#', (m) => void received.push(m));
    conn.start();
    await eventually(() => conn.subscribed, 5000, 'subscribed');
    await broker.stop();
    await eventually(() => !conn.connected, 5000, 'disconnected');
    await broker.start();
    await eventually(() => conn.subscribed, 10_000, 'subscribed again');
    const sender = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    cleanups.push(() => sender.endAsync());
    await sender.publishAsync('cmd/model-update', 'go', {
      qos: 1,
      properties: { contentType: 'text/plain' },
    });
    await eventually(() => received.length === 1, 5000, 'the command');
    expect(received[0]).toMatchObject({
      topic: 'cmd/model-update',
      contentType: 'text/plain',
      retain: false,
    });
    expect(received[0]?.payload.toString()).toBe('go');
    expect(conn.reconnects).toBeGreaterThanOrEqual(1);
  });

  it('falls back to MQTT 3.1.1 when the broker refuses 5 (protocol auto)', async () => {
    const port = await freePort();
    const aedes = await startEmbeddedBroker({ host: '127.0.0.1', port }, silentLogger());
    cleanups.push(() => aedes.stop());
    const { conn, clock } = connection({ url: aedes.url, protocol: 'auto' });
    conn.start();
    await retryScheduled(clock);
    await clock.advance(0);
    await eventually(() => conn.connected, 5000, 'connected with 3.1.1');
    expect(conn.protocol).toBe(4);
  });

  it('asks MQTT.js for no pre-built number cache (6.3 MB of heap) nor debug calls, and still publishes', async () => {
    const port = await freePort();
    const aedes = await startEmbeddedBroker({ host: '127.0.0.1', port }, silentLogger());
    cleanups.push(() => aedes.stop());
    const seen: IClientOptions[] = [];
    const { conn } = connection({
      url: aedes.url,
      protocol: '3.1.1', // aedes speaks MQTT 3.1.1
      connect: (url: string, o: IClientOptions): MqttClient => {
        seen.push(o);
        return mqtt.connect(url, o);
      },
    });
    conn.start();
    await eventually(() => conn.connected, 5000, 'connected');
    await conn.publish('gpulse/v1/s/n/events', '{"events":[]}', { qos: 1 });
    expect(seen.map((o) => o.writeCache)).toEqual([false]);
    // Nor its `debug` logger (called a dozen times a packet) while DEBUG does not name mqttjs.
    expect(process.env.DEBUG ?? '').not.toMatch(/mqttjs/);
    const log = seen[0]!.log as ((...args: unknown[]) => void) & { namespace?: string };
    expect(typeof log).toBe('function');
    expect(log.namespace).toBeUndefined();
  });

  it('never logs the password, whether set alone or inside the URL', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const log = createLogger({ level: 'trace', format: 'json' }, sink);
    const dir = mkdtempSync(join(tmpdir(), 'gpulse-redact-'));
    cleanups.push(() => removeDir(dir));
    const url = secured.url.replace('mqtt://', 'mqtt://device:url-secret-7@');
    const { config } = loadConfig({
      env: { GPULSE_MQTT_PASSWORD: 'env-secret-9' },
      flags: {
        'mqtt-url': url,
        'mqtt-spool-dir': dir,
        listen: '127.0.0.1:0',
        'mqtt-interval': '100ms',
      },
    });
    const component = createMqttComponent(config.mqtt);
    const agent = buildAgent(config, {
      log,
      version: 'test',
      collectors: [],
      components: [component],
    });
    await agent.start();
    cleanups.push(() => agent.stop());
    // The broker refuses env-secret-9 for "device": the refusal is logged, the secret is not.
    await eventually(
      () => lines.some((l) => l.includes('refused this client')),
      10_000,
      'refusal logged',
    );
    // A component that logs its whole config still leaks nothing (root logger redaction).
    log.info({ config }, 'config dump');
    log.info({ password: 'env-secret-9' }, 'careless');
    const all = lines.join('');
    expect(all).not.toContain('env-secret-9');
    expect(lines.filter((l) => l.includes('url-secret-7'))).toEqual([]);
    expect(all).toContain('[redacted]');
  });
});
