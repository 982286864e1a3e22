// What `gpulse gateway` tells its user: its help, a missing broker, a taken embedded-broker port,
// and a broker it cannot reach (it has no spool, and says so by not claiming one).
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../edge/gateway/command.js';
import { createGateway } from '../../edge/gateway/gateway.js';
import { builtCli } from '../helpers/edge-agent.js';
import { captureLogger } from '../helpers/log-sink.js';
import { eventually, freePort } from '../helpers/mosquitto.js';

function gateway(args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('GPULSE_')),
  );
  return spawnSync(process.execPath, [builtCli(), 'gateway', ...args], {
    encoding: 'utf8',
    env: { ...clean, ...env },
    timeout: 30_000,
  });
}

describe('gpulse gateway, as its user meets it', () => {
  let taken: Server;
  let takenPort: number;

  beforeAll(async () => {
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const address = taken.address();
    takenPort = typeof address === 'object' && address ? address.port : 0;
  });
  afterAll(async () => {
    await new Promise((resolve) => taken.close(resolve));
  });

  it('says in --help that the broker URL is required unless an embedded broker is asked for', () => {
    const r = gateway(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /--mqtt-url <URL>\s+MQTT broker of the fleet .*required unless\s+--embedded-broker/s,
    );
    expect(r.stdout).not.toMatch(/default: the embedded broker/);
    expect(r.stdout).toContain('--max-device-bytes');
    expect(r.stdout).toContain('--max-fleet-bytes');
  });

  it('exits 2 without a broker, naming both ways to give one', () => {
    const r = gateway(['--listen', '127.0.0.1:0']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('gpulse: no broker');
    expect(r.stderr).toContain('--mqtt-url');
    expect(r.stderr).toContain('--embedded-broker');
  });

  it('exits 1 when the embedded broker’s port is taken, naming the flag that moves it', () => {
    const r = gateway([
      '--embedded-broker',
      `127.0.0.1:${takenPort}`,
      '--listen',
      '127.0.0.1:0',
      '--log-format',
      'json',
    ]);
    expect(r.status).toBe(1);
    const failure = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { msg: string })
      .find((l) => l.msg.startsWith('gpulse gateway failed to start'));
    expect(failure?.msg).toContain(`cannot start the embedded broker on 127.0.0.1:${takenPort}`);
    expect(failure?.msg).toContain('the port is taken');
    expect(failure?.msg).toContain('--embedded-broker HOST:PORT');
  });

  it('says it retries an unreachable broker, without claiming a spool it does not have', async () => {
    const port = await freePort();
    const { log, records } = captureLogger();
    const { config } = loadGatewayConfig({
      flags: { 'mqtt-url': `mqtt://127.0.0.1:${port}`, listen: '127.0.0.1:0' },
    });
    const gw = createGateway(config, { log, version: '0.0.0-test' });
    await gw.start();
    try {
      const warning = await eventually(
        () => records.find((r) => String(r.msg).startsWith('cannot connect to the MQTT broker')),
        10_000,
        'the connection warning',
      );
      expect(warning.msg).toBe('cannot connect to the MQTT broker; retrying with backoff');
      expect(records.some((r) => /spool/i.test(String(r.msg)))).toBe(false);
    } finally {
      await gw.stop();
    }
  });
});
