/**
 * What publishing and receiving over MQTT looks like to the rest of gpulse: messages, options,
 * errors. Kept apart from publisher.ts so that importing these does not load the mqtt package
 * (an agent without `mqtt.url` never loads it).
 */
import type { Clock } from '../../agent/core/clock.js';

/** A message received on a subscribed topic. */
export interface IncomingMessage {
  readonly topic: string;
  readonly payload: Buffer;
  /** MQTT 5 content type, when the sender set one. */
  readonly contentType?: string;
  /** True for a retained message delivered on subscribe. */
  readonly retain: boolean;
}

/** Handles one received message; errors are logged, never fatal. */
export type MessageHandler = (message: IncomingMessage) => void | Promise<void>;

/** How one message is published. */
export interface PublishOptions {
  readonly qos: 0 | 1;
  readonly retain?: boolean;
  /** MQTT 5 content type (dropped on 3.1.1, which has no properties). */
  readonly contentType?: string;
}

/** Thrown by publish() while there is no connection. */
export class NotConnectedError extends Error {
  readonly code = 'GPULSE_MQTT_NOT_CONNECTED';
  constructor() {
    super('not connected to the MQTT broker');
    this.name = 'NotConnectedError';
  }
}

/** The connection dropped before the broker acknowledged the message. */
export class ConnectionLostError extends Error {
  readonly code = 'GPULSE_MQTT_CONNECTION_LOST';
  constructor() {
    super('connection lost before the broker acknowledged the message');
    this.name = 'ConnectionLostError';
  }
}

/** The broker answered the PUBLISH with an error reason code (MQTT 5), e.g. 0x87 not authorized. */
export class PublishRefusedError extends Error {
  readonly code = 'GPULSE_MQTT_PUBLISH_REFUSED';
  constructor(
    readonly reasonCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'PublishRefusedError';
  }
}

/** Resolves or rejects with `promise`, or rejects after `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, clock: Clock): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimeout(() => reject(new Error(`timed out after ${ms}ms`)), ms);
    timer.unref?.();
    promise.then(
      (v) => {
        clock.clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clock.clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
