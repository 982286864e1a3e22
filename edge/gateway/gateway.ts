import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { systemClock, type Clock, type TimerHandle } from '../../agent/core/clock.js';
import type { AgentConfig } from '../../agent/config.js';
import { errorMessage } from '../../agent/core/errors.js';
import { createWebApp } from '../../agent/http/web-app.js';
import { loadWebConfigFile } from '../../agent/http/web-config.js';
import {
  fleetFilter,
  parseStreamTopic,
  sharedFilter,
  type StreamName,
} from '../../exporters/mqtt/topics.js';
import { redactUrl } from '../mqtt/redact-url.js';
import { MqttConnection, type ConnectionOptions, type IncomingMessage } from '../mqtt/publisher.js';
import { loadMqttSecrets } from '../mqtt/secrets.js';
import type { EmbeddedBroker } from './embedded-broker.js';
import { FleetState } from './fleet-state.js';
import {
  GatewayGroup,
  inboxFilter,
  inboxTopic,
  memberId,
  membersFilter,
  memberTopic,
} from './group.js';

/** A member of a share group republishes its presence this often... */
const GROUP_HEARTBEAT_MS = 20_000;
/** ...and is taken as gone when not heard for this long (only if its last will got lost). */
const GROUP_MEMBER_TIMEOUT_MS = 3 * GROUP_HEARTBEAT_MS;
/**
 * A scrape is written in pieces of about this many characters: small enough to be allocated in
 * V8's young generation and die there (256 KB pieces went to the large-object space and grew the
 * heap by the size of each scrape until a full collection).
 */
const SCRAPE_PIECE = 32 * 1024;

/** Joins the exposition's strings into pieces of about SCRAPE_PIECE characters, lazily. */
function* pieces(chunks: readonly string[]): Generator<string> {
  let piece: string[] = [];
  let length = 0;
  for (const c of chunks) {
    piece.push(c);
    length += c.length;
    if (length >= SCRAPE_PIECE) {
      yield piece.join('');
      piece = [];
      length = 0;
    }
  }
  if (piece.length > 0) yield piece.join('');
}

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
 * shared subscription when a group is set; status and schemas always in full, so every gateway
 * sees every last will) and serves one /metrics for Prometheus. In a share group each device is
 * served by one member (group.ts): messages of another member's devices are forwarded to it.
 */
