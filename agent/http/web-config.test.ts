import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { loadWebConfigFile, parseGoDuration, WebConfigError } from './web-config.js';

const TOOLKIT = join(import.meta.dirname, 'fixtures', 'exporter-toolkit');
const at = (name: string) => join(TOOLKIT, name);

function problems(path: string): string[] {
  try {
    loadWebConfigFile(path);
  } catch (err) {
    if (err instanceof WebConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

/** A web config file with `text` in a fresh folder, next to copies of the toolkit's PEMs. */
function file(text: string, name = 'web.yml'): string {
  const dir = mkdtempSync(join(tmpdir(), 'gpulse-webcfg-'));
  for (const pem of ['server.crt', 'server.key', 'client_selfsigned.pem', 'tls-ca-chain.pem']) {
    writeFileSync(join(dir, pem), readFileSync(at(pem)));
  }
  writeFileSync(join(dir, name), text);
  return join(dir, name);
}

// exporter-toolkit's own test table (web/tls_config_test.go): each file with the error its
// tests expect (their ErrorMap patterns), run through gpulse's loader.
describe("exporter-toolkit's test files", () => {
  const refused: [string, RegExp][] = [
    ['web_config_junk.yml', /\(top level\)/],
    ['web_config_junk_key.yml', /cert_filse: unknown key/],
    ['web_config_noAuth_certPath_empty.bad.yml', /missing one of cert or cert_file/],
    ['web_config_noAuth_cert_empty.bad.yml', /missing one of cert or cert_file/],
    ['web_config_noAuth_keyPath_empty.bad.yml', /missing one of key or key_file/],
    ['web_config_noAuth_key_empty.bad.yml', /missing one of key or key_file/],
    ['web_config_noAuth_certPath_keyPath_empty.bad.yml', /missing one of cert or cert_file/],
    ['web_config_noAuth_certPath_invalid.bad.yml', /no such file/],
    ['web_config_noAuth_keyPath_invalid.bad.yml', /no such file/],
    ['web_config_noAuth_certPath_keyPath_invalid.bad.yml', /no such file/],
    ['web_config_noAuth.bad.yml', /client CA's have been configured without a Client Auth Policy/],
    ['web_config_auth_clientCAs_invalid.bad.yml', /no such file/],
    ['web_config_auth_user_list_invalid.bad.yml', /basic_auth_users\.john: not a bcrypt hash/],
    ['web_config_noAuth_inventedCiphers.bad.yml', /unknown cipher/],
    ['web_config_noAuth_inventedCurves.bad.yml', /unknown curve/],
    ['web_config_noAuth_wrongTLSVersion.bad.yml', /unknown TLS version/],
    ['web_config_headers_content_type_options.bad.yml', /invalid value for/],
    ['web_config_headers_frame_options.bad.yml', /invalid value for/],
    ['web_config_headers_extra_header.bad.yml', /HTTP header ".*" can not be configured/],
  ];
  it.each(refused)('refuses %s naming the problem', (name, pattern) => {
    const found = problems(at(name));
    expect(
      found.some((p) => pattern.test(p)),
      found.join('\n'),
    ).toBe(true);
  });

  it('refuses an invalid client_auth_type along with the missing certificate', () => {
    expect(problems(at('web_config_noAuth_certPath_keyPath_empty.bad.yml'))).toEqual([
      'tls_server_config: missing one of cert or cert_file',
      'tls_server_config: missing one of key or key_file',
      expect.stringMatching(/invalid client_auth_type "x"/),
    ]);
  });

  const accepted = [
    'web_config_empty.yml',
    'web_config_noAuth.good.yml',
    'web_config_noAuth.good.blocking.yml',
    'web_config_noAuth_tlsInline.good.yml',
    'web_config_noAuth_allCiphers.good.yml',
    'web_config_noAuth_someCiphers.good.yml',
    'web_config_noAuth_someCiphers_noOrder.good.yml',
    'web_config_noAuth_allCurves.good.yml',
    'web_config_noAuth_someCurves.good.yml',
    'web_config_noAuth_noHTTP2.good.yml',
    'web_config_headers.good.yml',
    'tls_config_noAuth.requireanyclientcert.good.yml',
    'tls_config_noAuth.requireanyclientcertkeyinline.good.yml',
    'tls_config_noAuth.requireandverifyclientcert.good.yml',
    'web_config_auth_client_san.good.yaml',
    'web_config_auth_client_san.bad.yaml', // refused at the handshake, not at load
    'web_config_users.good.yml',
    'web_config_users_noTLS.good.yml',
    'web_config_rate_limiter_nonblocking.yaml',
    'web_config_rate_limiter_one_second.yaml',
    // Go's HTTP/2 server wants an HTTP/2 cipher; gpulse serves HTTP/1.1 (README "Security").
    'web_config_noAuth_noHTTP2Cipher.bad.yml',
  ];
  it.each(accepted)('accepts %s', (name) => {
    expect(problems(at(name))).toEqual([]);
  });

  it('translates every key of a TLS file into what Node takes', () => {
    const web = loadWebConfigFile(at('web_config_noAuth_someCiphers_noOrder.good.yml'));
    expect(web.tls).toEqual({
      cert: { file: at('server.crt') },
      key: { file: at('server.key') },
      clientAuth: 'VerifyClientCertIfGiven',
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256',
      honorCipherOrder: false,
    });
    expect(web.watch).toEqual([
      at('web_config_noAuth_someCiphers_noOrder.good.yml'),
      at('server.crt'),
      at('server.key'),
    ]);
    expect(web.users).toEqual({});
    expect(web.http2).toBe(true);
    expect(web.rateLimit).toBeUndefined();
  });

  it('maps every cipher suite name Go accepts to one OpenSSL knows', () => {
    const web = loadWebConfigFile(at('web_config_noAuth_allCiphers.good.yml'));
    // The three TLS 1.3 suites are accepted and, as in Go, change nothing.
    expect(web.tls?.ciphers?.split(':')).toEqual([
      'ECDHE-ECDSA-AES128-GCM-SHA256',
      'ECDHE-ECDSA-AES256-GCM-SHA384',
      'ECDHE-RSA-AES128-GCM-SHA256',
      'ECDHE-RSA-AES256-GCM-SHA384',
      'ECDHE-ECDSA-CHACHA20-POLY1305',
      'ECDHE-RSA-CHACHA20-POLY1305',
      'ECDHE-ECDSA-AES128-SHA',
      'ECDHE-ECDSA-AES256-SHA',
      'ECDHE-RSA-AES128-SHA',
      'ECDHE-RSA-AES256-SHA',
    ]);
    // OpenSSL refuses a list in which it knows none of the names.
    for (const c of web.tls?.ciphers?.split(':') ?? []) {
      expect(() => createSecureContext({ ciphers: c })).not.toThrow();
    }
    const rsa = file(
      [
        'tls_server_config:',
        '  cert_file: server.crt',
        '  key_file: server.key',
        '  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA, TLS_RSA_WITH_AES_256_CBC_SHA,',
        '    TLS_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_256_GCM_SHA384]',
      ].join('\n'),
    );
    expect(loadWebConfigFile(rsa).tls?.ciphers).toBe(
      'AES128-SHA:AES256-SHA:AES128-GCM-SHA256:AES256-GCM-SHA384',
    );
  });

  it('maps the curves and versions', () => {
    const all = loadWebConfigFile(at('web_config_noAuth_allCurves.good.yml'));
    expect(all.tls?.ecdhCurve).toBe('P-256:P-384:P-521:X25519');
    const some = loadWebConfigFile(at('web_config_noAuth_someCurves.good.yml'));
    expect(some.tls).toMatchObject({ ecdhCurve: 'P-521', minVersion: 'TLSv1.3' });
  });

  it('reads inline PEMs and a mix of inline key and certificate file', () => {
    const inline = loadWebConfigFile(at('web_config_noAuth_tlsInline.good.yml'));
    expect(inline.tls?.cert).toEqual({ inline: expect.stringContaining('BEGIN CERTIFICATE') });
    expect(inline.tls?.key).toEqual({ inline: expect.stringContaining('PRIVATE KEY') });
    expect(inline.watch).toEqual([at('web_config_noAuth_tlsInline.good.yml')]);
    const mixed = loadWebConfigFile(at('tls_config_noAuth.requireanyclientcertkeyinline.good.yml'));
    expect(mixed.tls).toMatchObject({
      cert: { file: at('server.crt') },
      key: { inline: expect.stringContaining('PRIVATE KEY') },
      clientAuth: 'RequireAnyClientCert',
    });
  });

  it('keeps the users, the headers and the client SAN list', () => {
    const users = loadWebConfigFile(at('web_config_users.good.yml'));
    expect(Object.keys(users.users)).toEqual(['alice', 'bob', 'carol', 'dave']);
    expect(users.users.alice).toBe('$2y$12$1DpfPeqF9HzHJt.EWswy1exHluGfbhnn3yXhR7Xes6m3WJqFg0Wby');
    expect(users.warnings).toEqual([]);
    const noTls = loadWebConfigFile(at('web_config_users_noTLS.good.yml'));
    expect(noTls.tls).toBeUndefined();
    expect(noTls.warnings).toEqual([expect.stringMatching(/clear text/)]);
    const headers = loadWebConfigFile(at('web_config_headers.good.yml'));
    expect(headers.headers).toEqual({
      'X-Frame-Options': 'deny',
      'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
      'X-Content-Type-Options': 'nosniff',
      'X-XSS-Protection': '1',
      'Content-Security-Policy': "default-src 'self' *.test.example.net",
    });
    const san = loadWebConfigFile(at('web_config_auth_client_san.good.yaml'));
    expect(san.tls?.clientAllowedSans).toEqual(['one', 'test3', 'two']);
    expect(san.tls?.clientCa).toEqual({ file: at('client2_selfsigned.pem') });
  });

  it('warns where exporter-toolkit accepts what is rarely meant', () => {
    expect(loadWebConfigFile(at('web_config_noAuth.good.yml')).warnings).toEqual([
      expect.stringMatching(/VerifyClientCertIfGiven without client_ca_file .* public CAs/),
    ]);
    const oneSecond = loadWebConfigFile(at('web_config_rate_limiter_one_second.yaml'));
    expect(oneSecond.rateLimit).toEqual({ intervalMs: 1000, burst: 0 });
    expect(oneSecond.warnings).toEqual([expect.stringMatching(/every request is refused/)]);
    expect(loadWebConfigFile(at('web_config_rate_limiter_nonblocking.yaml')).rateLimit).toBe(
      undefined,
    );
  });

  it('warns about an expired server certificate', () => {
    const later = Date.parse('2080-01-01T00:00:00Z');
    const curves = at('web_config_noAuth_someCurves.good.yml');
    expect(loadWebConfigFile(curves, later).warnings).toContainEqual(
      expect.stringMatching(/server certificate expired on Jun 25 09:15:07 2072 GMT/),
    );
    expect(loadWebConfigFile(curves).warnings).not.toContainEqual(expect.stringMatching(/expired/));
  });
});

describe('web configuration files of our own', () => {
  it('resolves relative paths against the file and YAML 1.1 booleans as Go does', () => {
    const path = file(
      [
        'tls_server_config:',
        '  cert_file: server.crt',
        '  key_file: ./server.key',
        '  client_ca_file: client_selfsigned.pem',
        '  client_auth_type: RequireClientCert',
        '  client_allowed_sans: ["prometheus.monitoring.svc", "::1"]',
        '  prefer_server_cipher_suites: no',
        'http_server_config:',
        '  http2: off',
        '  headers:',
        '    X-Frame-Options: ""',
        '    X-XSS-Protection: 1',
        'rate_limit: {interval: 1m30s, burst: 5}',
        'basic_auth_users: ~',
      ].join('\n'),
    );
    const dir = join(path, '..');
    const web = loadWebConfigFile(path);
    expect(web).toMatchObject({
      file: path,
      tls: {
        cert: { file: join(dir, 'server.crt') },
        key: { file: join(dir, 'server.key') },
        clientCa: { file: join(dir, 'client_selfsigned.pem') },
        clientAuth: 'RequireAnyClientCert',
        clientAllowedSans: ['prometheus.monitoring.svc', '::1'],
        honorCipherOrder: false,
      },
      http2: false,
      headers: { 'X-XSS-Protection': '1' },
      users: {},
      rateLimit: { intervalMs: 90_000, burst: 5 },
    });
    expect(web.watch).toEqual([
      path,
      join(dir, 'server.crt'),
      join(dir, 'server.key'),
      join(dir, 'client_selfsigned.pem'),
    ]);
  });

  it('refuses what cannot work, naming the key and the fix', () => {
    const hash = '$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi';
    const cases: [string, RegExp][] = [
      [
        'tls_server_config: {cert_file: server.crt, cert: "x", key_file: server.key}',
        /set cert or cert_file, not both/,
      ],
      [
        'tls_server_config: {cert_file: server.crt, key_file: server.key, min_version: TLS13, max_version: TLS12}',
        /min_version TLS13 is above max_version TLS12/,
      ],
      [
        'tls_server_config: {cert_file: server.crt, key_file: server.key, client_ca_file: tls-ca-chain.pem, client_auth_type: VerifyClientCertIfGiven, client_allowed_sans: [a]}',
        /client_allowed_sans needs client_auth_type RequireAndVerifyClientCert/,
      ],
      [
        'tls_server_config: {cert_file: server.crt, key_file: client_selfsigned.pem}',
        /the certificate and key cannot be served/,
      ],
      [
        'tls_server_config: {cert_file: server.crt, key_file: server.key, client_auth_type: RequireAndVerifyClientCert, client_ca_file: server.key}',
        /the client CA is not usable: no PEM certificate in it/,
      ],
      [
        'tls_server_config: {cert_file: server.crt, key_file: server.key, prefer_server_cipher_suites: maybe}',
        /prefer_server_cipher_suites: expected true or false, got "maybe"/,
      ],
      [`basic_auth_users: {"a:b": "${hash}"}`, /contains ":"/],
      [
        `basic_auth_users: {alice: "${hash.replace('$2y$', '$2x$')}"}`,
        /basic_auth_users\.alice: not a bcrypt hash .*htpasswd -nBC 10/,
      ],
      [`basic_auth_users: {alice: "${hash.replace('$10$', '$03$')}"}`, /cost 4-31/],
      ['basic_auth_users: {alice: }', /basic_auth_users\.alice: not a bcrypt hash/],
      ['rate_limit: {interval: 1d, burst: 1}', /rate_limit\.interval: expected a Go duration/],
      ['rate_limit: {interval: 1s, burst: many}', /rate_limit\.burst: expected an integer/],
      ['tls_config: {cert_file: x}', /tls_config: unknown key/],
      ['tls_server_config: [a, b]', /tls_server_config: /],
      ['tls_server_config: {cert_file: server.crt, key_file: server.key', /./],
      ['basic_auth_users: {a: x}\nbasic_auth_users: {b: y}', /unique|duplicate/i],
    ];
    for (const [text, pattern] of cases) {
      const found = problems(file(text));
      expect(
        found.some((p) => pattern.test(p)),
        `${text}\n→ ${found.join('\n')}`,
      ).toBe(true);
    }
  });

  it('says which file could not be read', () => {
    const missing = join(tmpdir(), 'gpulse-no-such-web-config.yml');
    expect(() => loadWebConfigFile(missing)).toThrow(
      `${missing}: cannot read the web configuration: ENOENT`,
    );
  });

  it('reads a bare number as nanoseconds, as Go decodes a time.Duration', () => {
    expect(
      loadWebConfigFile(file('rate_limit: {interval: 250000000, burst: 2}')).rateLimit,
    ).toEqual({ intervalMs: 250, burst: 2 });
  });
});

describe('parseGoDuration', () => {
  it('parses what time.ParseDuration parses', () => {
    expect(parseGoDuration('0')).toBe(0);
    expect(parseGoDuration('1s')).toBe(1000);
    expect(parseGoDuration('100ms')).toBe(100);
    expect(parseGoDuration('1.5h')).toBe(5_400_000);
    expect(parseGoDuration('1h2m3s')).toBe(3_723_000);
    expect(parseGoDuration('2us')).toBeCloseTo(0.002);
    expect(parseGoDuration('2µs')).toBeCloseTo(0.002);
    expect(parseGoDuration('500ns')).toBeCloseTo(0.0005);
    expect(parseGoDuration('.5s')).toBe(500);
  });

  it('refuses what it does not, and negative durations (no interval is negative)', () => {
    for (const bad of ['', '1', '1d', '-1s', 's', '1 s', '1sx']) {
      expect(parseGoDuration(bad), bad).toBeUndefined();
    }
  });
});
