import { createContainerEventsComponent } from '../collectors/docker/container-events.js';
import type { Component } from './component.js';
import type { AgentConfig } from './config.js';
import { createEventsApi } from './events-api.js';

/** The components `gpulse run` and `gpulse simulate` start with the agent. */
export function defaultComponents(config: AgentConfig): Component[] {
  const out: Component[] = [createEventsApi()];
  if (config.collectors.docker.mode !== 'off') out.push(createContainerEventsComponent());
  return out;
}
