/** Environment variables and flags of these settings: plain data the CLI reads without loading zod. */
import type { SettingBinding } from '../config-schema.js';

/** Environment variables and flags of the HTTP server (agent and gateway). */
export const httpSettings: readonly SettingBinding[] = [
  {
    path: ['http', 'webConfigFile'],
    env: 'GPULSE_WEB_CONFIG_FILE',
    // exporter-toolkit's flag name, as node_exporter and dcgm-exporter spell it.
    flag: 'web.config.file',
    valueName: 'FILE',
    description:
      'web configuration file for TLS, client certificates and basic auth (exporter-toolkit format)',
  },
  {
    path: ['http', 'writeEndpoints'],
    env: 'GPULSE_HTTP_WRITE_ENDPOINTS',
    flag: 'write-endpoints',
    valueName: 'auto|open|off',
    description:
      'write endpoints (drift uploads): auto = on for loopback or authenticated clients, open = anyone, off (default auto)',
  },
  {
    path: ['http', 'maxConnections'],
    env: 'GPULSE_HTTP_MAX_CONNECTIONS',
    valueName: 'N',
    description:
      'HTTP connections open at once; the one idle longest makes room for a new one (default 64)',
  },
  {
    path: ['http', 'headersTimeout'],
    env: 'GPULSE_HTTP_HEADERS_TIMEOUT',
    valueName: 'DURATION',
    description: 'time to send the request headers and finish the TLS handshake (default 10s)',
  },
  {
    path: ['http', 'requestTimeout'],
    env: 'GPULSE_HTTP_REQUEST_TIMEOUT',
    valueName: 'DURATION',
    description: 'time to send a whole request, body included (default 60s)',
  },
  {
    path: ['http', 'idleTimeout'],
    env: 'GPULSE_HTTP_IDLE_TIMEOUT',
    valueName: 'DURATION',
    description: 'a connection silent this long during a request is closed (default 30s)',
  },
  {
    path: ['http', 'keepAliveTimeout'],
    env: 'GPULSE_HTTP_KEEPALIVE_TIMEOUT',
    valueName: 'DURATION',
    description: 'idle keep-alive connections are closed after this (default 65s)',
  },
  {
    path: ['http', 'bodyLimit'],
    env: 'GPULSE_HTTP_BODY_LIMIT',
    valueName: 'SIZE',
    description:
      'largest request body; drift uploads have drift.limits.bodyBytes and referenceBytes (default 1MiB)',
  },
];
