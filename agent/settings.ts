/** Every setting with an environment variable or a flag: plain data, read by the CLI without zod. */
import type { SettingBinding } from './config-schema.js';
import { collectorRegistry } from '../collectors/index.js';
import { metricsSettings } from '../exporters/prometheus/settings.js';
import { mqttSettings } from '../edge/settings.js';
import { gatewaySettings } from '../edge/gateway/settings.js';
import { driftSettings } from './components/drift/settings.js';
import { modelsSettings } from '../edge/models/settings.js';
import { httpSettings } from './http/settings.js';

/** Every setting with an environment variable or a flag. */
export const settings: readonly SettingBinding[] = [
  {
    path: ['preset'],
    env: 'GPULSE_PRESET',
    flag: 'preset',
    valueName: 'default|edge',
    description:
      'edge: longer intervals, fewer child processes, MQTT spool sized from free disk (explicit settings win)',
  },
  {
    path: ['listen'],
    env: 'GPULSE_LISTEN',
    flag: 'listen',
    valueName: 'HOST:PORT',
    description: 'address of /metrics (default 0.0.0.0:9489)',
  },
  ...httpSettings,
  {
    path: ['log', 'level'],
    env: 'GPULSE_LOG_LEVEL',
    flag: 'log-level',
    valueName: 'LEVEL',
    description: 'trace|debug|info|warn|error|fatal|silent (default info)',
  },
  {
    path: ['log', 'format'],
    env: 'GPULSE_LOG_FORMAT',
    flag: 'log-format',
    valueName: 'FORMAT',
    description: 'auto|json|pretty (auto: pretty on a terminal, JSON otherwise)',
  },
  {
    path: ['procRoot'],
    env: 'GPULSE_PROC_ROOT',
    flag: 'proc-root',
    valueName: 'PATH',
    description:
      "the host's /proc, for GPU process attribution (default /proc; /host/proc in a container)",
  },
  {
    path: ['cgroupRoot'],
    env: 'GPULSE_CGROUP_ROOT',
    valueName: 'PATH',
    description: "the host's cgroup mount, for container stats (default /sys/fs/cgroup)",
  },
  ...collectorRegistry.flatMap((d) => d.settings),
  ...metricsSettings,
  ...mqttSettings,
  ...gatewaySettings,
  ...driftSettings,
  ...modelsSettings,
];
