/**
 * Owns the MQTT client: one connection at a time, its own reconnect with full-jitter backoff,
 * a longer wait after the broker refuses the credentials, last will, subscriptions that survive
 * reconnects. MQTT.js's own reconnect is off (`reconnectPeriod: 0`) and it never queues offline
 * (`queueQoSZero: false`, nothing is published while disconnected), so exactly one layer — the
 * spool — buffers (MQTT.js #397, #607, #2015).
 */
import type { IClientOptions, IClientPublishOptions, MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { backoffDelay, type Clock, type TimerHandle } from '../../agent/core/clock.js';
import { errorMessage } from '../../agent/core/errors.js';
import { levelsMatch, subscriptionLevels } from '../../exporters/mqtt/topics.js';
import { redactUrl } from './redact-url.js';
import { coalesceWrites } from './coalesce-writes.js';
import { connectMqtt } from './connect.js';
import {
  ConnectionLostError,
  NotConnectedError,
  PublishRefusedError,
  withTimeout,
  type IncomingMessage,
  type MessageHandler,
  type PublishOptions,
} from './delivery.js';

// All of delivery.ts (its message types, errors and withTimeout) is part of this module's API.
export * from './delivery.js';

/** A message registered as last will. */
export interface WillMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1;
  readonly retain: boolean;
}

/** TLS material, already read from files. */
export interface TlsMaterial {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** Settings of one MQTT connection. */
export interface ConnectionOptions {
  readonly url: string;
  readonly protocol: 'auto' | '5' | '3.1.1';
  readonly clientId: string;
  readonly username?: string;
  readonly password?: string;
  readonly tls?: TlsMaterial;
  readonly keepaliveMs: number;
  readonly connectTimeoutMs?: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  /** Wait after an authorization refusal: a random 0.5–1.5× this. */
  readonly authRetryMs: number;
  /** Send the writes of one event-loop turn together (a receiver's PUBACKs in one syscall). */
  readonly coalesceWrites?: boolean;
  /** Whether what is not delivered waits in a spool (the agent) or not (the gateway); for logs. Default true. */
  readonly spools?: boolean;
  /** Last will, built per connection attempt (its payload carries the session number). */
  readonly will?: (session: number) => WillMessage;
  /** Numbers connection sessions (persisted by the caller); default counts from 1. */
  readonly nextSession?: () => number;
  readonly clock: Clock;
  readonly log: Logger;
  readonly random?: () => number;
  /** MQTT.js connect (tests may wrap it). */
  readonly connect?: (url: string, options: IClientOptions) => MqttClient;
}

// CONNACK refusals that new credentials, not retries, fix: 3.1.1 return codes 4 (bad user name or
// password) and 5 (not authorized); MQTT 5 reason codes 0x86 and 0x87 (and 0x8C bad auth method).
const AUTH_REFUSED = new Set([4, 5, 0x86, 0x87, 0x8c]);
// "Unacceptable protocol version" (3.1.1 return code 1) and 0x84 "Unsupported protocol version".
const PROTOCOL_REFUSED = new Set([1, 0x84]);
/** A connection that lasted this long resets the backoff. */
const STABLE_MS = 60_000;

/** Stands in for mqtt.js's debug logger while DEBUG does not ask for it. */
function ignoreDebug(): void {}

interface InFlight {
  settled: boolean;
  reject(err: Error): void;
}

/** Why the latest connection attempt or connection ended, for logs (once per change). */
type Trouble = { kind: 'auth'; message: string } | { kind: 'other'; message: string };

/** One MQTT connection with its own reconnect loop. */
export class MqttConnection {
  private client: MqttClient | undefined;
  private isConnected = false;
  private stopped = true;
  private failures = 0;
  private connectedAt = 0;
  private timer: TimerHandle | undefined;
  private protocolVersion: 4 | 5;
  private session = 0;
  private lastTrouble: string | undefined;
  private pendingTrouble: Trouble | undefined;
  private everConnected = false;
  private pendingSubacks = 0;
  private readonly inFlight = new Set<InFlight>();
  /** Handlers by filter, with the filter's levels split once (matched on every message). */
  private readonly subscriptions = new Map<
    string,
    { readonly levels: readonly string[]; readonly handlers: Set<MessageHandler> }
  >();
  private readonly stateListeners = new Set<(connected: boolean) => void>();
  private readonly connectHooks = new Set<(session: number) => void>();
  /** Connection attempts after the first (gpulse_mqtt_reconnects_total). */
  reconnects = 0;

