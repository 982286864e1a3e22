import { z } from 'zod';
import { zBytes, zDuration, zInt } from '../config-schema.js';
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
    webConfigFile: z.string().min(1).optional(),
    /**
     * Write endpoints (drift references and observations): auto = on when the agent listens on
     * loopback or clients authenticate; open = on for anyone who reaches the port; off = never.
     */
    writeEndpoints: z.enum(['auto', 'open', 'off']).default('auto'),
    /** Connections open at once; the one idle longest makes room for a new one. */
    maxConnections: zInt({ min: 2, max: 65_536 }).default(D.maxConnections),
    /** Time a client has to send its request headers (and to finish a TLS handshake). */
    headersTimeout: zDuration({ min: 100 }).default(D.headersTimeout),
    /** Time a client has to send its whole request, body included. */
    requestTimeout: zDuration({ min: 100 }).default(D.requestTimeout),
    /** A connection silent this long in the middle of a request is closed. */
    idleTimeout: zDuration({ min: 100 }).default(D.idleTimeout),
    /** An idle keep-alive connection is closed after this (Prometheus reuses its connection). */
    keepAliveTimeout: zDuration({ min: 100 }).default(D.keepAliveTimeout),
    /** Largest request body (the drift routes have their own, drift.limits.*). */
    bodyLimit: zBytes().default(D.bodyLimit),
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