export function createGateway(config: AgentConfig, deps: GatewayDeps): Gateway {
  const clock = deps.clock ?? systemClock;
  const log = deps.log.child({ component: 'gateway' });
  const g = config.gateway;
  const clientId =
    g.clientId ??
    `gpulse-gateway-${hostname().replace(/[^A-Za-z0-9._-]/g, '-')}-${process.pid}-${randomBytes(2).toString('hex')}`;
  // The embedded broker (aedes) has no shared subscriptions: there a group would only duplicate.
  const groupName =
    g.shareGroup !== undefined && g.embeddedBroker === 'off' ? g.shareGroup : undefined;
  const group =
    groupName !== undefined
      ? new GatewayGroup(memberId(clientId), { clock, memberTimeoutMs: GROUP_MEMBER_TIMEOUT_MS })
      : undefined;
  const fleet = new FleetState({
    clock,
    log,
    deviceTimeoutMs: g.deviceTimeout,
    deviceTtlMs: g.deviceTtl,
    maxDevices: g.maxDevices,
    maxSeriesPerDevice: g.maxSeriesPerDevice,
    maxPayloadBytes: g.maxPayloadBytes,
    maxInflatedBytes: g.maxInflatedBytes,
    maxDeviceBytes: g.maxDeviceBytes,
    maxFleetBytes: g.maxFleetBytes,
    owns: group ? (site, node) => group.owns(site, node) : undefined,
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
  let heartbeatTimer: TimerHandle | undefined;
  let url = config.mqtt.url;
  let stopped = false;

  app.get('/metrics', async (request, reply) => {
    // Streamed in pieces: the devices' text is shared, never copied into one string (see
    // FleetState.expositionChunks); gzip runs on the pieces as they go.
    const body = Readable.from(pieces(fleet.expositionChunks()));
    void reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8');
    if (/\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''))) {
      void reply.header('content-encoding', 'gzip');
      // Level 1: a fleet's exposition is tens of MB of very repetitive text; the fastest level
      // still shrinks it about tenfold, where the default level took several times longer.
      return reply.send(body.pipe(createGzip({ level: 1 })));
    }
    return reply.send(body);
  });
  app.get('/healthz', (_request, reply) => reply.send({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const ready = connection?.subscribed ?? false;
    return reply.code(ready ? 200 : 503).send({
      ready,
      devices: fleet.size(),
      served: fleet.served(),
      queued: fleet.queued(),
      ...(group ? { members: group.members() } : {}),
    });
  });
  app.get('/', async (_request, reply) => {
    void reply.header('content-type', 'text/plain; charset=utf-8');
    return `gpulse ${deps.version} fleet gateway: ${fleet.served()} devices served; metrics at /metrics\n`;
  });

  const sweep = () => {
    if (group?.expire()) membersChanged();
    fleet.sweep();
    sweepTimer = clock.setTimeout(sweep, 60_000);
    sweepTimer.unref?.();
  };

  const membersChanged = () => {
    if (!group) return;
    fleet.groupMembers = group.members().length;
    fleet.reassign();
    log.info(
      { shareGroup: groupName, members: group.members(), self: group.self },
      'share group members changed: devices reassigned',
    );
  };

  const receive = (message: IncomingMessage) => {
    try {
      fleet.receive(message);
    } catch (err) {
      log.error({ topic: message.topic, err: errorMessage(err) }, 'fleet message failed');
    }
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
      const presence = group && groupName ? memberTopic(groupName, group.self) : undefined;
      const conn = new MqttConnection({
        url,
        // aedes speaks 3.1.1 only.
        protocol: embedded ? '3.1.1' : config.mqtt.protocol,
        clientId,
        username: config.mqtt.username,
        password: secrets.password,
        tls: secrets.tls,
        keepaliveMs: config.mqtt.keepaliveInterval,
        reconnectMinMs: config.mqtt.reconnectMinDelay,
        reconnectMaxMs: config.mqtt.reconnectMaxDelay,
        authRetryMs: config.mqtt.authRetryDelay,
        coalesceWrites: true,
        // Nothing is stored while the broker is away: the fleet's series just stop updating.
        spools: false,
        // An empty retained message clears the presence: the group learns at once that this
        // gateway is gone (SIGKILL, lost link) and hands its devices to the others.
        will: presence
          ? () => ({ topic: presence, payload: Buffer.alloc(0), qos: 1, retain: true })
          : undefined,
        clock,
        log,
        connect: deps.connect,
      });
      connection = conn;
      conn.onState((connected) => (fleet.brokerConnected = connected));
      if (g.shareGroup && embedded)
        log.warn('the embedded broker has no shared subscriptions: shareGroup is ignored by it');
      if (group && groupName && presence) {
        const announce = () => {
          conn
            .publish(presence, JSON.stringify({ v: 1, ts: clock.now() }), {
              qos: 1,
              retain: true,
              contentType: 'application/json',
            })
            .catch((err: unknown) =>
              log.debug({ err: errorMessage(err) }, 'share group presence not published'),
            );
        };
        // Announced before the subscriptions are renewed (connect hooks run first), heard back
        // with the others' retained presence ahead of any telemetry (one SUBSCRIBE, in order).
        conn.onConnect(announce);
        const heartbeat = () => {
          if (conn.connected) announce();
          heartbeatTimer = clock.setTimeout(heartbeat, GROUP_HEARTBEAT_MS);
          heartbeatTimer.unref?.();
        };
        heartbeatTimer = clock.setTimeout(heartbeat, GROUP_HEARTBEAT_MS);
        heartbeatTimer.unref?.();
        conn.subscribe(membersFilter(groupName), (message) => {
          const member = message.topic.slice(message.topic.lastIndexOf('/') + 1);
          if (group.heard(member, message.payload.length > 0)) membersChanged();
        });
        // Messages other members forwarded: applied as if they came on the device's own topic.
        const inbox = inboxFilter(groupName, group.self);
        const inboxDepth = inbox.split('/').length - 3;
        conn.subscribe(inbox, (message) => {
          const [site = '', node = '', stream = ''] = message.topic.split('/').slice(inboxDepth);
          receive({ ...message, topic: `gpulse/v1/${site}/${node}/${stream}` });
        });
      }
      // Another member's device: forwarded to it (the broker's pick of a member is not stable).
      const shared = (message: IncomingMessage) => {
        const parsed = group ? parseStreamTopic(message.topic) : undefined;
        if (group && groupName && parsed && !group.owns(parsed.site, parsed.node)) {
          const owner = group.ownerOf(parsed.site, parsed.node);
          conn
            .publish(inboxTopic(groupName, owner, parsed, parsed.stream), message.payload, {
              qos: 1,
              contentType: message.contentType,
            })
            .then(
              () => fleet.countForwarded(parsed.stream),
              (err: unknown) => {
                fleet.countForwardFailed(parsed.stream, message.topic);
                log.debug(
                  { topic: message.topic, owner, err: errorMessage(err) },
                  'forwarding to the member that serves the device failed',
                );
              },
            );
          return;
        }
        receive(message);
      };
      const sharedTopic = (stream: StreamName) =>
        groupName ? sharedFilter(groupName, fleetFilter(stream)) : fleetFilter(stream);
      conn.subscribe(fleetFilter('status'), receive);
      // Schemas in full too: a gateway of a share group may take a device over from another
      // member; the retained copy (kept undecoded until then) has its schema.
      conn.subscribe(fleetFilter('schema'), receive);
      conn.subscribe(sharedTopic('telemetry'), groupName ? shared : receive);
      conn.subscribe(sharedTopic('events'), groupName ? shared : receive);
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
          shareGroup: groupName,
          member: group?.self,
          deviceTimeout: g.deviceTimeout,
          deviceTtl: g.deviceTtl,
          maxDeviceBytes: g.maxDeviceBytes,
          maxFleetBytes: g.maxFleetBytes,
        },
        `gpulse fleet gateway serving ${address}/metrics`,
      );
      return address;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (sweepTimer) clock.clearTimeout(sweepTimer);
      if (heartbeatTimer) clock.clearTimeout(heartbeatTimer);
      // A clean stop clears the presence itself (the will is discarded on DISCONNECT).
      const presence = group && groupName ? memberTopic(groupName, group.self) : undefined;
      await connection?.stop(
        presence ? { topic: presence, payload: Buffer.alloc(0), qos: 1, retain: true } : undefined,
      );
      await app.close();
      await broker?.stop();
    },
  };
}