  constructor(private readonly options: ConnectionOptions) {
    this.protocolVersion = options.protocol === '3.1.1' ? 4 : 5;
  }

  /** True while connected (CONNACK received, not yet closed). */
  get connected(): boolean {
    return this.isConnected;
  }

  /** True while connected with every subscription acknowledged by the broker. */
  get subscribed(): boolean {
    return this.isConnected && this.pendingSubacks === 0;
  }

  /** MQTT version in use: 5, or 4 (3.1.1). */
  get protocol(): 4 | 5 {
    return this.protocolVersion;
  }

  /** Starts connecting (returns at once; the connection comes up in the background). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt();
  }

  /** Calls `listener` on every connect and disconnect. */
  onState(listener: (connected: boolean) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** Calls `hook` after each successful connect, before subscriptions are renewed. */
  onConnect(hook: (session: number) => void): () => void {
    this.connectHooks.add(hook);
    return () => this.connectHooks.delete(hook);
  }

  /** Subscribes `handler` to `filter` (QoS 1), now and after every reconnect. */
  subscribe(filter: string, handler: MessageHandler): () => void {
    let subscription = this.subscriptions.get(filter);
    if (!subscription) {
      subscription = { levels: subscriptionLevels(filter), handlers: new Set() };
      this.subscriptions.set(filter, subscription);
      if (this.isConnected) this.subscribeOnBroker([filter]);
    }
    subscription.handlers.add(handler);
    return () => {
      const set = this.subscriptions.get(filter)?.handlers;
      if (!set) return;
      set.delete(handler);
      if (set.size > 0) return;
      this.subscriptions.delete(filter);
      if (this.isConnected) this.client?.unsubscribe(filter);
    };
  }

  /** Publishes; resolves on PUBACK (QoS 1) or once written (QoS 0); rejects when offline. */
  publish(topic: string, payload: Buffer | string, options: PublishOptions): Promise<void> {
    const client = this.client;
    if (!client || !this.isConnected) return Promise.reject(new NotConnectedError());
    return new Promise<void>((resolve, reject) => {
      const entry: InFlight = {
        settled: false,
        reject: (err) => {
          if (entry.settled) return;
          entry.settled = true;
          this.inFlight.delete(entry);
          reject(err);
        },
      };
      this.inFlight.add(entry);
      const publishOptions: IClientPublishOptions = {
        qos: options.qos,
        retain: options.retain ?? false,
      };
      if (this.protocolVersion === 5 && options.contentType) {
        publishOptions.properties = {
          contentType: options.contentType,
          payloadFormatIndicator: options.contentType === 'application/json',
        };
      }
      client.publish(topic, payload, publishOptions, (err) => {
        if (entry.settled) return;
        if (!err) {
          entry.settled = true;
          this.inFlight.delete(entry);
          resolve();
          return;
        }
        const code = (err as { code?: unknown }).code;
        entry.reject(
          typeof code === 'number' && code >= 0x80
            ? new PublishRefusedError(code, err.message)
            : new ConnectionLostError(),
        );
      });
    });
  }

  /** Publishes `farewell` (if connected), disconnects cleanly (no will) and stops reconnecting. */
  async stop(farewell?: WillMessage, timeoutMs = 2000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const client = this.client;
    if (!client) return;
    if (farewell && this.isConnected) {
      await withTimeout(
        this.publish(farewell.topic, farewell.payload, {
          qos: farewell.qos,
          retain: farewell.retain,
          contentType: 'application/json',
        }),
        timeoutMs,
        this.options.clock,
      ).catch(() => undefined);
    }
    this.client = undefined;
    const wasConnected = this.isConnected;
    this.isConnected = false;
    for (const entry of [...this.inFlight]) entry.reject(new ConnectionLostError());
    // A DISCONNECT tells the broker to discard the will: the farewell already said goodbye.
    await withTimeout(
      new Promise<void>((resolve) => client.end(false, {}, () => resolve())),
      timeoutMs,
      this.options.clock,
    ).catch(() => client.end(true));
    if (wasConnected) this.notify(false);
  }

  private attempt(): void {
    this.timer = undefined;
    if (this.stopped) return;
    this.session = this.options.nextSession?.() ?? this.session + 1;
    const o = this.options;
    const will = o.will?.(this.session);
    const url = new URL(o.url);
    const clientOptions: IClientOptions = {
      protocolVersion: this.protocolVersion,
      clientId: o.clientId,
      clean: true,
      keepalive: Math.round(o.keepaliveMs / 1000),
      connectTimeout: o.connectTimeoutMs ?? 30_000,
      reconnectPeriod: 0,
      queueQoSZero: false,
      resubscribe: false,
      // mqtt-packet otherwise pre-builds a Buffer for each of the 65,536 two-byte numbers on the
      // first packet: 6.3 MB of heap, a tenth of an edge device's memory budget, to save a 2-byte
      // allocation per packet.
      writeCache: false,
      // mqtt.js calls its `debug` logger a dozen times a packet even when it is off (the arguments
      // are built first): ~4 µs a message at the gateway. DEBUG=mqttjs* still turns it on.
      log: /mqttjs|^\*$/.test(process.env.DEBUG ?? '') ? undefined : ignoreDebug,
      // Credentials in the URL work too; explicit settings win.
      username: o.username ?? (url.username ? decodeURIComponent(url.username) : undefined),
      password: o.password ?? (url.password ? decodeURIComponent(url.password) : undefined),
      ca: o.tls?.ca,
      cert: o.tls?.cert,
      key: o.tls?.key,
      rejectUnauthorized: true,
      will: will
        ? {
            topic: will.topic,
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            ...(this.protocolVersion === 5
              ? { properties: { contentType: 'application/json', payloadFormatIndicator: true } }
              : {}),
          }
        : undefined,
    };
    url.username = '';
    url.password = '';
    let client: MqttClient;
    try {
      client = (o.connect ?? connectMqtt)(url.toString(), clientOptions);
    } catch (err) {
      this.trouble({ kind: 'other', message: errorMessage(err) });
      this.scheduleReconnect();
      return;
    }
    this.client = client;
    client.on('connect', () => {
      if (o.coalesceWrites) coalesceWrites(client.stream);
      this.onConnected(client);
    });
    client.on('error', (err) => this.onError(client, err));
    client.on('close', () => this.onClose(client));
    client.on('message', (topic, payload, packet) => {
      this.dispatch({
        topic,
        payload,
        retain: packet.retain,
        contentType: packet.properties?.contentType,
      });
    });
  }

  private onConnected(client: MqttClient): void {
    if (client !== this.client) return;
    this.isConnected = true;
    this.connectedAt = this.options.clock.now();
    this.pendingTrouble = undefined;
    const fields = {
      broker: redactUrl(this.options.url),
      clientId: this.options.clientId,
      protocol: this.protocolVersion === 5 ? '5' : '3.1.1',
      session: this.session,
    };
    if (this.everConnected || this.lastTrouble)
      this.options.log.info(fields, 'reconnected to the MQTT broker');
    else this.options.log.info(fields, 'connected to the MQTT broker');
    this.everConnected = true;
    this.lastTrouble = undefined;
    for (const hook of this.connectHooks) {
      try {
        hook(this.session);
      } catch (err) {
        this.options.log.error({ err: errorMessage(err) }, 'MQTT connect hook failed');
      }
    }
    if (this.subscriptions.size > 0) this.subscribeOnBroker([...this.subscriptions.keys()]);
    this.notify(true);
  }

  private subscribeOnBroker(filters: string[]): void {
    const client = this.client;
    if (!client) return;
    this.pendingSubacks++;
    client.subscribe(filters, { qos: 1 }, (err, granted) => {
      if (client === this.client) this.pendingSubacks--;
      if (err) {
        this.options.log.warn({ filters, err: errorMessage(err) }, 'MQTT subscribe failed');
        return;
      }
      for (const g of granted ?? []) {
        // 0x80 and above: refused (e.g. the ACL does not allow reading this topic).
        if (g.qos >= 0x80)
          this.options.log.warn(
            { filter: g.topic, reasonCode: g.qos },
            'the broker refused a subscription (check its ACL)',
          );
      }
    });
  }

  private onError(client: MqttClient, err: Error): void {
    if (client !== this.client) return;
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number' && AUTH_REFUSED.has(code)) {
      this.pendingTrouble = { kind: 'auth', message: err.message };
    } else if (
      typeof code === 'number' &&
      PROTOCOL_REFUSED.has(code) &&
      this.options.protocol === 'auto' &&
      this.protocolVersion === 5
    ) {
      this.protocolVersion = 4;
      this.options.log.info(
        { broker: redactUrl(this.options.url) },
        'the broker does not speak MQTT 5; using 3.1.1 (no content-type property: receivers tell deflate from JSON by the first byte)',
      );
      this.pendingTrouble = { kind: 'other', message: 'protocol fallback' };
      this.failures = -1;
    } else {
      this.pendingTrouble = { kind: 'other', message: err.message };
    }
  }

