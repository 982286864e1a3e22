import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import { z } from 'zod';
import { errorMessage } from '../core/errors.js';
import type {
  ClientAuthType,
  PemSource,
  TlsVersion,
  WebConfig,
  WebTlsConfig,
} from './web-config-types.js';

/** A web configuration file that cannot be used; `problems` names each key that is wrong. */
export class WebConfigError extends Error {
  readonly code = 'GPULSE_WEB_CONFIG_INVALID';
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(`${file}: ${problems.join('; ')}`);
    this.name = 'WebConfigError';
  }
}

/**
 * Go's crypto/tls names of the cipher suites exporter-toolkit accepts (tls.CipherSuites()), with
 * OpenSSL's name of each. The three TLS 1.3 suites map to undefined: Go accepts their names but
 * cannot restrict TLS 1.3 suites, and neither does gpulse (Node keeps its TLS 1.3 defaults).
 */
const CIPHERS: Readonly<Record<string, string | undefined>> = {
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_AES_128_GCM_SHA256: undefined,
  TLS_AES_256_GCM_SHA384: undefined,
  TLS_CHACHA20_POLY1305_SHA256: undefined,
};

/** exporter-toolkit's curve names → OpenSSL's. */
const CURVES: Readonly<Record<string, string>> = {
  CurveP256: 'P-256',
  CurveP384: 'P-384',
  CurveP521: 'P-521',
  X25519: 'X25519',
};

const VERSIONS: Readonly<Record<string, TlsVersion>> = {
  TLS10: 'TLSv1',
  TLS11: 'TLSv1.1',
  TLS12: 'TLSv1.2',
  TLS13: 'TLSv1.3',
};
const VERSION_ORDER: readonly TlsVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/** The response headers exporter-toolkit lets a file set, with the values it accepts (none: any). */
const HEADERS: Readonly<Record<string, readonly string[]>> = {
  'Strict-Transport-Security': [],
  'X-Content-Type-Options': ['nosniff'],
  'X-Frame-Options': ['deny', 'sameorigin'],
  'X-XSS-Protection': [],
  'Content-Security-Policy': [],
};

/** bcrypt hashes bcryptjs verifies: $2a$, $2b$ (Python, OpenBSD) and $2y$ (htpasswd -B, PHP). */
const BCRYPT_RE = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

const GO_UNITS_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration ("1s", "100ms", "1m30s", "0") into milliseconds, as exporter-toolkit's
 * rate_limit.interval is written. Hand-written: a few lines, and the npm duration parsers accept
 * other units (days, weeks) and other spellings than Go's time.ParseDuration.
 */
export function parseGoDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < s.length) {
    re.lastIndex = at;
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * (GO_UNITS_MS[m[2] ?? ''] ?? NaN);
    at = re.lastIndex;
  }
  return at > 0 && Number.isFinite(total) ? total : undefined;
}

// The file is read with YAML's failsafe schema (every scalar a string, as written) and each key
// converted by its type, as Go's yaml.v2 decodes into exporter-toolkit's structs: `1` is a fine
// header value, `yes` a fine boolean (YAML 1.1), `~` and an empty value leave a key unset.
const NULLS = new Set(['', '~', 'null', 'Null', 'NULL']);
const TRUE = new Set(['y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON']);
const FALSE = new Set(['n', 'N', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF']);

/** A string key; unset when absent, null or "". */
const zText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || NULLS.has(v) ? undefined : v));

/** A boolean key, in YAML 1.1's spellings. */
const zBool = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || NULLS.has(v)) return undefined;
    if (TRUE.has(v)) return true;
    if (FALSE.has(v)) return false;
    ctx.addIssue({ code: 'custom', message: `expected true or false, got ${JSON.stringify(v)}` });
    return z.NEVER;
  });

/** An integer key. */
const zInteger = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || NULLS.has(v)) return undefined;
    if (/^[-+]?\d+$/.test(v)) return Number(v);
    ctx.addIssue({ code: 'custom', message: `expected an integer, got ${JSON.stringify(v)}` });
    return z.NEVER;
  });

/** YAML null (`~`, empty) where a list or mapping goes: the key is unset. */
const unsetIfNull = (v: unknown) => (typeof v === 'string' && NULLS.has(v) ? undefined : v);

/** A list key (absent or null: unset). */
const zList = <T extends z.ZodType>(item: T) => z.preprocess(unsetIfNull, z.array(item).optional());

/** A mapping key (absent or null: empty). */
const zMap = <T extends z.ZodType>(value: T) =>
  z.preprocess(unsetIfNull, z.record(z.string(), value).default({}));

