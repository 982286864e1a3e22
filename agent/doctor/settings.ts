import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { AgentConfig } from '../config.js';

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
  const t = config.collectors.tegrastats;
  return t.mode !== 'off' && which(t.binary, env) !== undefined;
}

/** Whether this process looks like it runs in a container (Docker, Podman, Kubernetes). */
export function inContainer(env: NodeJS.ProcessEnv, exists: (p: string) => boolean): boolean {
  return (
    exists('/.dockerenv') ||
    exists('/run/.containerenv') ||
    (env.KUBERNETES_SERVICE_HOST ?? '') !== ''
  );
}
