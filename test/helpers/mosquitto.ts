import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, vi } from 'vitest';
import { decodeBody } from '../../exporters/mqtt/payloads.js';
import { freePort } from './free-port.js';
import { findTool } from './tools.js';

export { freePort };

async function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A real Mosquitto on its own loopback port, config and data in a temp dir. */
export interface Mosquitto {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** Starts (again) with the same config and port. */
  start(): Promise<void>;
  /** Stops the process (SIGTERM, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
  /** Stops and removes the temp dir. */
  destroy(): Promise<void>;
  log(): string;
}

/**
 * Starts Mosquitto with a config written to a temp dir. `extra` is appended to the config, with
 * `{dir}` and `{port}` replaced; the default is one anonymous plain listener with persistence
 * (so persistent test subscribers survive a broker restart).
 */
export async function startMosquitto(
  options: {
    readonly listener?: string;
    readonly extra?: string;
    /** Leave persistence to `listener`/`extra` (a full config under test). */
    readonly ownPersistence?: boolean;
  } = {},
): Promise<Mosquitto> {
  const bin = findTool('mosquitto');
  if (!bin) throw new Error('mosquitto not installed (Debian: apt-get install mosquitto)');
  const dir = mkdtempSync(join(tmpdir(), 'gpulse-mosquitto-'));
  const port = await freePort();
  const fill = (text: string) => text.replaceAll('{dir}', dir).replaceAll('{port}', String(port));
  const conf = [
    // Running as root, mosquitto would switch to user "mosquitto", who cannot read our temp files.
    'user root',
    ...(options.ownPersistence
      ? []
      : [
          'persistence true',
          `persistence_location ${dir}/`,
          'autosave_interval 1',
          'max_queued_messages 100000',
        ]),
    `log_dest file ${dir}/mosquitto.log`,
    'log_type all',
    fill(options.listener ?? 'listener {port} 127.0.0.1\nallow_anonymous true'),
    fill(options.extra ?? ''),
  ].join('\n');
  writeFileSync(join(dir, 'mosquitto.conf'), `${conf}\n`);
  let child: ChildProcess | undefined;
  const log = () => {
    try {
      return readFileSync(join(dir, 'mosquitto.log'), 'utf8').slice(-4000);
    } catch {
      return '(no log)';
    }
  };
  const broker: Mosquitto = {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    dir,
    log,
    async start() {
      if (child && child.exitCode === null) return;
      const c = spawn(bin, ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
      child = c;
      await waitForPort(port, c, log);
    },
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((resolve) => c.once('exit', resolve));
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
    async destroy() {
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await broker.start();
  return broker;
}

/** One message a test subscriber received, decoded. */
export interface Received {
  readonly topic: string;
  readonly text: string;
  readonly json: Record<string, unknown>;
  readonly contentType?: string;
  readonly retain: boolean;
  readonly bytes: number;
}

/** A test subscriber that records everything under `filter`. */
export interface Recorder {
  readonly messages: Received[];
  readonly client: MqttClient;
  on(topicSuffix: string): Received[];
  waitFor(
    predicate: (all: Received[]) => boolean,
    timeoutMs?: number,
    what?: string,
  ): Promise<void>;
  close(): Promise<void>;
}

/**
 * Subscribes to `filter` with a persistent MQTT 5 session (QoS 1), so messages published while the
 * recorder is reconnecting after a broker restart are queued for it, not lost.
 */
export async function record(
  url: string,
  filter = 'gpulse/#',
  options: IClientOptions = {},
): Promise<Recorder> {
  const messages: Received[] = [];
  const client = mqtt.connect(url, {
    protocolVersion: 5,
    clientId: `recorder-${Math.random().toString(16).slice(2)}`,
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
    reconnectPeriod: 100,
    ...options,
  });
  client.on('error', () => undefined);
  client.on('message', (topic, payload, packet) => {
    const contentType = packet.properties?.contentType;
    const text = decodeBody(payload, contentType, 64 * 1024 * 1024);
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // recorded as text only
    }
    messages.push({ topic, text, json, contentType, retain: packet.retain, bytes: payload.length });
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return {
    messages,
    client,
    on: (suffix) => messages.filter((m) => m.topic.endsWith(`/${suffix}`)),
    waitFor: (predicate, timeoutMs = 20_000, what = 'messages') =>
      vi.waitFor(
        () => {
          if (!predicate(messages))
            throw new Error(`timed out waiting for ${what}; got ${messages.length} messages`);
        },
        { timeout: timeoutMs, interval: 50 },
      ),
    async close() {
      await client.endAsync(true);
    },
  };
}

/** Polls `fn` until it returns a truthy value or the time is up. */
export function eventually<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const timedOut = `timed out after ${timeoutMs}ms waiting for ${what}`;
  return vi.waitFor(
    async () => {
      let v: T | undefined | false;
      try {
        v = await fn();
      } catch (err) {
        throw new Error(`${timedOut}: ${(err as Error).message}`, { cause: err });
      }
      if (!v) throw new Error(timedOut);
      return v;
    },
    { timeout: timeoutMs, interval: 100 },
  );
}

/** Removes a directory tree (test cleanup). */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** What the tests of a suite against one Mosquitto share; registered by `useMosquitto`. */
export interface MosquittoSuite {
  /** The suite's broker (started before the first test). */
  readonly broker: Mosquitto;
  /** Run after the current test, last added first. */
  readonly cleanups: (() => Promise<void> | void)[];
  /** A temp directory, removed after the test. */
  readonly tempDir: (prefix?: string) => string;
  /** A recorder of `filter` on the broker, closed after the test. */
  readonly recorder: (filter?: string) => Promise<Recorder>;
}

/**
 * Registers a suite's broker lifecycle: started once, each test's cleanups run after it, then the
 * broker is started again if the test stopped it (`restart`), and destroyed after the last test.
 */
export function useMosquitto(options: { restart?: boolean } = {}): MosquittoSuite {
  let broker: Mosquitto | undefined;
  const cleanups: (() => Promise<void> | void)[] = [];
  beforeAll(async () => {
    broker = await startMosquitto();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    if (options.restart) await broker?.start();
  });
  afterAll(async () => {
    await broker?.destroy();
  });
  const suite: MosquittoSuite = {
    get broker() {
      if (!broker) throw new Error('the suite broker starts in beforeAll');
      return broker;
    },
    cleanups,
    tempDir: (prefix = 'gpulse-mqtt-test-') => {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      cleanups.push(() => removeDir(dir));
      return dir;
    },
    recorder: async (filter?: string) => {
      const rec = await record(suite.broker.url, filter);
      cleanups.push(() => rec.close());
      return rec;
    },
  };
  return suite;
}
