import type { NewEvent } from '../../agent/core/events.js';
import type { MessageHandler, PublishOptions } from './delivery.js';

/**
 * What other components (model updater, drift ingest) use of the node's MQTT connection.
 * Topic suffixes are relative to the node: `cmd/model-update` means
 * `gpulse/v1/<site>/<node>/cmd/model-update`. Usable before the agent starts: subscriptions
 * registered early are made once connected, and renewed after every reconnect.
 */
export interface MqttLink {
  /** This node's site and node id. */
  readonly site: string;
  readonly node: string;
  /** True while the broker connection is up. */
  readonly connected: boolean;
  /** Subscribes to a topic under the node (wildcards allowed); returns the unsubscribe function. */
  subscribe(topicSuffix: string, handler: MessageHandler): () => void;
  /**
   * Emits an event into the agent's event log; like every event it is then published on the
   * `events` stream with a seq, spooled while offline (the durable path).
   */
  publishEvent(event: NewEvent): void;
  /**
   * Publishes once, now, under the node (command replies, progress): not spooled, not numbered.
   * Rejects with NotConnectedError while offline and PublishRefusedError when the ACL refuses.
   */
  publish(
    topicSuffix: string,
    payload: Buffer | string,
    options?: Partial<PublishOptions>,
  ): Promise<void>;
  /** Calls `listener` on every connect (true) and disconnect (false). */
  onConnection(listener: (connected: boolean) => void): () => void;
}