/** A mapping section (absent or null: all defaults). */
const zSection = <T extends z.ZodType>(section: T) => z.preprocess(unsetIfNull, section.optional());

const zCipher = z.string().refine((name) => name in CIPHERS, {
  error: (issue) =>
    `unknown cipher suite ${JSON.stringify(issue.input)}: use Go's names, one of ${Object.keys(CIPHERS).join(', ')}`,
});

const zCurve = z.string().refine((name) => name in CURVES, {
  error: (issue) =>
    `unknown curve ${JSON.stringify(issue.input)}: one of ${Object.keys(CURVES).join(', ')}`,
});

const zVersion = zText.refine((v) => v === undefined || v in VERSIONS, {
  error: (issue) =>
    `unknown TLS version ${JSON.stringify(issue.input)}: one of ${Object.keys(VERSIONS).join(', ')}`,
});

const CLIENT_AUTH = [
  'NoClientCert',
  'RequestClientCert',
  'RequireAnyClientCert',
  'VerifyClientCertIfGiven',
  'RequireAndVerifyClientCert',
] as const;

/** A client_auth_type value, or undefined (after a problem) when it is none of them. */
function clientAuthType(value: string | undefined, problems: string[]): ClientAuthType | undefined {
  if (value === undefined) return 'NoClientCert';
  // exporter-toolkit keeps RequireClientCert as an old name of RequireAnyClientCert.
  if (value === 'RequireClientCert') return 'RequireAnyClientCert';
  if ((CLIENT_AUTH as readonly string[]).includes(value)) return value as ClientAuthType;
  problems.push(
    `tls_server_config: invalid client_auth_type ${JSON.stringify(value)}: one of ${CLIENT_AUTH.join(', ')} (RequireAndVerifyClientCert is the one that authenticates clients)`,
  );
  return undefined;
}

const tlsServerSchema = z.strictObject({
  cert: zText,
  key: zText,
  client_ca: zText,
  cert_file: zText,
  key_file: zText,
  client_auth_type: zText,
  client_ca_file: zText,
  client_allowed_sans: zList(z.string().min(1)),
  min_version: zVersion,
  max_version: zVersion,
  cipher_suites: zList(zCipher),
  prefer_server_cipher_suites: zBool,
  curve_preferences: zList(zCurve),
});

const httpServerSchema = z.strictObject({
  http2: zBool,
  headers: zMap(zText).superRefine((headers, ctx) => {
    for (const [name, value] of Object.entries(headers)) {
      const allowed = HEADERS[name];
      if (allowed === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `HTTP header ${JSON.stringify(name)} can not be configured: one of ${Object.keys(HEADERS).join(', ')}`,
        });
      } else if (allowed.length > 0 && value && !allowed.includes(value)) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `invalid value for ${name}: ${JSON.stringify(value)}; one of ${allowed.join(', ')}`,
        });
      }
    }
  }),
});

const zInterval = zText.transform((v, ctx) => {
  if (v === undefined) return undefined;
  // A bare number is nanoseconds, as Go's YAML decoder reads a time.Duration.
  const ms = /^\d+$/.test(v) ? Number(v) / 1e6 : parseGoDuration(v);
  if (ms === undefined || ms < 0) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a Go duration such as "1s" or "100ms" (0 turns the limit off), got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
  return ms;
});

const rateLimitSchema = z.strictObject({
  interval: zInterval,
  burst: zInteger.refine((v) => v === undefined || v >= 0, 'must not be negative'),
});

const webConfigSchema = z.strictObject({
  tls_server_config: zSection(tlsServerSchema),
  http_server_config: zSection(httpServerSchema),
  basic_auth_users: zMap(zText),
  rate_limit: zSection(rateLimitSchema),
});

type RawWebConfig = z.infer<typeof webConfigSchema>;
type RawTls = NonNullable<RawWebConfig['tls_server_config']>;

/** The text of a PEM source, for checks; undefined after adding a problem. */
function readPem(
  source: PemSource,
  key: string,
  problems: string[],
  watch: string[],
): string | undefined {
  if ('inline' in source) return source.inline;
  watch.push(source.file);
  try {
    return readFileSync(source.file, 'utf8');
  } catch (err) {
    problems.push(`${key} ${source.file}: cannot read it: ${errorMessage(err)}`);
    return undefined;
  }
}

/** Exactly one of an inline PEM and a file; undefined (after a problem when both) otherwise. */
function pemSource(
  inline: string | undefined,
  file: string | undefined,
  names: [string, string],
  dir: string,
  problems: string[],
): PemSource | undefined {
  if (inline !== undefined && file !== undefined) {
    problems.push(`tls_server_config: set ${names[0]} or ${names[1]}, not both`);
    return undefined;
  }
  if (file !== undefined) return { file: resolve(dir, file) };
  if (inline !== undefined) return { inline };
  return undefined;
}

function certificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** Checks the server certificate and key (a pair Node can serve) and the client CA bundle. */
function checkPems(
  tls: WebTlsConfig,
  problems: string[],
  warnings: string[],
  watch: string[],
  now: number,
): void {
  const cert = readPem(tls.cert, 'cert_file', problems, watch);
  const key = readPem(tls.key, 'key_file', problems, watch);
  const ca = tls.clientCa ? readPem(tls.clientCa, 'client_ca_file', problems, watch) : undefined;
  if (cert !== undefined && key !== undefined) {
    try {
      createSecureContext({ cert, key });
      const leaf = certificates(cert)[0];
      if (leaf && Date.parse(leaf.validTo) < now) {
        warnings.push(
          `the server certificate expired on ${leaf.validTo}: clients that verify it will refuse to connect`,
        );
      }
    } catch (err) {
      problems.push(
        `tls_server_config: the certificate and key cannot be served (${errorMessage(err)}); check that cert/cert_file and key/key_file are PEM and belong together`,
      );
    }
  }
  if (ca !== undefined) {
    try {
      if (certificates(ca).length === 0) throw new Error('no PEM certificate in it');
    } catch (err) {
      problems.push(`tls_server_config: the client CA is not usable: ${errorMessage(err)}`);
    }
  }
}

function tlsConfig(
  raw: RawTls,
  dir: string,
  problems: string[],
  warnings: string[],
  watch: string[],
  now: number,
): WebTlsConfig | undefined {
  // Whether the file asks for TLS at all: exporter-toolkit's TLSConfig.IsEnabled.
  const enabled = [
    raw.cert,
    raw.key,
    raw.cert_file,
    raw.key_file,
    raw.client_ca,
    raw.client_ca_file,
    raw.client_auth_type,
  ].some((v) => v !== undefined);
  if (!enabled) return undefined;
  const cert = pemSource(raw.cert, raw.cert_file, ['cert', 'cert_file'], dir, problems);
  const key = pemSource(raw.key, raw.key_file, ['key', 'key_file'], dir, problems);
  const clientCa = pemSource(
    raw.client_ca,
    raw.client_ca_file,
    ['client_ca', 'client_ca_file'],
    dir,
    problems,
  );
  if (raw.cert === undefined && raw.cert_file === undefined)
    problems.push('tls_server_config: missing one of cert or cert_file');
  if (raw.key === undefined && raw.key_file === undefined)
    problems.push('tls_server_config: missing one of key or key_file');
  const clientAuth = clientAuthType(raw.client_auth_type, problems);
  if (clientAuth === undefined) return undefined;
  if (clientCa && clientAuth === 'NoClientCert') {
    problems.push(
      "client CA's have been configured without a Client Auth Policy: set tls_server_config.client_auth_type to RequireAndVerifyClientCert",
    );
  }
  if (
    !clientCa &&
    (clientAuth === 'RequireAndVerifyClientCert' || clientAuth === 'VerifyClientCertIfGiven')
  ) {
    // As Go, verified against the system's public roots: valid, but rarely what is meant.
    warnings.push(
      `client_auth_type ${clientAuth} without client_ca_file verifies client certificates against the public CAs: any certificate they issued passes the handshake (it does not count as authentication for write endpoints); set client_ca_file to the CA that signs your clients' certificates`,
    );
  }
  if (
    raw.client_allowed_sans !== undefined &&
    clientAuth !== 'RequireAnyClientCert' &&
    clientAuth !== 'RequireAndVerifyClientCert'
  ) {
    problems.push(
      `client_allowed_sans needs client_auth_type RequireAndVerifyClientCert (or RequireAnyClientCert): with ${clientAuth} a client may connect without a certificate, leaving no SAN to match`,
    );
  }
  const minVersion = VERSIONS[raw.min_version ?? 'TLS12'] ?? 'TLSv1.2';
  const maxVersion = VERSIONS[raw.max_version ?? 'TLS13'] ?? 'TLSv1.3';
  if (VERSION_ORDER.indexOf(minVersion) > VERSION_ORDER.indexOf(maxVersion)) {
    problems.push(
      `tls_server_config: min_version ${raw.min_version ?? 'TLS12'} is above max_version ${raw.max_version ?? 'TLS13'}`,
    );
  }
  const ciphers = (raw.cipher_suites ?? [])
    .map((name) => CIPHERS[name])
    .filter((c): c is string => c !== undefined);
  if (!cert || !key) return undefined;
  const tls: WebTlsConfig = {
    cert,
    key,
    ...(clientCa ? { clientCa } : {}),
    clientAuth,
    ...(raw.client_allowed_sans ? { clientAllowedSans: raw.client_allowed_sans } : {}),
    minVersion,
    maxVersion,
    ...(ciphers.length > 0 ? { ciphers: ciphers.join(':') } : {}),
    honorCipherOrder: raw.prefer_server_cipher_suites ?? true,
    ...(raw.curve_preferences && raw.curve_preferences.length > 0
      ? { ecdhCurve: raw.curve_preferences.map((c) => CURVES[c]).join(':') }
      : {}),
  };
  checkPems(tls, problems, warnings, watch, now);
  return tls;
}

