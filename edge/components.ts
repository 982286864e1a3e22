import type { Component } from '../agent/component.js';
import type { Logger } from 'pino';
import type { AgentConfig } from '../agent/config.js';
import { errorMessage } from '../agent/errors.js';
import { CONTENT_TYPE_JSON } from '../exporters/mqtt/payloads.js';
import type { MqttLink } from './mqtt-link.js';
import { createMqttComponent } from './mqtt-component.js';

/** Topic suffix of the model-update command and of its response (under the node's prefix). */
export const MODEL_UPDATE_COMMAND = 'cmd/model-update';
export const MODEL_UPDATE_RESPONSE = 'response/model-update';

/**
 * Answers `cmd/model-update` with the model updater's response on `response/model-update`
 * (QoS 1). A payload that is not JSON still gets an error response (the updater validates it).
 */
export function wireModelUpdateCommand(link: MqttLink, log: Logger): () => void {
  return link.subscribe(MODEL_UPDATE_COMMAND, async (message) => {
    let payload: unknown;
    try {
      payload = JSON.parse(message.payload.toString('utf8'));
    } catch {
      payload = { invalid: 'payload is not JSON' };
    }
    // Loaded on the first command: most nodes never receive one.
    const { handleModelUpdateCommand } = await import('./models/component.js');
    const response = await handleModelUpdateCommand(payload);
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

/** The edge components the configuration asks for (the MQTT publisher when `mqtt.url` is set). */
export function createEdgeComponents(config: AgentConfig): Component[] {
  if (!config.mqtt.url) return [];
  const mqtt = createMqttComponent(config.mqtt);
  let off: (() => void) | undefined;
  const commands: Component = {
    name: 'mqtt-commands',
    start(ctx) {
      off = wireModelUpdateCommand(mqtt.link, ctx.log.child({ component: 'mqtt-commands' }));
      return Promise.resolve();
    },
    stop() {
      off?.();
      return Promise.resolve();
    },
  };
  return [mqtt, commands];
}
