import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDirs } from '../../test/helpers/temp-dirs.js';
import { FakeClock } from '../../agent/core/clock.js';
import { loadConfig } from '../../agent/config.js';
import { CONTENT_TYPE_JSON } from '../../exporters/mqtt/payloads.js';
import { captureLogger } from '../../test/helpers/log-sink.js';
import { LockHeldError } from './instance-lock.js';
import {
  closePublisher,
  openPublisher,
  type OpenedPublisher,
  type OpenPublisherOptions,
} from './open.js';

function options(dir: string, flags: Record<string, string> = {}) {
  const { config } = loadConfig({
    flags: { 'mqtt-url': 'mqtt://127.0.0.1:1', 'mqtt-spool-dir': dir, ...flags },
  });
  const { log, records } = captureLogger();
  const sessions: number[] = [];
  const o: OpenPublisherOptions = {
    config: config.mqtt,
    url: config.mqtt.url ?? '',
    clientId: 'gpulse-test',
    topics: { telemetry: 'gpulse/v1/s/n/telemetry', events: 'gpulse/v1/s/n/events' },
    clock: new FakeClock(),
    env: {},
    log,
    will: () => ({
      topic: 'gpulse/v1/s/n/status',
      payload: Buffer.from('{}'),
      qos: 1,
      retain: true,
    }),
    onSession: (s) => sessions.push(s),
    onDrop: () => undefined,
    onResult: () => undefined,
  };
  return { o, records, sessions };
}

const tempDir = tempDirs('gpulse-mqtt-open-');

describe('openPublisher', () => {
  it('opens lock, spool, sequence, a connection not started yet and the outbox; close releases them', async () => {
    const dir = join(tempDir(), 'state');
    const first: OpenedPublisher = {};
    const { o } = options(dir);
    const opened = await openPublisher(first, o);
    expect(opened.dir).toBe(dir);
    expect(first.conn).toBe(opened.conn);
    expect(first.conn?.connected).toBe(false);
    expect([first.lock, first.spool, first.seq, first.outbox].every(Boolean)).toBe(true);
    // Offline: what the outbox is given waits for the connection, numbered by the sequence.
    const seq = first.seq?.next() ?? 0;
    const result = first.outbox?.submit({
      stream: 'events',
      seq,
      ts: 1_700_000_000_000,
      body: Buffer.from('{"v":1}'),
      contentType: CONTENT_TYPE_JSON,
    });

    // A second agent on the same directory is refused and holds nothing.
    const second: OpenedPublisher = {};
    await expect(openPublisher(second, options(dir).o)).rejects.toBeInstanceOf(LockHeldError);
    expect(second).toEqual({});

    await closePublisher(first);
    expect(first).toEqual({});
    // Closing spools what the broker never took.
    await expect(result).resolves.toBe('spooled');
    // Released: the next start takes the lock, finds the spooled message, numbers after it.
    const third: OpenedPublisher = {};
    await openPublisher(third, options(dir).o);
    expect(third.spool?.stats().pending).toBe(1);
    expect(third.seq?.next()).toBeGreaterThan(seq);
    await closePublisher(third);
  });

  it('says which setting to change when the state directory cannot be created', async () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, '');
    const into: OpenedPublisher = {};
    await expect(openPublisher(into, options(join(file, 'mqtt')).o)).rejects.toThrow(
      /cannot create the MQTT state directory .*a-file\/mqtt: .*set mqtt.spool.dir \(GPULSE_MQTT_SPOOL_DIR, --mqtt-spool-dir\)/,
    );
    expect(into).toEqual({});
  });

  it('warns when TLS files are set for a broker URL that is not mqtts://', async () => {
    const dir = tempDir();
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n');
    const { o, records } = options(join(dir, 'state'), { 'mqtt-ca': ca });
    const into: OpenedPublisher = {};
    await openPublisher(into, o);
    const warning = records.find((r) => String(r.msg).includes('not mqtts://'));
    expect(warning?.broker).toBe('mqtt://127.0.0.1:1');
    await closePublisher(into);
  });
});
