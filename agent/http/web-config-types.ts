/**
 * The web configuration (Prometheus exporter-toolkit's `web-config.yml`) as validated plain data:
 * what the server applies. Kept apart from the zod schema that produces it (web-config.ts), so the
 * agent's long-lived process can use it without loading zod (it is validated in the config child).
 */

/** exporter-toolkit's client_auth_type values (Go's tls.ClientAuthType names). */
export type ClientAuthType =
  | 'NoClientCert'
  | 'RequestClientCert'
  | 'RequireAnyClientCert'
  | 'VerifyClientCertIfGiven'
  | 'RequireAndVerifyClientCert';

/** A PEM read from a file (reread on reload) or given inline in the web config. */
export type PemSource = { readonly file: string } | { readonly inline: string };

/** Node's names of the TLS versions. */
export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/** `tls_server_config`, translated to what Node's TLS takes. */
export interface WebTlsConfig {
  readonly cert: PemSource;
  readonly key: PemSource;
  readonly clientCa?: PemSource;
  readonly clientAuth: ClientAuthType;
  /** Subject alternative names of which a client certificate must carry one (exact match). */
  readonly clientAllowedSans?: readonly string[];
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
  /** OpenSSL cipher list for TLS 1.2 and older; undefined: Node's defaults. */
  readonly ciphers?: string;
  /** prefer_server_cipher_suites. */
  readonly honorCipherOrder: boolean;
  /** OpenSSL curve list (curve_preferences); undefined: Node's defaults. */
  readonly ecdhCurve?: string;
}

/** A validated web configuration file. */
export interface WebConfig {
  /** Absolute path of the file (relative paths in it are resolved against its folder). */
  readonly file: string;
  /** Undefined: plain HTTP. */
  readonly tls?: WebTlsConfig;
  /** User name → bcrypt hash; empty: no basic authentication. */
  readonly users: Readonly<Record<string, string>>;
  /** Security headers added to every response. */
  readonly headers: Readonly<Record<string, string>>;
  /** http_server_config.http2 as written (gpulse serves HTTP/1.1; see README "Security"). */
  readonly http2: boolean;
  /** Token bucket over all requests; undefined: no rate limit. */
  readonly rateLimit?: { readonly intervalMs: number; readonly burst: number };
  /** Files whose change makes the server reload this configuration (the file and the PEMs it names). */
  readonly watch: readonly string[];
  /** Things worth a warning at start (a certificate about to expire, basic auth without TLS). */
  readonly warnings: readonly string[];
}
