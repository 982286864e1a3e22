import { z } from 'zod';
import { zCollectorMode, zDuration, zInt, type SettingBinding } from '../../agent/config-schema.js';

/** Settings of the docker collector (config key `collectors.docker`). */
export const dockerConfigSchema = z
  .object({
    /** auto: run, report no_data without a Docker socket; required: a missing socket is an error; off. */
    mode: zCollectorMode.default('auto'),
    /**
     * Engine socket: a path, `unix://PATH` or `tcp://HOST:PORT`. Unset: DOCKER_HOST, else
     * /var/run/docker.sock. Podman's Docker-compatible socket works too.
     */
    socket: z.string().min(1).optional(),
    /** How often containers and their resource usage are read. */
    interval: zDuration({ min: 1000 }).default(10_000),
    /** Limit of one Engine API request. */
    timeout: zDuration({ min: 100 }).default(5000),
    /**
     * Where per-container CPU/memory/network/block I/O/PIDs come from. cgroup: the container's
     * cgroup files (v1 or v2) and /proc/<pid>/net/dev, no daemon work; api: one-shot stats calls;
     * auto: cgroup files where readable, the API otherwise.
     */
    stats: z.enum(['auto', 'cgroup', 'api']).default('auto'),
    /** Logs followed for GPU out-of-memory messages: containers with GPUs, all, or none. */
    logs: z.enum(['gpu', 'all', 'off']).default('gpu'),
    /** Series of a removed container (its OOM counters) stay this long so a scrape sees the last value. */
    retention: zDuration().default(300_000),
    /** Inspect requests in flight at once (one-shot stats go all at once: dockerd batches them). */
    concurrency: zInt({ min: 1, max: 64 }).default(8),
  })
  .strict();

/** Parsed docker collector settings. */
export type DockerConfig = z.infer<typeof dockerConfigSchema>;

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
];
