import type { Component } from '../agent/core/component.js';
import type { Logger } from 'pino';
import type { AgentConfig } from '../agent/config.js';
import { errorMessage } from '../agent/core/errors.js';
import { CONTENT_TYPE_JSON } from '../exporters/mqtt/payloads.js';
import type { MqttLink } from './mqtt/link.js';
import { noModelsResponse, type ModelUpdateHandler } from './models/command.js';
import { createMqttComponent } from './mqtt/component.js';

/** Topic suffix of the model-update command and of its response (under the node's prefix). */
export const MODEL_UPDATE_COMMAND = 'cmd/model-update';
export const MODEL_UPDATE_RESPONSE = 'response/model-update';
/** Topic filter (under the node's prefix) of the observations the drift monitor ingests. */
export const MODEL_OBSERVATIONS = 'models/+/observations';

/** What other parts of the agent plug into the edge components (kept free of their imports). */
export interface EdgeHooks {
  /**
   * Receives every message on `models/+/observations` (the drift monitor's ingest); the node
   * subscribes only when this is set. It must not throw; a throw is logged, never fatal.
   */
  readonly observations?: (topic: string, payload: Buffer) => void;
  /**
   * Answers `cmd/model-update` (the model updater the composition root created); without it
   * every command gets the "no models are configured" error response.
   */
  readonly modelUpdate?: ModelUpdateHandler;
}

/**
 * Answers `cmd/model-update` with the model updater's response on `response/model-update`
 * (QoS 1). A payload that is not JSON still gets an error response (the updater validates it).
 */
export function wireModelUpdateCommand(
  link: MqttLink,
  log: Logger,
  handle: ModelUpdateHandler = (payload) => Promise.resolve(noModelsResponse(payload)),
): () => void {
  return link.subscribe(MODEL_UPDATE_COMMAND, async (message) => {
    let payload: unknown;
    try {
      payload = JSON.parse(message.payload.toString('utf8'));
    } catch {
      payload = { invalid: 'payload is not JSON' };
    }
    const response = await handle(payload);
    await link
      .publish(MODEL_UPDATE_RESPONSE, JSON.stringify(response), {
        qos: 1,
        contentType: CONTENT_TYPE_JSON,
      })
      .catch((err: unknown) =>
        log.warn(
          {
            err: errorMessage(err),
            transaction: (response as { transaction?: unknown }).transaction,
          },
          'model-update response not published (the model.update_* events carry the outcome)',
        ),
      );
  });
}

/**
 * Hands each message on `models/+/observations` under the node to `handler` (QoS 1 subscription,
 * renewed after reconnects by the link). A handler that throws is logged and the next message
 * is handled as usual.
 */
export function wireObservations(
  link: MqttLink,
  handler: (topic: string, payload: Buffer) => void,
  log: Logger,
): () => void {
  return link.subscribe(MODEL_OBSERVATIONS, (message) => {
    try {
      handler(message.topic, message.payload);
    } catch (err) {
      log.error({ topic: message.topic, err: errorMessage(err) }, 'observations message failed');
    }
  });
}

/**
 * The edge components the configuration asks for (the MQTT publisher when `mqtt.url` is set),
 * with the command wiring and, when `hooks.observations` is given, the observations subscription.
 */
export function createEdgeComponents(config: AgentConfig, hooks: EdgeHooks = {}): Component[] {
  if (!config.mqtt.url) return [];
  const mqtt = createMqttComponent(config.mqtt);
  const offs: (() => void)[] = [];
  const commands: Component = {
    name: 'mqtt-commands',
    start(ctx) {
      const log = ctx.log.child({ component: 'mqtt-commands' });
      offs.push(wireModelUpdateCommand(mqtt.link, log, hooks.modelUpdate));
      if (hooks.observations) offs.push(wireObservations(mqtt.link, hooks.observations, log));
      return Promise.resolve();
    },
    stop() {
      for (const off of offs.splice(0)) off();
      return Promise.resolve();
    },
  };
  return [mqtt, commands];
}
