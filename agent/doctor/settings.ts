import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { AgentConfig } from '../config.js';

// Sections owned by branches not yet merged (docker, mqtt, tegrastats) are read defensively from
// the validated object: once they land these readers keep working, typed by their own schemas.

type Raw = Readonly<Record<string, unknown>>;

function isRecord(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function section(config: AgentConfig, ...path: string[]): Raw | undefined {
  let node: unknown = config;
  for (const key of path) node = isRecord(node) ? node[key] : undefined;
  return isRecord(node) ? node : undefined;
}

function str(node: Raw | undefined, key: string): string | undefined {
  const v = node?.[key];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/** Mode of a collector section (`auto` when the section or its mode is absent). */
export function collectorMode(config: AgentConfig, name: string): string {
  return str(section(config, 'collectors', name), 'mode') ?? 'auto';
}

/** Where the Docker Engine is reached, as the docker collector resolves it. */
export interface DockerEndpoint {
  /** unix socket path, or undefined for tcp. */
  readonly socketPath?: string;
  readonly host?: string;
  readonly port?: number;
  /** As shown to the user: the socket path or tcp://host:port. */
  readonly label: string;
  /** Which setting chose it. */
  readonly from: string;
}

/** Resolves collectors.docker.socket, then DOCKER_HOST, then /var/run/docker.sock. */
export function dockerEndpoint(config: AgentConfig, env: NodeJS.ProcessEnv): DockerEndpoint {
  const configured = str(section(config, 'collectors', 'docker'), 'socket');
  const fromEnv = env.DOCKER_HOST && env.DOCKER_HOST.length > 0 ? env.DOCKER_HOST : undefined;
  const text = configured ?? fromEnv ?? '/var/run/docker.sock';
  const from = configured
    ? 'collectors.docker.socket'
    : fromEnv
      ? 'DOCKER_HOST'
      : 'the default socket';
  if (text.startsWith('tcp://') || text.startsWith('http://')) {
    const url = new URL(text.replace(/^tcp:/, 'http:'));
    return { host: url.hostname, port: Number(url.port || 2375), label: text, from };
  }
  const path = text.startsWith('unix://') ? text.slice('unix://'.length) : text;
  return { socketPath: path, label: path, from };
}

/** The MQTT settings the doctor needs; undefined when MQTT is not configured. */
export interface MqttSettings {
  readonly url: string;
  readonly protocol: string;
  readonly username?: string;
  readonly password?: string;
  readonly passwordFile?: string;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly clientId?: string;
  /** Spool directory, when the config names one. */
  readonly spoolDir?: string;
}

/** The `mqtt:` section, when it sets a broker URL. */
export function mqttSettings(config: AgentConfig): MqttSettings | undefined {
  const m = section(config, 'mqtt');
  const url = str(m, 'url');
  if (!url) return undefined;
  const tls = section(config, 'mqtt', 'tls');
  return {
    url,
    protocol: str(m, 'protocol') ?? 'auto',
    username: str(m, 'username'),
    password: str(m, 'password'),
    passwordFile: str(m, 'passwordFile'),
    ca: str(tls, 'ca'),
    cert: str(tls, 'cert'),
    key: str(tls, 'key'),
    clientId: str(m, 'clientId'),
    spoolDir: str(section(config, 'mqtt', 'spool'), 'dir'),
  };
}

/** Absolute path of an executable: a path as given, or the first match on PATH. */
export function which(bin: string, env: NodeJS.ProcessEnv): string | undefined {
  const candidates = bin.includes('/')
    ? [bin]
    : (env.PATH ?? '')
        .split(delimiter)
        .filter((d) => d.length > 0)
        .map((dir) => join(dir, bin));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** True on a Jetson-style host where tegrastats stands in for nvidia-smi. */
export function tegrastatsPresent(config: AgentConfig, env: NodeJS.ProcessEnv): boolean {
  const t = section(config, 'collectors', 'tegrastats');
  if (str(t, 'mode') === 'off') return false;
  return which(str(t, 'binary') ?? 'tegrastats', env) !== undefined;
}

/** Whether this process looks like it runs in a container (Docker, Podman, Kubernetes). */
export function inContainer(env: NodeJS.ProcessEnv, exists: (p: string) => boolean): boolean {
  return (
    exists('/.dockerenv') ||
    exists('/run/.containerenv') ||
    (env.KUBERNETES_SERVICE_HOST ?? '') !== ''
  );
}

/** Redacts user:password@ from a URL for display. */
export function redactUrl(text: string): string {
  try {
    const u = new URL(text);
    if (!u.username && !u.password) return text;
    u.username = u.username ? '***' : '';
    u.password = u.password ? '***' : '';
    return u.toString();
  } catch {
    return text.replace(/\/\/[^@/]*@/, '//***@');
  }
}
