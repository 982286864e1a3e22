import { CONTAINER_LABEL_NAMES } from '../../agent/attribution/gpu-processes.js';
import { counter, gauge } from '../../agent/core/metric.js';

/** Labels of every per-container series (pod and namespace empty outside Kubernetes). */
export const CONTAINER_LABELS = CONTAINER_LABEL_NAMES;

const C = CONTAINER_LABELS;

/** Per-container metric families of the docker collector. */
export const containerMetrics = {
  info: gauge('gpulse_container_info', 'Container identity and grouping labels; always 1.', [
    ...C,
    'docker_name',
    'compose_project',
    'compose_service',
  ]),
  running: gauge('gpulse_container_running', 'Whether the container runs (1) or not (0).', C),
  startTime: gauge(
    'gpulse_container_start_time_seconds',
    'Unix time the current (or last) run started.',
    C,
  ),
  exitCode: gauge(
    'gpulse_container_exit_code',
    'Exit code of the last run (stopped containers).',
    C,
  ),
  restarts: counter(
    'gpulse_container_restarts_total',
    'Restarts by the restart policy, as the engine counts them.',
    C,
  ),
  cpuSeconds: counter(
    'gpulse_container_cpu_usage_seconds_total',
    'CPU time used by the container in this run.',
    C,
  ),
  cpuCores: gauge(
    'gpulse_container_cpu_cores_used',
    'CPU cores used, averaged between the last two samples.',
    C,
  ),
  cpuLimit: gauge('gpulse_container_cpu_limit_cores', 'CPU limit in cores (--cpus).', C),
  memoryUsage: gauge(
    'gpulse_container_memory_usage_bytes',
    'Memory charged to the container, page cache included.',
    C,
  ),
  memoryLimit: gauge('gpulse_container_memory_limit_bytes', 'Memory limit (absent: none).', C),
  memoryWorkingSet: gauge(
    'gpulse_container_memory_working_set_bytes',
    'Memory usage minus inactive page cache; the OOM killer acts on this reaching the limit.',
    C,
  ),
  networkReceive: counter(
    'gpulse_container_network_receive_bytes_total',
    'Bytes received on the container network interfaces (loopback excluded).',
    C,
  ),
  networkTransmit: counter(
    'gpulse_container_network_transmit_bytes_total',
    'Bytes sent on the container network interfaces (loopback excluded).',
    C,
  ),
  blockRead: counter(
    'gpulse_container_block_read_bytes_total',
    'Bytes read from block devices.',
    C,
  ),
  blockWrite: counter(
    'gpulse_container_block_write_bytes_total',
    'Bytes written to block devices.',
    C,
  ),
  pids: gauge('gpulse_container_pids', 'Processes and threads in the container.', C),
  oomKills: counter(
    'gpulse_container_oom_kills_total',
    'Processes of the container killed by the kernel OOM killer (each kill counted once).',
    C,
  ),
  gpuOoms: counter(
    'gpulse_container_gpu_oom_total',
    'GPU out-of-memory failures found in the container logs (one per episode).',
    C,
  ),
  gpuRequest: gauge(
    'gpulse_container_gpu_request_info',
    'A GPU the container asked for (index, UUID, nvidiaN, all or count:N) and where that was read; always 1.',
    [...C, 'device', 'source'],
  ),
} as const;

/** Self-metrics of the docker collector that stay visible while it fails. */
export const dockerHealthMetrics = {
  eventsConnected: gauge(
    'gpulse_docker_events_connected',
    'Whether the Engine event stream is connected (1) or reconnecting (0).',
  ),
  eventsReconnects: counter(
    'gpulse_docker_events_reconnects_total',
    'Reconnections of the Engine event stream.',
  ),
  logFollowers: gauge(
    'gpulse_docker_log_followers',
    'Container log streams followed for GPU out-of-memory messages.',
  ),
  logLines: counter(
    'gpulse_docker_log_lines_total',
    'Container log lines read and checked for GPU out-of-memory messages.',
  ),
  gpuRequestsDropped: gauge(
    'gpulse_docker_gpu_requests_dropped',
    'GPU requests of the current containers not reported as series: past collectors.docker.maxGpuRequests per container, or names no GPU has.',
  ),
} as const;
