/** Environment variables and flags of these settings: plain data the CLI reads without loading zod. */
import type { SettingBinding } from '../../agent/config-schema.js';

/** Environment variables and flags of the docker collector. */
export const dockerSettings: readonly SettingBinding[] = [
  {
    path: ['collectors', 'docker', 'socket'],
    env: 'GPULSE_DOCKER_SOCKET',
    flag: 'docker-socket',
    valueName: 'PATH',
    description: 'Docker (or Podman) socket (default: DOCKER_HOST, else /var/run/docker.sock)',
  },
  {
    path: ['collectors', 'docker', 'mode'],
    env: 'GPULSE_DOCKER_MODE',
    flag: 'docker-mode',
    valueName: 'auto|required|off',
    description: 'run the docker collector (auto: no socket is not an error)',
  },
  {
    path: ['collectors', 'docker', 'interval'],
    env: 'GPULSE_DOCKER_INTERVAL',
    valueName: 'DURATION',
    description: 'container stats interval (default 10s)',
  },
  {
    path: ['collectors', 'docker', 'timeout'],
    env: 'GPULSE_DOCKER_TIMEOUT',
    valueName: 'DURATION',
    description: 'limit of one Engine API request (default 5s)',
  },
  {
    path: ['collectors', 'docker', 'stats'],
    env: 'GPULSE_DOCKER_STATS',
    valueName: 'auto|cgroup|api',
    description: 'per-container stats source (default auto: cgroup files, else one-shot API)',
  },
  {
    path: ['collectors', 'docker', 'logs'],
    env: 'GPULSE_DOCKER_LOGS',
    valueName: 'gpu|all|off',
    description: 'container logs followed for GPU out-of-memory messages (default gpu)',
  },
  {
    path: ['collectors', 'docker', 'retention'],
    env: 'GPULSE_DOCKER_RETENTION',
    valueName: 'DURATION',
    description: "how long a removed container's counters stay (default 5m)",
  },
  {
    path: ['collectors', 'docker', 'concurrency'],
    env: 'GPULSE_DOCKER_CONCURRENCY',
    valueName: 'N',
    description: 'inspect requests in flight at once (default 8)',
  },
  {
    path: ['collectors', 'docker', 'maxGpuRequests'],
    env: 'GPULSE_DOCKER_MAX_GPU_REQUESTS',
    valueName: 'N',
    description:
      'GPU requests reported per container; further ones are dropped and counted (default 64)',
  },
];
