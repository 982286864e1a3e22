import type { Logger } from 'pino';
import type { Clock } from '../../agent/core/clock.js';
import { errorMessage } from '../../agent/core/errors.js';
import { CONTENT_TYPE_JSON, statusJson } from '../../exporters/mqtt/payloads.js';
import { NotConnectedError, type PublishOptions } from './delivery.js';
import type { WillMessage } from './publisher.js';

/** The part of the broker connection the status needs. */
export interface StatusConnection {
  readonly connected: boolean;
  publish(topic: string, payload: Buffer | string, options: PublishOptions): Promise<void>;
}

/** Options of `MqttStatus`. */
export interface MqttStatusOptions {
  /** `<node>/status`. */
  readonly topic: string;
  readonly clock: Clock;
  /** Agent version announced in the online status. */
  readonly version: string;
  readonly telemetryIntervalMs: number;
  readonly telemetryFlushMs: number;
  /** The connection now (absent while the publisher is not open). */
  readonly connection: () => StatusConnection | undefined;
  /** Called when the broker acknowledged an online status. */
  readonly onSent: () => void;
  /** Called after every online publish settles, acknowledged or not. */
  readonly onSettled: () => void;
  readonly log: Logger;
}

/**
 * The node's retained status: `online` at every connect and every mqtt.statusInterval, the
 * last will (`offline`, reason `will`) the broker publishes when the link dies, and the
 * farewell (`offline`, reason `shutdown`) on a clean stop. Each carries the connection session.
 */
export class MqttStatus {
  /** Session number of the current connection (0 before the first connect). */
  session = 0;

  constructor(private readonly options: MqttStatusOptions) {}

  /** The status payload now. */
  json(state: 'online' | 'offline', session: number, reason?: 'will' | 'shutdown'): string {
    const o = this.options;
    return statusJson({
      state,
      ts: o.clock.now(),
      session,
      ...(state === 'online'
        ? {
            version: o.version,
            telemetry_interval_seconds: o.telemetryIntervalMs / 1000,
            telemetry_flush_seconds: o.telemetryFlushMs / 1000,
          }
        : { reason }),
    });
  }

  /** The last will registered with the connect of session `n`. */
  readonly will = (n: number): WillMessage => this.offline(n, 'will');

  /** The farewell published before a clean disconnect. */
  farewell(): WillMessage {
    return this.offline(this.session, 'shutdown');
  }

  /** Publishes `online` (retained) when connected; a failure waits for the next connect or interval. */
  readonly publishOnline = (): void => {
    const o = this.options;
    const conn = o.connection();
    if (!conn?.connected) return;
    conn
      .publish(o.topic, this.json('online', this.session), {
        qos: 1,
        retain: true,
        contentType: CONTENT_TYPE_JSON,
      })
      .then(o.onSent, (err: unknown) => {
        if (!(err instanceof NotConnectedError))
          o.log.debug({ err: errorMessage(err) }, 'status not published');
      })
      .finally(o.onSettled);
  };

  private offline(session: number, reason: 'will' | 'shutdown'): WillMessage {
    return {
      topic: this.options.topic,
      payload: Buffer.from(this.json('offline', session, reason)),
      qos: 1,
      retain: true,
    };
  }
}
