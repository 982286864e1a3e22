import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { systemClock, type Clock, type TimerHandle } from '../../agent/clock.js';
import type { AgentConfig } from '../../agent/config.js';
import { errorMessage } from '../../agent/errors.js';
import { createWebApp } from '../../agent/http/web-app.js';
import { loadWebConfigFile } from '../../agent/http/web-config.js';
import { fleetFilter, sharedFilter, type StreamName } from '../../exporters/mqtt/topics.js';
import { redactUrl } from '../redact-url.js';
import { MqttConnection, type ConnectionOptions } from '../publisher.js';
import { loadMqttSecrets } from '../secrets.js';
import type { EmbeddedBroker } from './embedded-broker.js';
import { FleetState } from './fleet-state.js';

const gzipAsync = promisify(gzip);

/** I/O of the gateway. */
export interface GatewayDeps {
  readonly log: Logger;
  readonly version: string;
  readonly clock?: Clock;
  readonly connect?: ConnectionOptions['connect'];
}

/** A built, not yet started gateway. */
export interface Gateway {
  readonly fleet: FleetState;
  readonly app: FastifyInstance;
  /** Starts the embedded broker (if asked), the subscriptions and the HTTP server; resolves with its address. */
  start(): Promise<string>;
  /** Idempotent. */
  stop(): Promise<void>;
  /** URL of the broker in use (the embedded one's once started). */
  brokerUrl(): string | undefined;
}

/** Thrown when the gateway has no broker to connect to. */
export class GatewayConfigError extends Error {
  readonly code = 'GPULSE_GATEWAY_CONFIG';
}

/**
 * `gpulse gateway`: subscribes to the fleet's topics (telemetry and events through an MQTT 5
 * shared subscription when a group is set; status always in full, so every gateway sees every
 * last will) and serves one /metrics for Prometheus.
 */
export function createGateway(config: AgentConfig, deps: GatewayDeps): Gateway {
  const clock = deps.clock ?? systemClock;
  const log = deps.log.child({ component: 'gateway' });
  const g = config.gateway;
  const fleet = new FleetState({
    clock,
    log,
    deviceTimeoutMs: g.deviceTimeout,
    deviceTtlMs: g.deviceTtl,
    maxDevices: g.maxDevices,
    maxSeriesPerDevice: g.maxSeriesPerDevice,
    maxPayloadBytes: g.maxPayloadBytes,
    maxInflatedBytes: g.maxInflatedBytes,
  });
  // The same web configuration and bounds as the agent's (TLS, basic auth, connection cap):
  // the gateway's /metrics carries the whole fleet.
  const web = config.http.web;
  const app = createWebApp({
    log,
    limits: config.http,
    web,
    reload: web && (() => Promise.resolve().then(() => loadWebConfigFile(web.file))),
    openPaths: ['/healthz', '/readyz'],
  });
  let connection: MqttConnection | undefined;
  let broker: EmbeddedBroker | undefined;
  let sweepTimer: TimerHandle | undefined;
  let url = config.mqtt.url;
  let stopped = false;

  app.get('/metrics', async (request, reply) => {
    const text = fleet.exposition();
    void reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8');
    if (/\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''))) {
      void reply.header('content-encoding', 'gzip');
      return reply.send(await gzipAsync(Buffer.from(text, 'utf8')));
    }
    return reply.send(text);
  });
  app.get('/healthz', (_request, reply) => reply.send({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const ready = connection?.subscribed ?? false;
    return reply
      .code(ready ? 200 : 503)
      .send({ ready, devices: fleet.size(), queued: fleet.queued() });
  });
  app.get('/', async (_request, reply) => {
    void reply.header('content-type', 'text/plain; charset=utf-8');
    return `gpulse ${deps.version} fleet gateway: ${fleet.size()} devices; metrics at /metrics\n`;
  });

  const sweep = () => {
    fleet.sweep();
    sweepTimer = clock.setTimeout(sweep, 60_000);
    sweepTimer.unref?.();
  };

  return {
    fleet,
    app,
    brokerUrl: () => url,
    async start() {
      if (g.embeddedBroker !== 'off') {
        const { startEmbeddedBroker } = await import('./embedded-broker.js');
        broker = await startEmbeddedBroker(g.embeddedBroker, log);
        url ??= broker.url;
      }
      if (!url) {
        throw new GatewayConfigError(
          'no broker: pass --mqtt-url mqtt[s]://HOST:PORT (or GPULSE_MQTT_URL), or --embedded-broker to start one here',
        );
      }
      const embedded = broker !== undefined && url === broker.url;
      const secrets = loadMqttSecrets(config.mqtt);
      const conn = new MqttConnection({
        url,
        // aedes speaks 3.1.1 only.
        protocol: embedded ? '3.1.1' : config.mqtt.protocol,
        clientId:
          g.clientId ??
          `gpulse-gateway-${hostname().replace(/[^A-Za-z0-9._-]/g, '-')}-${process.pid}-${randomBytes(2).toString('hex')}`,
        username: config.mqtt.username,
        password: secrets.password,
        tls: secrets.tls,
        keepaliveMs: config.mqtt.keepaliveInterval,
        reconnectMinMs: config.mqtt.reconnectMinDelay,
        reconnectMaxMs: config.mqtt.reconnectMaxDelay,
        authRetryMs: config.mqtt.authRetryDelay,
        coalesceWrites: true,
        clock,
        log,
        connect: deps.connect,
      });
      connection = conn;
      conn.onState((connected) => (fleet.brokerConnected = connected));
      const receive = (message: Parameters<FleetState['receive']>[0]) => {
        try {
          fleet.receive(message);
        } catch (err) {
          log.error({ topic: message.topic, err: errorMessage(err) }, 'fleet message failed');
        }
      };
      const shared = (stream: StreamName) =>
        g.shareGroup ? sharedFilter(g.shareGroup, fleetFilter(stream)) : fleetFilter(stream);
      if (g.shareGroup && embedded)
        log.warn('the embedded broker has no shared subscriptions: shareGroup is ignored by it');
      conn.subscribe(fleetFilter('status'), receive);
      // Schemas in full too: a gateway of a share group may get values whose inline schema went
      // to another member; the retained copy fills the gap.
      conn.subscribe(fleetFilter('schema'), receive);
      conn.subscribe(shared('telemetry'), receive);
      conn.subscribe(shared('events'), receive);
      conn.start();
      sweep();
      let address: string;
      try {
        address = await app.listen({ host: config.listen.host, port: config.listen.port });
        // fastify names the scheme from its own https option, which a server factory bypasses.
        if (web?.tls) address = address.replace(/^http:/, 'https:');
      } catch (err) {
        throw new Error(
          `cannot listen on ${config.listen.host}:${config.listen.port}: ${errorMessage(err)}; choose another address with --listen HOST:PORT`,
          { cause: err },
        );
      }
      for (const w of web?.warnings ?? []) log.warn({ file: web?.file }, w);
      log.info(
        {
          broker: redactUrl(url),
          address,
          shareGroup: g.shareGroup,
          deviceTimeout: g.deviceTimeout,
          deviceTtl: g.deviceTtl,
        },
        `gpulse fleet gateway serving ${address}/metrics`,
      );
      return address;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (sweepTimer) clock.clearTimeout(sweepTimer);
      await connection?.stop();
      await app.close();
      await broker?.stop();
    },
  };
}
