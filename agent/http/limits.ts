import { readFileSync } from 'node:fs';

/** Bounds of the HTTP server (config key `http`, milliseconds and bytes). */
export interface HttpLimits {
  readonly maxConnections: number;
  readonly headersTimeout: number;
  readonly requestTimeout: number;
  readonly idleTimeout: number;
  readonly keepAliveTimeout: number;
  readonly bodyLimit: number;
}

/**
 * Defaults of the bounds. 64 connections serve a few scrapers and API clients with room to spare
 * while leaving most of a 1024-descriptor limit to the collectors; 10 s for headers is ample for
 * a scraper (it sends them at once) and short for a client that trickles them.
 */
export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  maxConnections: 64,
  headersTimeout: 10_000,
  requestTimeout: 60_000,
  idleTimeout: 30_000,
  keepAliveTimeout: 65_000,
  bodyLimit: 1024 * 1024,
};

/** The soft limit on open files of this process (Linux /proc/self/limits); undefined elsewhere. */
export function openFilesLimit(limitsText?: string): number | undefined {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
  return m?.[1] === undefined || m[1] === 'unlimited' ? undefined : Number(m[1]);
}

/**
 * The connection cap to apply: the configured one, but at most a quarter of the open-files limit,
 * so that connections can never take the descriptors the collectors need (pipes of GPU tools,
 * /proc files, the Docker socket). Returns the cap and, when it was lowered, why.
 */
export function connectionCap(
  configured: number,
  fileLimit: number | undefined,
): { max: number; lowered?: string } {
  if (fileLimit === undefined || configured <= fileLimit / 4) return { max: configured };
  const max = Math.max(2, Math.floor(fileLimit / 4));
  return {
    max,
    lowered: `http.maxConnections ${configured} lowered to ${max}: the process may open only ${fileLimit} files (ulimit -n) and the collectors need the rest`,
  };
}
