import { stat } from 'node:fs/promises';
import { createServer as createHttpServer, STATUS_CODES } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as NetServer } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import type { Logger } from 'pino';
import { errorMessage } from '../core/errors.js';
import { BasicAuth } from './basic-auth.js';
import { guardConnections } from './connection-guard.js';
import { connectionCap, DEFAULT_HTTP_LIMITS, openFilesLimit, type HttpLimits } from './limits.js';
import { HttpCounters, type ConnectionReason, type RequestReason } from './http-metrics.js';
import { TokenBucket } from './rate-limit.js';
import { applyTlsOptions, clientCertificateProblem, tlsServerOptions } from './tls-server.js';
import type { WebConfig } from './web-config-types.js';

/** Who may call write endpoints (POST/PUT/PATCH/DELETE): see README "Security". */
export type WriteEndpoints = 'auto' | 'open' | 'off';

/** Options of the web app. */
export interface WebAppOptions {
  readonly log: Logger;
  /** Default: DEFAULT_HTTP_LIMITS. */
  readonly limits?: HttpLimits;
  /** The validated web configuration file; undefined: plain HTTP, no authentication. */
  readonly web?: WebConfig;
  /** Rereads the web configuration when its files change; undefined: never reloaded. */
  readonly reload?: () => Promise<WebConfig>;
  /** How often the web configuration's files are checked for changes (default 5 s). */
  readonly reloadIntervalMs?: number;
  /** The write-endpoint policy and the host the server listens on (no write endpoints: omit). */
  readonly writes?: { readonly mode: WriteEndpoints; readonly listenHost: string };
  /** Paths served without basic auth or rate limit (health probes); details only when authenticated. */
  readonly openPaths?: readonly string[];
  readonly counters?: HttpCounters;
  readonly fastify?: Pick<FastifyServerOptions, 'schemaController'>;
}

/** What the routes of a web app may ask about a request. */
export interface WebAccess {
  /** True when the request proved who it is (basic auth or a verified client certificate), or no authentication is configured. */
  authenticated(request: FastifyRequest): boolean;
}

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const LOG_AGAIN_MS = 10 * 60_000;

/** True for a loopback host (127.0.0.0/8, ::1, localhost): only this machine can connect. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return (
    h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || /^::ffff:127\./.test(h)
  );
}

/** Logs a condition once, then again only after it has been quiet for ten minutes. */
class EpisodeLog {
  private readonly last = new Map<string, number>();
  constructor(private readonly log: Logger) {}

  warn(key: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    const previous = this.last.get(key);
    this.last.set(key, now);
    if (previous === undefined || now - previous > LOG_AGAIN_MS) this.log.warn(fields, message);
  }
}

/** The security state a reload replaces as one. */
interface Security {
  readonly web: WebConfig | undefined;
  readonly auth: BasicAuth | undefined;
  readonly bucket: TokenBucket | undefined;
}

function security(web: WebConfig | undefined, previous?: Security): Security {
  const usersSame =
    previous?.web && web && JSON.stringify(previous.web.users) === JSON.stringify(web.users);
  const limitSame =
    previous?.web &&
    web &&
    JSON.stringify(previous.web.rateLimit) === JSON.stringify(web.rateLimit);
  const users = web?.users ?? {};
  return {
    web,
    // Unchanged users keep their instance and with it the cached verdicts.
    auth: usersSame
      ? previous.auth
      : Object.keys(users).length > 0
        ? new BasicAuth(users)
        : undefined,
    bucket: limitSame
      ? previous.bucket
      : web?.rateLimit
        ? new TokenBucket(web.rateLimit.intervalMs, web.rateLimit.burst)
        : undefined,
  };
}

/** The path of a request without its query. */
function pathOf(request: FastifyRequest): string {
  const q = request.url.indexOf('?');
  return q === -1 ? request.url : request.url.slice(0, q);
}

/** Whether the request came over a TLS connection with a client certificate the client CA signed. */
function verifiedClient(request: FastifyRequest): boolean {
  const socket = request.raw.socket as Partial<TLSSocket>;
  return socket.authorized === true && socket.getPeerX509Certificate?.() !== undefined;
}

/**
 * Builds a fastify app whose server follows an exporter-toolkit web configuration (TLS, client
 * certificates, basic auth, security headers, rate limit; reloaded when its files change) and
 * the bounds of `limits` (connection cap, timeouts, body size), with the write-endpoint policy.
 * Callers add their routes; hooks added here run before every route.
 */
