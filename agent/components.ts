/**
 * The one list of the agent's components, in start order, and how they are wired to each other.
 * Optional parts are imported only when configured: each costs memory an edge box may not have
 * (the model updater brings dockerode with gRPC, protobuf and ssh2: about 15 MB resident; drift
 * brings its profile parser and zod).
 */
import type { DriftComponent } from './components/drift/drift.js';
import { createContainerEventsComponent } from './components/container-events/container-events.js';
import type { Component } from './core/component.js';
import type { AgentConfig } from './config.js';
import { createEventsApi } from './http/events-api.js';
import { createGpuHealth } from './components/gpu-health/component.js';
import { createGpuAllocation } from './components/gpu-allocation/component.js';

/**
 * How the drift monitor hears from the optional edge parts: observations arriving over MQTT
 * (`models/+/observations` under the node), and the reference profile a committed model version
 * ships in its manifest (`drift_reference`, installed with source `manifest` under the updater's
 * model name). Nothing when drift is off. Plain callbacks, so edge/ and agent/components/drift/ never
 * import each other and stay lazily loaded.
 */
export function driftHooks(drift: DriftComponent | undefined): {
  readonly observations?: (topic: string, payload: Buffer) => void;
  readonly onCommitted?: (model: string, manifest: CommittedManifest) => void;
} {
  if (!drift) return {};
  return {
    observations: (topic, payload) => drift.receiveMqttMessage(topic, payload),
    onCommitted: (model, manifest) => {
      // A version without a profile leaves the model's current reference as it is.
      if (manifest.drift_reference === undefined) return;
      drift.installManifestReference(
        model,
        `${manifest.version} (release ${manifest.release})`,
        manifest.drift_reference,
      );
    },
  };
}

/** The part of a committed model manifest the drift hook reads. */
export interface CommittedManifest {
  readonly version: string;
  readonly release: number;
  readonly drift_reference?: unknown;
}

/** The components `gpulse run` and `gpulse simulate` start with the agent. */
export async function createComponents(config: AgentConfig): Promise<Component[]> {
  const drift =
    config.drift.mode === 'off'
      ? undefined
      : new (await import('./components/drift/drift.js')).DriftComponent(config.drift);
  const hooks = driftHooks(drift);
  const updater =
    config.models.length > 0
      ? (await import('../edge/models/component.js')).createModelUpdater(config.models, {
          onCommitted: hooks.onCommitted,
        })[0]
      : undefined;
  // The MQTT command `cmd/model-update` reaches the updater created here, and nothing else.
  const edge = config.mqtt.url
    ? (await import('../edge/components.js')).createEdgeComponents(config, {
        observations: hooks.observations,
        modelUpdate: updater ? (payload) => updater.handleModelUpdateCommand(payload) : undefined,
      })
    : [];
  return [
    ...defaultComponents(config),
    createGpuHealth(config),
    ...gpuAllocation(config),
    ...(drift ? [drift] : []),
    ...edge,
    ...(updater ? [updater] : []),
  ];
}

/** The components every agent has: the events API, and container events where Docker is read. */
export function defaultComponents(config: AgentConfig): Component[] {
  const out: Component[] = [createEventsApi()];
  if (config.collectors.docker.mode !== 'off') out.push(createContainerEventsComponent());
  return out;
}

/** GPU allocations and idle allocated GPUs, where the kubelet's pod-resources are read. */
function gpuAllocation(config: AgentConfig): Component[] {
  const podResources = config.collectors['pod-resources'];
  return podResources && podResources.mode !== 'off' ? [createGpuAllocation(podResources)] : [];
}
