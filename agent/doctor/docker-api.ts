import type { Endpoint } from '../../collectors/docker/endpoint.js';
import { httpGet, type HttpAnswer } from './http-get.js';

// Three GETs do not justify loading dockerode (and its ssh2/protobuf dependencies) in a
// diagnostic: node:http talks to the unix socket directly and keeps each errno visible.

/** What the Docker Engine said, or why it could not be asked. */
export type DockerProbe =
  | {
      readonly ok: true;
      readonly endpoint: Endpoint;
      readonly version?: string;
      readonly apiVersion?: string;
      readonly runtimes: readonly string[];
      readonly defaultRuntime?: string;
      readonly containers?: number;
      readonly cgroupVersion?: string;
      readonly cgroupDriver?: string;
    }
  | {
      readonly ok: false;
      /** Absent when the configured endpoint could not even be parsed. */
      readonly endpoint?: Endpoint;
      /** errno code (ENOENT, EACCES, ECONNREFUSED, ETIMEDOUT) or HTTP_<status>. */
      readonly code: string;
      readonly message: string;
    };

function get(endpoint: Endpoint, path: string, timeoutMs: number): Promise<HttpAnswer> {
  const where =
    endpoint.kind === 'socket'
      ? { socketPath: endpoint.socketPath }
      : { host: endpoint.host, port: endpoint.port };
  // /info is a few KiB; anything past 4 MiB is not a Docker Engine.
  return httpGet({ ...where, path, headers: { host: 'docker' } }, timeoutMs, 4 * 1024 * 1024);
}

function parseJson(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

function s(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/** Asks the Engine at `endpoint` for /_ping, /version and /info. */
export async function probeDocker(endpoint: Endpoint, timeoutMs: number): Promise<DockerProbe> {
  try {
    const ping = await get(endpoint, '/_ping', timeoutMs);
    if (ping.status !== 200) {
      return {
        ok: false,
        endpoint,
        code: `HTTP_${ping.status}`,
        message: `GET /_ping answered ${ping.status}: ${ping.body.slice(0, 200)}`,
      };
    }
    const [version, info] = await Promise.all([
      get(endpoint, '/version', timeoutMs),
      get(endpoint, '/info', timeoutMs),
    ]);
    const v = parseJson(version.body);
    const i = parseJson(info.body);
    const runtimes = typeof i.Runtimes === 'object' && i.Runtimes !== null ? i.Runtimes : {};
    return {
      ok: true,
      endpoint,
      version: s(v.Version),
      apiVersion: s(v.ApiVersion),
      runtimes: Object.keys(runtimes).sort(),
      defaultRuntime: s(i.DefaultRuntime),
      containers: typeof i.Containers === 'number' ? i.Containers : undefined,
      cgroupVersion: s(i.CgroupVersion),
      cgroupDriver: s(i.CgroupDriver),
    };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { ok: false, endpoint, code: e.code ?? 'EUNKNOWN', message: e.message };
  }
}
