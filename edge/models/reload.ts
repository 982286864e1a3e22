import { readFile } from 'node:fs/promises';
import type Docker from 'dockerode';

/** What to poke after `current` changed so the serving process loads the new files. */
export interface ReloadSettings {
  /** Container restarted through the Docker API. */
  readonly container?: string;
  /** Signal sent to the process whose pid is in `pidFile` (e.g. SIGHUP). */
  readonly signal?: { readonly pidFile: string; readonly signal: NodeJS.Signals };
  /** URL called (e.g. a model server's reload endpoint); 2xx means done. */
  readonly url?: string;
  readonly method: 'POST' | 'PUT' | 'GET';
  readonly timeoutMs: number;
}

/** Defaults: nothing to reload, POST, 60 s. */
export const DEFAULT_RELOAD: ReloadSettings = { method: 'POST', timeoutMs: 60_000 };

/** True when any hook is configured. */
export function hasReload(r: ReloadSettings): boolean {
  return r.container !== undefined || r.signal !== undefined || r.url !== undefined;
}

/** Runs every configured hook in order: container restart, signal, URL. Throws on the first failure. */
export async function runReloadHooks(r: ReloadSettings, docker: () => Docker): Promise<string[]> {
  const done: string[] = [];
  if (r.container) {
    try {
      await docker()
        .getContainer(r.container)
        .restart({ t: Math.ceil(r.timeoutMs / 2000) });
    } catch (err) {
      throw new Error(
        `reload: restarting container ${r.container} failed: ${(err as Error).message}`,
        { cause: err },
      );
    }
    done.push(`restarted container ${r.container}`);
  }
  if (r.signal) {
    let pid: number;
    try {
      pid = Number((await readFile(r.signal.pidFile, 'utf8')).trim());
    } catch (err) {
      throw new Error(
        `reload: cannot read pid file ${r.signal.pidFile}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (!Number.isInteger(pid) || pid <= 1)
      throw new Error(`reload: ${r.signal.pidFile} does not hold a process id`);
    try {
      process.kill(pid, r.signal.signal);
    } catch (err) {
      throw new Error(
        `reload: sending ${r.signal.signal} to ${pid} failed: ${(err as Error).message}`,
        { cause: err },
      );
    }
    done.push(`sent ${r.signal.signal} to ${pid}`);
  }
  if (r.url) {
    let res: Response;
    try {
      res = await fetch(r.url, { method: r.method, signal: AbortSignal.timeout(r.timeoutMs) });
    } catch (err) {
      throw new Error(`reload: ${r.method} ${r.url} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    await res.body?.cancel().catch(() => undefined);
    if (res.status < 200 || res.status > 299)
      throw new Error(`reload: ${r.method} ${r.url}: HTTP ${res.status}`);
    done.push(`${r.method} ${r.url}`);
  }
  return done;
}