function users(raw: RawWebConfig['basic_auth_users'], problems: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [user, hash] of Object.entries(raw)) {
    if (user.includes(':')) {
      problems.push(
        `basic_auth_users: user name ${JSON.stringify(user)} contains ":", which basic authentication cannot send`,
      );
      continue;
    }
    const m = BCRYPT_RE.exec(hash ?? '');
    const cost = Number(m?.[1]);
    if (!m || cost < 4 || cost > 31) {
      problems.push(
        `basic_auth_users.${user}: not a bcrypt hash ($2a$, $2b$ or $2y$, cost 4-31); create one with \`htpasswd -nBC 10 "" | tr -d ':\\n'\``,
      );
      continue;
    }
    out[user] = hash ?? '';
  }
  return out;
}

/** Validates the parsed YAML of a web configuration file found at `file`. */
export function parseWebConfig(value: unknown, file: string, now = Date.now()): WebConfig {
  const parsed = webConfigSchema.safeParse(value ?? {});
  if (!parsed.success) {
    throw new WebConfigError(
      file,
      parsed.error.issues.map((issue) => {
        const path = issue.path.map(String).join('.');
        if (issue.code === 'unrecognized_keys') {
          return issue.keys
            .map(
              (k) =>
                `${path ? `${path}.` : ''}${k}: unknown key (exporter-toolkit's web configuration has no such key)`,
            )
            .join('; ');
        }
        return `${path || '(top level)'}: ${issue.message}`;
      }),
    );
  }
  const raw = parsed.data;
  const problems: string[] = [];
  const warnings: string[] = [];
  const watch: string[] = [file];
  const tls = raw.tls_server_config
    ? tlsConfig(raw.tls_server_config, dirname(file), problems, warnings, watch, now)
    : undefined;
  const userHashes = users(raw.basic_auth_users, problems);
  const headers = Object.fromEntries(
    Object.entries(raw.http_server_config?.headers ?? {}).filter(
      (e): e is [string, string] => e[1] !== undefined,
    ),
  );
  const intervalMs = raw.rate_limit?.interval ?? 0;
  const burst = raw.rate_limit?.burst ?? 0;
  if (intervalMs > 0 && burst < 1) {
    warnings.push(
      'rate_limit.burst is 0 with an interval set: every request is refused with 429 (as exporter-toolkit does); set burst to at least 1',
    );
  }
  if (problems.length > 0) throw new WebConfigError(file, problems);
  if (!tls && Object.keys(userHashes).length > 0) {
    warnings.push(
      'basic_auth_users without tls_server_config: passwords cross the network in clear text; add cert_file and key_file',
    );
  }
  return {
    file,
    ...(tls ? { tls } : {}),
    users: userHashes,
    headers,
    http2: raw.http_server_config?.http2 ?? true,
    ...(intervalMs > 0 ? { rateLimit: { intervalMs, burst } } : {}),
    watch,
    warnings,
  };
}

/**
 * Reads and validates an exporter-toolkit web configuration file (`--web.config.file`), checking
 * the certificates it names as exporter-toolkit's Validate does. Throws WebConfigError.
 */
export function loadWebConfigFile(path: string, now = Date.now()): WebConfig {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new WebConfigError(file, [`cannot read the web configuration: ${errorMessage(err)}`]);
  }
  // Loaded on use, as agent/config.ts loads it: only a process that reads a file pays for it.
  const { parseDocument } = createRequire(import.meta.url)('yaml') as typeof Yaml;
  // Every scalar as written; the schema converts each by its key's type (see NULLS above).
  const doc = parseDocument(text, { schema: 'failsafe', uniqueKeys: true });
  if (doc.errors.length > 0)
    throw new WebConfigError(
      file,
      doc.errors.map((e) => e.message),
    );
  return parseWebConfig(doc.toJS(), file, now);
}
