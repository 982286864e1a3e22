// Imported for the metric declarations every part makes at module load, including the parts the
// agent imports only when configured (collectors, drift, the edge publisher, models, the gateway):
// the README reference and the dashboard coverage check see every family.
import '../../agent/build-agent.js';
import '../../agent/run-agent.js';
import '../../collectors/dcgm/dcgm.js';
import '../../collectors/docker/docker-collector.js';
import '../../collectors/drift/drift.js';
import '../../collectors/host/host.js';
import '../../collectors/kmsg/kmsg.js';
import '../../collectors/nvidia-smi/nvidia-smi.js';
import '../../collectors/tegrastats/tegrastats.js';
import '../../edge/components.js';
import '../../edge/gateway/fleet-state.js';
import '../../edge/models/component.js';
import '../../edge/mqtt-metrics.js';