  private onClose(client: MqttClient): void {
    if (client !== this.client) return;
    this.client = undefined;
    this.pendingSubacks = 0;
    const wasConnected = this.isConnected;
    this.isConnected = false;
    for (const entry of [...this.inFlight]) entry.reject(new ConnectionLostError());
    client.removeAllListeners('message');
    client.on('error', () => undefined);
    client.end(true);
    if (wasConnected && this.options.clock.now() - this.connectedAt >= STABLE_MS) this.failures = 0;
    const trouble = this.pendingTrouble ?? {
      kind: 'other' as const,
      message: wasConnected ? 'connection lost' : 'connection closed',
    };
    this.pendingTrouble = undefined;
    if (wasConnected) this.notify(false);
    if (this.stopped) return;
    this.trouble(trouble, wasConnected);
    this.scheduleReconnect(trouble.kind === 'auth');
  }

  private trouble(t: Trouble, wasConnected = false): void {
    const key = `${t.kind}:${t.message}`;
    if (t.message === 'protocol fallback') return;
    const fields = { broker: redactUrl(this.options.url), clientId: this.options.clientId };
    if (t.kind === 'auth') {
      this.options.log.error(
        { ...fields, err: t.message },
        `the MQTT broker refused this client (${t.message}); check mqtt.username/password or the client certificate and the broker ACL. Retrying in about ${Math.round(this.options.authRetryMs / 60_000)} min`,
      );
    } else if (this.lastTrouble !== key || wasConnected) {
      // Once per change of reason, not once per attempt.
      const spools = this.options.spools ?? true;
      this.options.log.warn(
        { ...fields, err: t.message },
        wasConnected
          ? spools
            ? 'lost the MQTT connection; spooling until it is back'
            : 'lost the MQTT connection; reconnecting with backoff'
          : spools
            ? 'cannot connect to the MQTT broker; spooling and retrying with backoff'
            : 'cannot connect to the MQTT broker; retrying with backoff',
      );
    }
    this.lastTrouble = key;
  }

