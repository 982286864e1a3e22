import { z } from 'zod';
import {
  zCollectorMode,
  zDuration,
  zInt,
  zInterval,
  zTimeout,
  setting,
  zPath,
} from '../../agent/config-schema.js';

/** Settings of the docker collector (config key `collectors.docker`). */
export const dockerConfigSchema = z
  .object({
    /**
     * Engine socket: a path, `unix://PATH` or `tcp://HOST:PORT`. Unset: DOCKER_HOST, else
     * /var/run/docker.sock. Podman's Docker-compatible socket works too.
     */
    socket: setting(zPath().optional(), {
      env: 'GPULSE_DOCKER_SOCKET',
      flag: 'docker-socket',
      description: 'Docker (or Podman) socket (default: DOCKER_HOST, else /var/run/docker.sock)',
    }),
    /** auto: run, report no_data without a Docker socket; required: a missing socket is an error; off. */
    mode: setting(zCollectorMode.default('auto'), {
      env: 'GPULSE_DOCKER_MODE',
      flag: 'docker-mode',
      description: 'run the docker collector (auto: no socket is not an error)',
    }),
    /** How often containers and their resource usage are read. */
    interval: setting(zInterval(1000).default(10_000), {
      env: 'GPULSE_DOCKER_INTERVAL',
      description: 'container stats interval (default 10s)',
    }),
    /** Limit of one Engine API request. */
    timeout: setting(zTimeout().default(5000), {
      env: 'GPULSE_DOCKER_TIMEOUT',
      description: 'limit of one Engine API request (default 5s)',
    }),
    /**
     * Where per-container CPU/memory/network/block I/O/PIDs come from. cgroup: the container's
     * cgroup files (v1 or v2) and /proc/<pid>/net/dev, no daemon work; api: one-shot stats calls;
     * auto: cgroup files where readable, the API otherwise.
     */
    stats: setting(z.enum(['auto', 'cgroup', 'api']).default('auto'), {
      env: 'GPULSE_DOCKER_STATS',
      description: 'per-container stats source (default auto: cgroup files, else one-shot API)',
    }),
    /** Logs followed for GPU out-of-memory messages: containers with GPUs, all, or none. */
    logs: setting(z.enum(['gpu', 'all', 'off']).default('gpu'), {
      env: 'GPULSE_DOCKER_LOGS',
      description: 'container logs followed for GPU out-of-memory messages (default gpu)',
    }),
    /** Series of a removed container (its OOM counters) stay this long so a scrape sees the last value. */
    retention: setting(zDuration().default(300_000), {
      env: 'GPULSE_DOCKER_RETENTION',
      description: "how long a removed container's counters stay (default 5m)",
    }),
    /** Inspect requests in flight at once (one-shot stats go all at once: dockerd batches them). */
    concurrency: setting(zInt({ min: 1, max: 64 }).default(8), {
      env: 'GPULSE_DOCKER_CONCURRENCY',
      description: 'inspect requests in flight at once (default 8)',
    }),
    /**
     * GPU requests reported per container (`gpulse_container_gpu_request_info` series); further
     * ones are dropped and counted (gpulse_docker_gpu_requests_dropped).
     */
    maxGpuRequests: setting(zInt({ min: 1, max: 10_000 }).default(64), {
      env: 'GPULSE_DOCKER_MAX_GPU_REQUESTS',
      description:
        'GPU requests reported per container; further ones are dropped and counted (default 64)',
    }),
  })
  .strict();

/** Parsed docker collector settings. */
export type DockerConfig = z.infer<typeof dockerConfigSchema>;
