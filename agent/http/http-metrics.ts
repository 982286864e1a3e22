import { counter, gauge, SampleBuilder } from '../core/metric.js';
import type { Sample } from '../core/types.js';

/** Why the server closed or refused a connection before serving it. */
export const CONNECTION_REASONS = [
  'max_connections',
  'evicted',
  'timeout',
  'tls_handshake',
  'client_certificate',
  'accept_failed',
] as const;

/** Why a request was answered without reaching its handler. */
export const REQUEST_REASONS = [
  'unauthorized',
  'auth_busy',
  'writes_disabled',
  'rate_limited',
] as const;

/** A reason label of gpulse_http_connections_closed_total. */
export type ConnectionReason = (typeof CONNECTION_REASONS)[number];
/** A reason label of gpulse_http_requests_refused_total. */
export type RequestReason = (typeof REQUEST_REASONS)[number];

/** Self-metrics of the agent's HTTP server. */
export const httpMetrics = {
  connectionsClosed: counter(
    'gpulse_http_connections_closed_total',
    'Connections the HTTP server refused or closed before serving them, by reason: max_connections (at http.maxConnections with none idle), evicted (idle or stalled, closed to admit a new one), timeout (headers or request not received in time), tls_handshake, client_certificate (refused by the web configuration), accept_failed (out of file descriptors).',
    ['reason'],
  ),
  requestsRefused: counter(
    'gpulse_http_requests_refused_total',
    'Requests answered without reaching their handler, by reason: unauthorized (401), auth_busy (too many password checks queued, 429), writes_disabled (403, see http.writeEndpoints), rate_limited (429, rate_limit of the web configuration).',
    ['reason'],
  ),
  webConfigReloadOk: gauge(
    'gpulse_http_web_config_last_reload_successful',
    'Whether the latest (re)load of the web configuration file succeeded (1) or was refused and the previous one kept (0); absent without a web configuration.',
  ),
} as const;

/** Counters of the HTTP server; every reason starts at 0 so rate() works from the start. */
export class HttpCounters {
  private readonly connections = new Map<ConnectionReason, number>(
    CONNECTION_REASONS.map((r) => [r, 0]),
  );
  private readonly requests = new Map<RequestReason, number>(REQUEST_REASONS.map((r) => [r, 0]));
  /** Undefined without a web configuration file. */
  reloadOk: boolean | undefined;
  private listener: (() => void) | undefined;

  /** Calls `fn` after each change (the agent publishes the samples from there). */
  onChange(fn: () => void): void {
    this.listener = fn;
  }

  /** Counts a connection refused or closed. */
  connection(reason: ConnectionReason): void {
    this.connections.set(reason, (this.connections.get(reason) ?? 0) + 1);
    this.listener?.();
  }

  /** Counts a refused request. */
  request(reason: RequestReason): void {
    this.requests.set(reason, (this.requests.get(reason) ?? 0) + 1);
    this.listener?.();
  }

  /** Records the outcome of a (re)load of the web configuration. */
  reload(ok: boolean): void {
    this.reloadOk = ok;
    this.listener?.();
  }

  /** The count so far for one reason. */
  count(reason: ConnectionReason | RequestReason): number {
    return (
      this.connections.get(reason as ConnectionReason) ??
      this.requests.get(reason as RequestReason) ??
      0
    );
  }

  /** Samples of every HTTP metric. */
  samples(): Sample[] {
    const b = new SampleBuilder();
    for (const [reason, n] of this.connections) b.add(httpMetrics.connectionsClosed, { reason }, n);
    for (const [reason, n] of this.requests) b.add(httpMetrics.requestsRefused, { reason }, n);
    b.add(httpMetrics.webConfigReloadOk, {}, this.reloadOk);
    return b.build();
  }
}