  private scheduleReconnect(authRefused = false): void {
    if (this.stopped) return;
    const random = this.options.random ?? Math.random;
    let delay: number;
    if (authRefused) {
      delay = Math.round(this.options.authRetryMs * (0.5 + random()));
    } else if (this.failures < 0) {
      delay = 0;
      this.failures = 0;
    } else {
      delay = Math.max(
        0,
        backoffDelay(
          this.failures,
          this.options.reconnectMinMs,
          this.options.reconnectMaxMs,
          random,
        ),
      );
      this.failures++;
    }
    this.timer = this.options.clock.setTimeout(() => {
      this.reconnects++;
      this.attempt();
    }, delay);
    this.timer.unref?.();
  }

  private dispatch(message: IncomingMessage): void {
    const topic = message.topic.split('/');
    for (const { levels, handlers } of this.subscriptions.values()) {
      if (!levelsMatch(levels, topic)) continue;
      for (const handler of handlers) {
        try {
          const result = handler(message);
          if (result instanceof Promise)
            result.catch((err: unknown) =>
              this.options.log.error(
                { topic: message.topic, err: errorMessage(err) },
                'MQTT message handler failed',
              ),
            );
        } catch (err) {
          this.options.log.error(
            { topic: message.topic, err: errorMessage(err) },
            'MQTT message handler failed',
          );
        }
      }
    }
  }

  private notify(connected: boolean): void {
    for (const listener of this.stateListeners) {
      try {
        listener(connected);
      } catch (err) {
        this.options.log.error({ err: errorMessage(err) }, 'MQTT state listener failed');
      }
    }
  }
}
