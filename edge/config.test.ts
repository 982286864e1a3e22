import { describe, expect, it } from 'vitest';
import { problemsOf } from '../test/helpers/config-errors.js';
import { loadConfig } from '../agent/config.js';
import { loadGatewayConfig } from './gateway/command.js';
import { defaultStateDir } from './mqtt/component.js';
import { createEdgeComponents } from './components.js';

describe('mqtt config', () => {
  it('is off by default, with documented defaults', () => {
    const { config } = loadConfig();
    expect(config.mqtt.url).toBeUndefined();
    expect(config.mqtt).toMatchObject({
      protocol: 'auto',
      site: 'default',
      qos: 1,
      keepaliveInterval: 30_000,
      reconnectMinDelay: 1000,
      reconnectMaxDelay: 60_000,
      authRetryDelay: 600_000,
      telemetry: { interval: 10_000, compressAbove: 1024 },
      statusInterval: 60_000,
      spool: { maxBytes: 256 * 1024 * 1024, maxAge: 7 * 86_400_000, replayRate: 1024 * 1024 },
    });
    expect(createEdgeComponents(config)).toEqual([]);
  });

  it('takes the file, GPULSE_MQTT_* variables and flags, in that order', () => {
    const file = {
      name: 'gpulse.yaml',
      text: 'mqtt:\n  url: mqtts://broker:8883\n  site: plant-1\n  qos: 0\n  spool:\n    maxBytes: 64MiB\n  telemetry:\n    interval: 30s\n',
    };
    const { config } = loadConfig({
      file,
      env: { GPULSE_MQTT_NODE: 'cam-7', GPULSE_MQTT_SPOOL_MAX_AGE: '2d', GPULSE_MQTT_QOS: '1' },
      flags: { site: 'plant-2', 'mqtt-ca': '/etc/gpulse/ca.pem' },
    });
    expect(config.mqtt).toMatchObject({
      url: 'mqtts://broker:8883',
      site: 'plant-2',
      node: 'cam-7',
      qos: 1,
      tls: { ca: '/etc/gpulse/ca.pem' },
      telemetry: { interval: 30_000 },
      spool: { maxBytes: 64 * 1024 * 1024, maxAge: 2 * 86_400_000 },
    });
    expect(createEdgeComponents(config).map((c) => c.name)).toEqual(['mqtt', 'mqtt-commands']);
  });

  it('moves credentials out of the URL so it never carries a secret', () => {
    const { config } = loadConfig({ flags: { 'mqtt-url': 'mqtt://dev%40x:p%3Ass@broker:1883' } });
    expect(config.mqtt).toMatchObject({
      url: 'mqtt://broker:1883',
      username: 'dev@x',
      password: 'p:ss',
    });
    const explicit = loadConfig({
      env: { GPULSE_MQTT_PASSWORD: 'from-env' },
      flags: { 'mqtt-url': 'mqtt://u:from-url@broker:1883' },
    }).config.mqtt;
    expect(explicit.password).toBe('from-env');
  });

  it('reports bad values with their path and origin', () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: { GPULSE_MQTT_SITE: 'a/b', GPULSE_MQTT_QOS: '2' },
        flags: { 'mqtt-url': 'http://x', 'mqtt-cert': '/c.pem' },
      }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^mqtt\.url: unsupported scheme http: .*\(from --mqtt-url\)$/),
        expect.stringMatching(
          /^mqtt\.site: site "a\/b" must be .*topic level.*\(from GPULSE_MQTT_SITE\)$/,
        ),
        expect.stringMatching(/^mqtt\.qos: /),
      ]),
    );
    expect(
      problemsOf(() => loadConfig({ flags: { 'mqtt-url': 'mqtt://x:1', 'mqtt-cert': '/c.pem' } })),
    ).toEqual([expect.stringMatching(/^mqtt\.tls: a client certificate needs both cert and key/)]);
    expect(problemsOf(() => loadConfig({ flags: { 'mqtt-url': 'not a url' } }))[0]).toMatch(
      /expected a broker URL like "mqtts:\/\/broker\.example:8883"/,
    );
  });

  it('puts state under systemd STATE_DIRECTORY when there is one', () => {
    expect(defaultStateDir({})).toBe('/var/lib/gpulse/mqtt');
    expect(defaultStateDir({ STATE_DIRECTORY: '/var/lib/gpulse-edge:/other' })).toBe(
      '/var/lib/gpulse-edge/mqtt',
    );
  });
});

describe('gateway config', () => {
  it('has defaults and takes its own flags and variables', () => {
    expect(loadGatewayConfig({}).config.gateway).toMatchObject({
      deviceTimeout: 120_000,
      deviceTtl: 86_400_000,
      maxDevices: 10_000,
      embeddedBroker: 'off',
    });
    const { config } = loadGatewayConfig({
      env: { GPULSE_GATEWAY_DEVICE_TTL: '1h' },
      flags: { 'share-group': 'edge-gw', 'embedded-broker': '[::1]:1884', 'device-timeout': '45s' },
    });
    expect(config.gateway).toMatchObject({
      shareGroup: 'edge-gw',
      deviceTimeout: 45_000,
      deviceTtl: 3_600_000,
      embeddedBroker: { host: '::1', port: 1884 },
    });
    expect(
      problemsOf(() =>
        loadGatewayConfig({ flags: { 'share-group': 'a/b', 'embedded-broker': 'nowhere' } }),
      ),
    ).toEqual([
      expect.stringMatching(/^gateway\.shareGroup: /),
      expect.stringMatching(/^gateway\.embeddedBroker: expected "off" or HOST:PORT/),
    ]);
  });
});
