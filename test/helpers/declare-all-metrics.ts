// Imported for the metric declarations every part makes at module load, including the parts the
// agent imports only when configured (collectors, drift, the edge publisher, models, the gateway):
// the README reference and the dashboard coverage check see every family. Collectors come from
// the registry, so a new one is covered by its registry line.
import '../../agent/build-agent.js';
import '../../agent/run-agent.js';
import { collectorRegistry } from '../../collectors/index.js';
import '../../agent/components/drift/drift.js';
import '../../agent/components/gpu-allocation/metrics.js';
import '../../edge/components.js';
import '../../edge/gateway/fleet-state.js';
import '../../edge/models/component.js';
import '../../edge/mqtt/metrics.js';

await Promise.all(collectorRegistry.map((d) => d.loadMetrics()));
