/** Where the Engine API is, as dockerode takes it. */
export type Endpoint =
  | { readonly kind: 'socket'; readonly socketPath: string; readonly display: string }
  | {
      readonly kind: 'tcp';
      readonly host: string;
      readonly port: number;
      /** Same machine: PIDs and cgroup files the Engine reports are ours to read. */
      readonly local: boolean;
      readonly display: string;
    };

/** Default socket of Docker Engine (and of `podman system service` when run as root with the docker alias). */
export const DEFAULT_SOCKET = '/var/run/docker.sock';

/**
 * The endpoint from the configured socket, else DOCKER_HOST, else /var/run/docker.sock.
 * Returns an error text for forms gpulse does not speak (ssh://, npipe://).
 */
export function resolveEndpoint(
  configured: string | undefined,
  env: NodeJS.ProcessEnv,
): Endpoint | { readonly error: string } {
  const from = configured ? 'GPULSE_DOCKER_SOCKET' : env.DOCKER_HOST ? 'DOCKER_HOST' : 'default';
  const value = configured ?? (env.DOCKER_HOST || DEFAULT_SOCKET);
  if (value.startsWith('unix://')) {
    const socketPath = value.slice('unix://'.length);
    return { kind: 'socket', socketPath, display: socketPath };
  }
  if (value.startsWith('/')) return { kind: 'socket', socketPath: value, display: value };
  const tcp = /^(?:tcp|http):\/\/(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(value);
  if (tcp?.[1] && tcp[2]) {
    const host = tcp[1].replace(/^\[|\]$/g, '');
    const local = host === 'localhost' || host === '::1' || host.startsWith('127.');
    return { kind: 'tcp', host, port: Number(tcp[2]), local, display: value };
  }
  return {
    error: `unsupported Docker endpoint ${JSON.stringify(value)} (from ${from}): use a socket path, unix://PATH or tcp://HOST:PORT`,
  };
}

/** A failure to reach the Engine, classified for the collector's status and its one log line. */
export interface EngineFailure {
  /** no_data: nothing here (no socket); error: something to fix. */
  readonly status: 'no_data' | 'error';
  readonly reason: 'socket_missing' | 'permission_denied' | 'unreachable' | 'timeout' | 'api_error';
  readonly message: string;
}

/** Classifies an error from dockerode into a status, a reason and a message that says how to fix it. */
export function classifyEngineError(err: unknown, endpoint: Endpoint): EngineFailure {
  const e = err as NodeJS.ErrnoException & { statusCode?: number };
  const where = endpoint.display;
  if (endpoint.kind === 'socket' && e.code === 'ENOENT') {
    return {
      status: 'no_data',
      reason: 'socket_missing',
      message:
        `no Docker socket at ${where}: Docker is not running here or its socket is elsewhere. ` +
        `Point GPULSE_DOCKER_SOCKET (or DOCKER_HOST) at it; when gpulse runs in a container, mount it: ` +
        `-v ${where}:${where}:ro`,
    };
  }
  if (e.code === 'EACCES' || e.code === 'EPERM') {
    return {
      status: 'error',
      reason: 'permission_denied',
      message:
        `permission denied on the Docker socket ${where}: the gpulse user must be in the socket's group ` +
        `(sudo usermod -aG docker <user>, then restart gpulse; in a container: --group-add $(stat -c %g ${where})), ` +
        `or mount a socket it may open`,
    };
  }
  if (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET' || e.code === 'EPIPE') {
    return {
      status: 'error',
      reason: 'unreachable',
      message: `the Docker engine at ${where} does not answer (${e.code}): is dockerd running? (systemctl status docker)`,
    };
  }
  if (e.name === 'AbortError' || e.name === 'TimeoutError' || e.code === 'ETIMEDOUT') {
    return {
      status: 'error',
      reason: 'timeout',
      message: `the Docker engine at ${where} did not answer in time; raise collectors.docker.timeout if it is busy`,
    };
  }
  return {
    status: 'error',
    reason: 'api_error',
    message: `Docker engine at ${where}: ${e.message ?? String(err)}`,
  };
}