export function createWebApp(options: WebAppOptions): FastifyInstance & { access: WebAccess } {
  const log = options.log.child({ component: 'http' });
  const episodes = new EpisodeLog(log);
  const counters = options.counters ?? new HttpCounters();
  const limits = options.limits ?? DEFAULT_HTTP_LIMITS;
  const cap = connectionCap(limits.maxConnections, openFilesLimit());
  if (cap.lowered) log.warn(cap.lowered);
  const openPaths = new Set(options.openPaths ?? []);
  const authenticatedRequests = new WeakSet<FastifyRequest>();
  let current = security(options.web);
  let server: NetServer | undefined;

  const countConnection = (
    reason: ConnectionReason,
    fields: Record<string, unknown>,
    msg: string,
  ) => {
    counters.connection(reason);
    episodes.warn(`connection:${reason}`, fields, msg);
  };

  // Per-request logs are info level: at warn, scrapes stay quiet while handler errors still show.
  const httpLog: FastifyBaseLogger = log.child({}, { level: 'warn' });
  const app = Fastify({
    loggerInstance: httpLog,
    bodyLimit: limits.bodyLimit,
    ...options.fastify,
    serverFactory: (handler) => {
      const common = {
        headersTimeout: limits.headersTimeout,
        requestTimeout: limits.requestTimeout,
        keepAliveTimeout: limits.keepAliveTimeout,
        // Node checks the two timeouts above on this period (default 30 s, longer than them).
        connectionsCheckingInterval: Math.max(100, Math.min(1000, limits.headersTimeout / 4)),
      };
      const tls = current.web?.tls;
      const s = tls
        ? createHttpsServer(
            { ...common, ...tlsServerOptions(tls), handshakeTimeout: limits.headersTimeout },
            handler,
          )
        : createHttpServer(common, handler);
      s.setTimeout(limits.idleTimeout);
      guardConnections(s, {
        max: cap.max,
        onClose: (reason) =>
          countConnection(
            reason,
            { maxConnections: cap.max },
            reason === 'evicted'
              ? `HTTP connection limit reached (${cap.max}, http.maxConnections): closing the connections idle longest to admit new ones`
              : `HTTP connection limit reached (${cap.max}, http.maxConnections) with every connection busy: refusing new connections`,
          ),
      });
      if (tls) watchTls(s as TlsServer);
      s.on('error', (err: NodeJS.ErrnoException) => {
        // Errors before listening are the listen call's to report.
        if (!s.listening) return;
        countConnection(
          'accept_failed',
          { err: err.message },
          `the HTTP server cannot accept connections (${err.code ?? err.message}): the process is out of file descriptors or memory`,
        );
      });
      server = s;
      return s;
    },
    clientErrorHandler(err: NodeJS.ErrnoException, socket) {
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        countConnection(
          'timeout',
          { headersTimeout: limits.headersTimeout, requestTimeout: limits.requestTimeout },
          'an HTTP client sent its request too slowly and was disconnected (http.headersTimeout, http.requestTimeout)',
        );
      }
      // What fastify's default handler does: an HTTP error answer when the socket still takes one.
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const status =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 408
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? 431
            : 400;
      if (socket.writable) {
        socket.write(
          `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
        );
      }
      socket.destroy();
    },
  });

  function watchTls(s: TlsServer): void {
    s.on('tlsClientError', (err: NodeJS.ErrnoException) =>
      countConnection(
        'tls_handshake',
        { err: err.code ?? err.message },
        `a TLS handshake failed (${err.code ?? err.message}); plain HTTP sent to the HTTPS port, an old TLS version or a missing client certificate look like this`,
      ),
    );
    s.on('secureConnection', (socket: TLSSocket) => {
      const tls = current.web?.tls;
      const problem = tls ? clientCertificateProblem(socket, tls) : undefined;
      if (problem === undefined) return;
      socket.destroy();
      countConnection('client_certificate', { problem }, `TLS client refused: ${problem}`);
    });
  }

  const refuse = (
    reply: FastifyReply,
    request: FastifyRequest,
    status: number,
    reason: RequestReason,
    message: string,
  ) => {
    counters.request(reason);
    // A refused request's body is never read: close the connection rather than drain it.
    if (!READ_METHODS.has(request.method)) void reply.header('connection', 'close');
    return reply.code(status).header('cache-control', 'no-store').send({ error: reason, message });
  };

  app.addHook('onRequest', async (request, reply) => {
    const sec = current;
    for (const [name, value] of Object.entries(sec.web?.headers ?? {})) {
      void reply.header(name, value);
    }
    if (!sec.auth) authenticatedRequests.add(request);
    if (openPaths.has(pathOf(request))) {
      // Probes stay open; credentials, when sent, unlock the details.
      if (sec.auth && request.headers.authorization !== undefined) {
        if ((await sec.auth.check(request.headers.authorization)) === 'ok') {
          authenticatedRequests.add(request);
        }
      }
      return;
    }
    if (sec.bucket && !sec.bucket.allow()) {
      return refuse(
        reply,
        request,
        429,
        'rate_limited',
        'too many requests: the rate_limit of the web configuration is exceeded',
      );
    }
    if (sec.auth) {
      const outcome = await sec.auth.check(request.headers.authorization);
      if (outcome === 'busy') {
        void reply.header('retry-after', '1');
        return refuse(
          reply,
          request,
          429,
          'auth_busy',
          'too many password checks in progress; retry in a second',
        );
      }
      if (outcome === 'denied') {
        void reply.header('www-authenticate', 'Basic');
        return refuse(
          reply,
          request,
          401,
          'unauthorized',
          'authentication required: send the user and password of basic_auth_users in the web configuration',
        );
      }
      authenticatedRequests.add(request);
    }
    const writes = options.writes;
    if (writes && !READ_METHODS.has(request.method)) {
      const why = writeRefusal(writes.mode, writes.listenHost, request, sec);
      if (why !== undefined) return refuse(reply, request, 403, 'writes_disabled', why);
    }
    return undefined;
  });

  let timer: NodeJS.Timeout | undefined;
  if (options.web && options.reload) {
    const reload = options.reload;
    const intervalMs = options.reloadIntervalMs ?? 5000;
    counters.reload(true);
    let signature: string | undefined;
    let inFlight = false;
    const check = async () => {
      const web = current.web;
      if (!web || inFlight) return;
      const next = await filesSignature(web.watch);
      if (signature === undefined || next === signature) {
        signature = next;
        return;
      }
      inFlight = true;
      try {
        const loaded = await reload();
        apply(loaded);
        counters.reload(true);
        log.info({ file: loaded.file }, 'web configuration reloaded');
        for (const w of loaded.warnings) log.warn({ file: loaded.file }, w);
        signature = await filesSignature(loaded.watch);
      } catch (err) {
        counters.reload(false);
        log.error(
          { file: web.file, err: errorMessage(err) },
          `the changed web configuration was refused; the previous one stays in force: ${errorMessage(err)}`,
        );
        signature = next;
      } finally {
        inFlight = false;
      }
    };
    const tick = () => {
      check()
        .catch((err: unknown) =>
          log.error({ err: errorMessage(err) }, 'web configuration check failed'),
        )
        .finally(() => {
          if (timer) timer = setTimeout(tick, intervalMs).unref();
        });
    };
    app.addHook('onListen', async () => {
      signature = await filesSignature(options.web?.watch ?? []);
      timer = setTimeout(tick, intervalMs).unref();
    });
    app.addHook('onClose', (_instance, done) => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      done();
    });
  }

  function apply(web: WebConfig): void {
    const before = current.web;
    if (!!before?.tls !== !!web.tls) {
      throw new Error(
        web.tls
          ? 'tls_server_config was added: switching from HTTP to HTTPS needs a restart'
          : 'tls_server_config was removed: switching from HTTPS to HTTP needs a restart',
      );
    }
    // Certificates first: a key that does not load leaves everything as it was.
    if (web.tls && server) applyTlsOptions(server as TlsServer, web.tls);
    current = security(web, current);
  }

  return Object.assign(app, {
    access: { authenticated: (request: FastifyRequest) => authenticatedRequests.has(request) },
  });
}

/** Why a write request is refused under the policy, or undefined when it may go on. */
function writeRefusal(
  mode: WriteEndpoints,
  listenHost: string,
  request: FastifyRequest,
  sec: Security,
): string | undefined {
  if (mode === 'open') return undefined;
  if (mode === 'off') {
    return 'write endpoints are turned off (http.writeEndpoints: off); set it to auto or open to accept writes';
  }
  // A client certificate counts only when signed by the configured client CA, not any public CA.
  const certified = sec.web?.tls?.clientCa !== undefined && verifiedClient(request);
  if (isLoopbackHost(listenHost) || sec.auth || certified) return undefined;
  return `write endpoints are off: gpulse listens on ${listenHost} without authentication. Configure basic_auth_users or client certificates (client_auth_type: RequireAndVerifyClientCert) in a web configuration file (--web.config.file, GPULSE_WEB_CONFIG_FILE), listen on 127.0.0.1, or accept writes from anyone who reaches the port with http.writeEndpoints: open (GPULSE_HTTP_WRITE_ENDPOINTS=open)`;
}

/** A summary of the files' identity and modification times; changes when any of them changes. */
async function filesSignature(files: readonly string[]): Promise<string> {
  const parts = await Promise.all(
    files.map(async (f) => {
      try {
        const s = await stat(f);
        return `${f}:${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch {
        return `${f}:missing`;
      }
    }),
  );
  return parts.join('|');
}
