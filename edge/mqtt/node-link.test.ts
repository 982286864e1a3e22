import { describe, expect, it } from 'vitest';
import type { NewEvent } from '../../agent/core/events.js';
import { topicMatches } from '../../exporters/mqtt/topics.js';
import { captureLogger } from '../../test/helpers/log-sink.js';
import {
  NotConnectedError,
  type IncomingMessage,
  type MessageHandler,
  type PublishOptions,
} from './delivery.js';
import { NodeLink, type LinkConnection } from './node-link.js';

/** A connection that routes published-to-us messages to its subscribers, as the broker would. */
class LoopConnection implements LinkConnection {
  connected = false;
  readonly subscriptions: { filter: string; handler: MessageHandler; active: boolean }[] = [];
  readonly published: { topic: string; payload: string; options: PublishOptions }[] = [];

  subscribe(filter: string, handler: MessageHandler): () => void {
    const entry = { filter, handler, active: true };
    this.subscriptions.push(entry);
    return () => (entry.active = false);
  }

  publish(topic: string, payload: Buffer | string, options: PublishOptions): Promise<void> {
    this.published.push({ topic, payload: payload.toString(), options });
    return Promise.resolve();
  }

  /** Delivers a message to every active subscription that matches. */
  deliver(topic: string): void {
    const message: IncomingMessage = { topic, payload: Buffer.from('{}'), retain: false };
    for (const s of this.subscriptions)
      if (s.active && topicMatches(s.filter, topic)) void s.handler(message);
  }
}

const ID = { site: 'lab', node: 'n1' };

/** Binds the link to a new connection and makes its subscriptions there; the filters it asked for. */
function bindFilters(link: NodeLink): { conn: LoopConnection; filters: string[] } {
  const conn = new LoopConnection();
  link.use(conn);
  link.subscribeAll(captureLogger().log);
  return { conn, filters: conn.subscriptions.map((s) => s.filter) };
}

describe('NodeLink', () => {
  it('makes subscriptions registered before the connection once bound, under the node prefix', () => {
    const link = new NodeLink(ID);
    const got: string[] = [];
    const off = link.subscribe('cmd/model-update', (m) => void got.push(m.topic));
    link.subscribe('/cmd/drift/#', (m) => void got.push(`drift ${m.topic}`));
    const { conn, filters } = bindFilters(link);
    expect(filters).toEqual([
      'gpulse/v1/lab/n1/cmd/#',
      'gpulse/v1/lab/n1/cmd/model-update',
      'gpulse/v1/lab/n1/cmd/drift/#',
    ]);
    conn.deliver('gpulse/v1/lab/n1/cmd/model-update');
    conn.deliver('gpulse/v1/lab/n1/cmd/drift/ref/upload');
    expect(got).toEqual([
      'gpulse/v1/lab/n1/cmd/model-update',
      'drift gpulse/v1/lab/n1/cmd/drift/ref/upload',
    ]);
    // Unsubscribed: off on the connection, and not renewed on the next connection.
    off();
    conn.deliver('gpulse/v1/lab/n1/cmd/model-update');
    expect(got).toHaveLength(2);
    expect(bindFilters(link).filters).toEqual([
      'gpulse/v1/lab/n1/cmd/#',
      'gpulse/v1/lab/n1/cmd/drift/#',
    ]);
  });

  it('subscribes at once while bound, and warns once per command topic no component claims', () => {
    const link = new NodeLink(ID);
    const conn = new LoopConnection();
    const { log, records } = captureLogger();
    link.use(conn);
    link.subscribeAll(log);
    link.subscribe('cmd/model-update', () => undefined);
    expect(conn.subscriptions.at(-1)?.filter).toBe('gpulse/v1/lab/n1/cmd/model-update');
    conn.deliver('gpulse/v1/lab/n1/cmd/model-update');
    conn.deliver('gpulse/v1/lab/n1/cmd/reboot');
    conn.deliver('gpulse/v1/lab/n1/cmd/reboot');
    conn.deliver('gpulse/v1/lab/n1/cmd/format');
    const warnings = records.filter(
      (r) => r.msg === 'command for which no component listens; ignored',
    );
    expect(warnings.map((r) => r.topic)).toEqual([
      'gpulse/v1/lab/n1/cmd/reboot',
      'gpulse/v1/lab/n1/cmd/format',
    ]);
  });

  it('publishes under the node with QoS 1, not retained, by default; rejects while not open', async () => {
    const link = new NodeLink(ID);
    await expect(link.publish('response/x', 'a')).rejects.toBeInstanceOf(NotConnectedError);
    expect(link.connected).toBe(false);
    const conn = new LoopConnection();
    link.use(conn);
    conn.connected = true;
    expect(link.connected).toBe(true);
    await link.publish('response/model-update', '{"ok":true}');
    await link.publish('progress', 'p', { qos: 0, retain: true, contentType: 'text/plain' });
    expect(conn.published).toEqual([
      {
        topic: 'gpulse/v1/lab/n1/response/model-update',
        payload: '{"ok":true}',
        options: { qos: 1, retain: false, contentType: undefined },
      },
      {
        topic: 'gpulse/v1/lab/n1/progress',
        payload: 'p',
        options: { qos: 0, retain: true, contentType: 'text/plain' },
      },
    ]);
    link.use(undefined);
    expect(link.connected).toBe(false);
    await expect(link.publish('progress', 'p')).rejects.toBeInstanceOf(NotConnectedError);
  });

  it('keeps events published before the agent starts and emits them first, in order', () => {
    const link = new NodeLink(ID);
    const event = (message: string): NewEvent => ({
      type: 'model.update',
      severity: 'info',
      source: 'models',
      message,
      labels: {},
    });
    link.publishEvent(event('early 1'));
    link.publishEvent(event('early 2'));
    const emitted: string[] = [];
    link.bindEvents((e) => emitted.push(e.message));
    link.publishEvent(event('late'));
    expect(emitted).toEqual(['early 1', 'early 2', 'late']);
  });

  it('tells every connection listener, past one that throws, until it unsubscribes', () => {
    const link = new NodeLink(ID);
    const { log, records } = captureLogger();
    const heard: boolean[] = [];
    link.onConnection(() => {
      throw new Error('listener bug');
    });
    const off = link.onConnection((c) => heard.push(c));
    link.notify(true, log);
    link.notify(false, log);
    off();
    link.notify(true, log);
    expect(heard).toEqual([true, false]);
    expect(records.filter((r) => r.msg === 'MQTT connection listener failed')).toHaveLength(3);
  });
});
