import type { Component } from '../agent/component.js';
import type { AgentConfig } from '../agent/config.js';
import { createMqttComponent } from './mqtt-component.js';

/** The edge components the configuration asks for (the MQTT publisher when `mqtt.url` is set). */
export function createEdgeComponents(config: AgentConfig): Component[] {
  return config.mqtt.url ? [createMqttComponent(config.mqtt)] : [];
}
