import { z } from 'zod';
import { zBytes, zDuration, zInt, setting, zFile } from '../config-schema.js';
import { DEFAULT_HTTP_LIMITS as D } from './limits.js';
import { loadWebConfigFile, WebConfigError } from './web-config.js';
import type { WebConfig } from './web-config-types.js';

/**
 * Settings of the HTTP server (config key `http`): the web configuration file (TLS, client
 * certificates, basic auth: Prometheus exporter-toolkit's format), who may write, and the bounds
 * that keep slow or numerous clients from exhausting the process.
 */
export const httpConfigSchema = z
  .object({
    /** exporter-toolkit web configuration file (`--web.config.file`); read and checked at start. */
    webConfigFile: setting(zFile().optional(), {
      env: 'GPULSE_WEB_CONFIG_FILE',
      // exporter-toolkit's flag name, as node_exporter and dcgm-exporter spell it.
      flag: 'web.config.file',
      description:
        'web configuration file for TLS, client certificates and basic auth (exporter-toolkit format)',
    }),
    /**
     * Write endpoints (drift references and observations): auto = on when the agent listens on
     * loopback or clients authenticate; open = on for anyone who reaches the port; off = never.
     */
    writeEndpoints: setting(z.enum(['auto', 'open', 'off']).default('auto'), {
      env: 'GPULSE_HTTP_WRITE_ENDPOINTS',
      flag: 'write-endpoints',
      description:
        'write endpoints (drift uploads): auto = on for loopback or authenticated clients, open = anyone, off (default auto)',
    }),
    /** Connections open at once; the one idle longest makes room for a new one. */
    maxConnections: setting(zInt({ min: 2, max: 65_536 }).default(D.maxConnections), {
      env: 'GPULSE_HTTP_MAX_CONNECTIONS',
      description:
        'HTTP connections open at once; the one idle longest makes room for a new one (default 64)',
    }),
    /** Time a client has to send its request headers (and to finish a TLS handshake). */
    headersTimeout: setting(zDuration({ min: 100 }).default(D.headersTimeout), {
      env: 'GPULSE_HTTP_HEADERS_TIMEOUT',
      description: 'time to send the request headers and finish the TLS handshake (default 10s)',
    }),
    /** Time a client has to send its whole request, body included. */
    requestTimeout: setting(zDuration({ min: 100 }).default(D.requestTimeout), {
      env: 'GPULSE_HTTP_REQUEST_TIMEOUT',
      description: 'time to send a whole request, body included (default 60s)',
    }),
    /** A connection silent this long in the middle of a request is closed. */
    idleTimeout: setting(zDuration({ min: 100 }).default(D.idleTimeout), {
      env: 'GPULSE_HTTP_IDLE_TIMEOUT',
      description: 'a connection silent this long during a request is closed (default 30s)',
    }),
    /** An idle keep-alive connection is closed after this (Prometheus reuses its connection). */
    keepAliveTimeout: setting(zDuration({ min: 100 }).default(D.keepAliveTimeout), {
      env: 'GPULSE_HTTP_KEEPALIVE_TIMEOUT',
      description: 'idle keep-alive connections are closed after this (default 65s)',
    }),
    /** Largest request body (the drift routes have their own, drift.limits.*). */
    bodyLimit: setting(zBytes().default(D.bodyLimit), {
      env: 'GPULSE_HTTP_BODY_LIMIT',
      description:
        'largest request body; drift uploads have drift.limits.bodyBytes and referenceBytes (default 1MiB)',
    }),
  })
  .strict()
  .transform((section, ctx): typeof section & { web?: WebConfig } => {
    if (section.headersTimeout > section.requestTimeout) {
      ctx.addIssue({
        code: 'custom',
        path: ['headersTimeout'],
        message: `must not be longer than http.requestTimeout (${section.requestTimeout}ms)`,
      });
      return z.NEVER;
    }
    if (section.webConfigFile === undefined) return section;
    let web: WebConfig;
    try {
      web = loadWebConfigFile(section.webConfigFile);
    } catch (err) {
      if (!(err instanceof WebConfigError)) throw err;
      for (const problem of err.problems) {
        ctx.addIssue({
          code: 'custom',
          path: ['webConfigFile'],
          message: `${err.file}: ${problem}`,
        });
      }
      return z.NEVER;
    }
    return { ...section, web };
  });

/** Parsed HTTP settings; `web` is the validated web configuration when a file is set. */
export type HttpConfig = z.infer<typeof httpConfigSchema>;
