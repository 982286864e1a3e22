import type { Logger } from 'pino';
import { errorMessage } from '../../agent/core/errors.js';
import type { NewEvent } from '../../agent/core/events.js';
import { nodeTopic, topicMatches, type NodeId } from '../../exporters/mqtt/topics.js';
import { NotConnectedError, type MessageHandler, type PublishOptions } from './delivery.js';
import type { MqttLink } from './link.js';

/** The part of the broker connection the link needs. */
export interface LinkConnection {
  readonly connected: boolean;
  subscribe(filter: string, handler: MessageHandler): () => void;
  publish(topic: string, payload: Buffer | string, options: PublishOptions): Promise<void>;
}

interface Subscription {
  readonly filter: string;
  readonly handler: MessageHandler;
  off?: () => void;
}

/**
 * The MqttLink other components hold: usable before the agent starts (subscriptions and events
 * wait), bound to each connection the publisher opens, and the owner of `cmd/#` (commands no
 * component claims are logged once per topic).
 */
export class NodeLink implements MqttLink {
  readonly site: string;
  readonly node: string;
  private readonly subscriptions: Subscription[] = [];
  private readonly listeners = new Set<(connected: boolean) => void>();
  private readonly unknownCommands = new Set<string>();
  private earlyEvents: NewEvent[] = [];
  private emit: ((event: NewEvent) => void) | undefined;
  private conn: LinkConnection | undefined;

  constructor(private readonly id: NodeId) {
    this.site = id.site;
    this.node = id.node;
  }

  get connected(): boolean {
    return this.conn?.connected ?? false;
  }

  subscribe(topicSuffix: string, handler: MessageHandler): () => void {
    const entry: Subscription = { filter: nodeTopic(this.id, topicSuffix), handler };
    this.subscriptions.push(entry);
    if (this.conn) entry.off = this.conn.subscribe(entry.filter, handler);
    return () => {
      entry.off?.();
      const i = this.subscriptions.indexOf(entry);
      if (i >= 0) this.subscriptions.splice(i, 1);
    };
  }

  publishEvent(event: NewEvent): void {
    if (this.emit) this.emit(event);
    else this.earlyEvents.push(event);
  }

  publish(
    topicSuffix: string,
    payload: Buffer | string,
    options: Partial<PublishOptions> = {},
  ): Promise<void> {
    if (!this.conn) return Promise.reject(new NotConnectedError());
    return this.conn.publish(nodeTopic(this.id, topicSuffix), payload, {
      qos: options.qos ?? 1,
      retain: options.retain ?? false,
      contentType: options.contentType,
    });
  }

  onConnection(listener: (connected: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The agent started: events go to its event log from now on, those published before first. */
  bindEvents(emit: (event: NewEvent) => void): void {
    this.emit = emit;
    for (const e of this.earlyEvents.splice(0)) emit(e);
  }

  /** Binds the connection the publisher opened (`undefined` once it closed it). */
  use(connection: LinkConnection | undefined): void {
    this.conn = connection;
  }

  /**
   * Subscribes on the bound connection (before it connects): `cmd/#`, which logs commands no
   * component claims, then every subscription registered so far.
   */
  subscribeAll(log: Logger): void {
    const connection = this.conn;
    if (!connection) return;
    // Commands arrive on cmd/#; components claim theirs through subscribe().
    connection.subscribe(nodeTopic(this.id, 'cmd/#'), (message) => {
      const claimed = this.subscriptions.some((s) => topicMatches(s.filter, message.topic));
      if (claimed || this.unknownCommands.has(message.topic)) return;
      this.unknownCommands.add(message.topic);
      log.warn({ topic: message.topic }, 'command for which no component listens; ignored');
    });
    for (const s of this.subscriptions) s.off = connection.subscribe(s.filter, s.handler);
  }

  /** Tells every onConnection listener; one that throws does not keep the others from hearing it. */
  notify(connected: boolean, log: Logger): void {
    for (const listener of this.listeners) {
      try {
        listener(connected);
      } catch (err) {
        log.error({ err: errorMessage(err) }, 'MQTT connection listener failed');
      }
    }
  }
}
