import { z } from 'zod';
import { zCollectorMode, zDuration, zInt, zInterval, zTimeout } from '../../agent/config-schema.js';

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
    interval: zInterval(1000).default(10_000),
    /** Limit of one Engine API request. */
    timeout: zTimeout().default(5000),
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
    /**
     * GPU requests reported per container (`gpulse_container_gpu_request_info` series); further
     * ones are dropped and counted (gpulse_docker_gpu_requests_dropped).
     */
    maxGpuRequests: zInt({ min: 1, max: 10_000 }).default(64),
  })
  .strict();

/** Parsed docker collector settings. */
export type DockerConfig = z.infer<typeof dockerConfigSchema>;
