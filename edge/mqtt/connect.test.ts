import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../test/helpers/log-sink.js';
import { freePort } from '../../test/helpers/mosquitto.js';
import { startEmbeddedBroker } from '../gateway/embedded-broker.js';
import { connectMqtt } from './connect.js';

describe('connectMqtt', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('connects over TCP to the host and port of the URL, and publishes', async () => {
    const port = await freePort();
    const broker = await startEmbeddedBroker({ host: '127.0.0.1', port }, silentLogger());
    cleanups.push(() => broker.stop());
    const client = connectMqtt(`mqtt://127.0.0.1:${port}`, {
      protocolVersion: 4,
      clientId: 'connect-test',
      reconnectPeriod: 0,
    });
    cleanups.push(() => void client.end(true));
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    expect(client.options.port).toBe(port);
    expect(client.options.host).toBe('127.0.0.1');
    await client.publishAsync('gpulse/v1/s/n/events', '{}', { qos: 1 });
    expect(client.connected).toBe(true);
  });

  it('reports a TLS handshake failure as a client error', async () => {
    // A plain TCP server: the TLS client hello gets an answer that is not TLS.
    const server = createServer((socket) => socket.end('not tls\n').on('error', () => undefined));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      server.close();
    });
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const client = connectMqtt(`mqtts://127.0.0.1:${port}`, {
      protocolVersion: 4,
      clientId: 'tls-test',
      reconnectPeriod: 0,
    });
    cleanups.push(() => void client.end(true));
    const err = await new Promise<Error>((resolve) => client.once('error', resolve));
    expect(err.message).toMatch(/ssl|tls|socket|wrong version|packet length/i);
    expect(client.options.protocol).toBe('mqtts');
  });
});
