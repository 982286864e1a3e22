// The web app serves what a web configuration file says, checked with real TLS clients on a real
// port: exporter-toolkit's runtime test cases (web/tls_config_test.go, handler_test.go) on its own
// test files, then gpulse's write-endpoint policy, reload, connection cap and timeouts.
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { call, statusOf, type CallOptions } from '../../test/helpers/https-client.js';
import { captureLogger, silentLogger } from '../../test/helpers/log-sink.js';
import { createTestPki } from '../../test/helpers/pki.js';
import { describeWithTools, tools } from '../../test/helpers/tools.js';
import { HttpCounters } from './http-metrics.js';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from './limits.js';
import { createWebApp, isLoopbackHost, type WebAppOptions } from './web-app.js';
import { loadWebConfigFile } from './web-config.js';

const TOOLKIT = join(import.meta.dirname, 'fixtures', 'exporter-toolkit');
const at = (name: string) => join(TOOLKIT, name);
const pem = (name: string) => readFileSync(at(name));

/**
 * A TLS client of the toolkit's server certificate. Its CA (tls-ca-chain.pem) is an X.509 v1
 * certificate that OpenSSL 3 refuses as an anchor for a server (INVALID_PURPOSE), where Go's
 * client accepts it; these tests check what the server does, so the client skips that check.
 */
const tls = (extra: CallOptions['tls'] = {}): CallOptions['tls'] => ({
  rejectUnauthorized: false,
  ...extra,
});
const clientCert = (name: 'client_selfsigned' | 'client2_selfsigned') => ({
  cert: pem(`${name}.pem`),
  key: pem(`${name}.key`),
});

const apps: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

/** Starts a web app on a free loopback port with a GET / and a POST /w route. */
async function serve(
  options: Partial<WebAppOptions> & { file?: string; limits?: HttpLimits } = {},
): Promise<{ port: number; counters: HttpCounters; release: () => void; hanging: () => number }> {
  const counters = options.counters ?? new HttpCounters();
  const app = createWebApp({
    log: options.log ?? silentLogger(),
    ...(options.file ? { web: loadWebConfigFile(options.file) } : {}),
    ...options,
    counters,
  });
  let release = () => {};
  let hanging = 0;
  const held = new Promise<void>((r) => (release = r));
  app.get('/', () => 'Hello World!');
  app.get('/healthz', () => ({ status: 'ok' }));
  app.get('/hang', async () => {
    hanging++;
    await held;
    return 'released';
  });
  app.post('/w', () => 'written');
  apps.push({ close: () => (release(), app.close()) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    counters,
    release,
    hanging: () => hanging,
  };
}

describe("exporter-toolkit's TLS cases", () => {
  it('serves TLS to a TLS client and refuses plain HTTP on the TLS port', async () => {
    const { port, counters } = await serve({ file: at('web_config_noAuth.good.yml') });
    const ok = await call(port, { tls: tls() });
    expect(ok).toMatchObject({ status: 200, body: 'Hello World!', protocol: 'TLSv1.3' });
    expect(statusOf(await call(port))).toMatch(/ECONNRESET|socket hang up|HPE_INVALID/);
    await vi.waitFor(() => expect(counters.count('tls_handshake')).toBe(1));
  });

  it('serves inline certificates', async () => {
    const { port } = await serve({ file: at('web_config_noAuth_tlsInline.good.yml') });
    expect(await call(port, { tls: tls() })).toMatchObject({ status: 200 });
  });

  it('keeps to min_version and max_version', async () => {
    const tls12 = await serve({ file: at('web_config_noAuth_someCiphers.good.yml') });
    expect(await call(tls12.port, { tls: tls({ maxVersion: 'TLSv1.2' }) })).toMatchObject({
      status: 200,
      protocol: 'TLSv1.2',
    });
    expect(statusOf(await call(tls12.port, { tls: tls({ minVersion: 'TLSv1.3' }) }))).toMatch(
      /EPROTO|ECONNRESET/,
    );
    const tls13 = await serve({ file: at('web_config_noAuth_someCurves.good.yml') });
    expect(statusOf(await call(tls13.port, { tls: tls({ maxVersion: 'TLSv1.2' }) }))).toMatch(
      /EPROTO|ECONNRESET/,
    );
  });

  it('offers only cipher_suites, in the server order unless prefer_server_cipher_suites is false', async () => {
    const serverOrder = await serve({ file: at('web_config_noAuth_someCiphers.good.yml') });
    // The server lists AES-128 first: with its preference, it wins over the client's.
    expect(
      await call(serverOrder.port, {
        tls: tls({ ciphers: 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256' }),
      }),
    ).toMatchObject({ status: 200, cipher: 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256' });
    const clientOrder = await serve({
      file: at('web_config_noAuth_someCiphers_noOrder.good.yml'),
    });
    // This one lists AES-256 first but lets the client choose.
    expect(
      await call(clientOrder.port, {
        tls: tls({ ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384' }),
      }),
    ).toMatchObject({ status: 200, cipher: 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256' });
    expect(
      statusOf(await call(serverOrder.port, { tls: tls({ ciphers: 'ECDHE-RSA-AES128-SHA' }) })),
    ).toMatch(/EPROTO|ECONNRESET/);
  });

  it('keeps to curve_preferences', async () => {
    const { port } = await serve({ file: at('web_config_noAuth_someCurves.good.yml') });
    expect(await call(port, { tls: tls({ ecdhCurve: 'P-521' }) })).toMatchObject({ status: 200 });
    expect(statusOf(await call(port, { tls: tls({ ecdhCurve: 'X25519' }) }))).toMatch(
      /EPROTO|ECONNRESET/,
    );
  });

  it('RequireAnyClientCert: any certificate, but one', async () => {
    const { port, counters } = await serve({
      file: at('tls_config_noAuth.requireanyclientcert.good.yml'),
    });
    expect(await call(port, { tls: tls(clientCert('client_selfsigned')) })).toMatchObject({
      status: 200,
    });
    expect(statusOf(await call(port, { tls: tls() }))).toMatch(/ECONNRESET|socket hang up/);
    expect(counters.count('client_certificate')).toBe(1);
    const inline = await serve({
      file: at('tls_config_noAuth.requireanyclientcertkeyinline.good.yml'),
    });
    expect(await call(inline.port, { tls: tls(clientCert('client_selfsigned')) })).toMatchObject({
      status: 200,
    });
  });

  it('RequireAndVerifyClientCert: only certificates the client CA signed', async () => {
    const { port, counters } = await serve({
      file: at('tls_config_noAuth.requireandverifyclientcert.good.yml'),
    });
    expect(await call(port, { tls: tls(clientCert('client_selfsigned')) })).toMatchObject({
      status: 200,
    });
    expect(statusOf(await call(port, { tls: tls(clientCert('client2_selfsigned')) }))).toMatch(
      /ECONNRESET|EPROTO|ERR_SSL/,
    );
    expect(statusOf(await call(port, { tls: tls() }))).toMatch(/ECONNRESET|EPROTO|ERR_SSL/);
    await vi.waitFor(() => expect(counters.count('tls_handshake')).toBe(2));
  });

  it('client_allowed_sans: a verified certificate must carry one of the names', async () => {
    const good = await serve({ file: at('web_config_auth_client_san.good.yaml') });
    expect(await call(good.port, { tls: tls(clientCert('client2_selfsigned')) })).toMatchObject({
      status: 200,
    });
    const bad = await serve({ file: at('web_config_auth_client_san.bad.yaml') });
    expect(statusOf(await call(bad.port, { tls: tls(clientCert('client2_selfsigned')) }))).toMatch(
      /ECONNRESET|socket hang up/,
    );
    expect(bad.counters.count('client_certificate')).toBe(1);
  });

  it('rate_limit: burst 0 refuses everything with 429, interval 0 nothing', async () => {
    const oneSecond = await serve({ file: at('web_config_rate_limiter_one_second.yaml') });
    expect(await call(oneSecond.port)).toMatchObject({ status: 429 });
    expect(oneSecond.counters.count('rate_limited')).toBe(1);
    const none = await serve({ file: at('web_config_rate_limiter_nonblocking.yaml') });
    for (let i = 0; i < 3; i++) expect(await call(none.port)).toMatchObject({ status: 200 });
  });

  it('adds the configured headers to every answer, refusals included', async () => {
    const { port } = await serve({ file: at('web_config_headers.good.yml') });
    const res = await call(port);
    expect(res).toMatchObject({
      status: 200,
      headers: {
        'x-frame-options': 'deny',
        'strict-transport-security': 'max-age=31536000; includeSubDomains',
        'x-content-type-options': 'nosniff',
        'x-xss-protection': '1',
        'content-security-policy': "default-src 'self' *.test.example.net",
      },
    });
    expect(await call(port, { path: '/nowhere' })).toMatchObject({
      status: 404,
      headers: { 'x-frame-options': 'deny' },
    });
  });

  it('basic auth: the right password, the wrong one, an unknown user, a poisoned cache', async () => {
    const { port, counters } = await serve({ file: at('web_config_users_noTLS.good.yml') });
    expect(await call(port, { auth: 'alice:alice123' })).toMatchObject({
      status: 200,
      body: 'Hello World!',
    });
    const wrong = await call(port, { auth: 'alice:alice1234' });
    expect(wrong).toMatchObject({ status: 401, headers: { 'www-authenticate': 'Basic' } });
    expect(await call(port)).toMatchObject({ status: 401 });
    expect(await call(port, { auth: 'fakeuser:fakepassword' })).toMatchObject({ status: 401 });
    expect(await call(port, { auth: 'fakeuser:fakepassword' })).toMatchObject({ status: 401 });
    // CVE-2022-46146: a user name that ends in alice's hash must not poison alice's verdicts.
    const hash = '$2y$12$1DpfPeqF9HzHJt.EWswy1exHluGfbhnn3yXhR7Xes6m3WJqFg0Wby';
    expect(await call(port, { auth: `alice${hash}:fakepassword` })).toMatchObject({
      status: 401,
    });
    const decoy = '$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi';
    expect(await call(port, { auth: `alice:${decoy}fakepassword` })).toMatchObject({
      status: 401,
    });
    // Cached: 150 concurrent logins each way get their verdicts without 150 bcrypts.
    const many = await Promise.all(
      Array.from({ length: 150 }, (_v, i) =>
        call(port, { auth: i % 2 === 0 ? 'alice:alice123' : 'alice:alice1234' }),
      ),
    );
    expect(many.map(statusOf)).toEqual(
      Array.from({ length: 150 }, (_v, i) => (i % 2 === 0 ? 200 : 401)),
    );
    expect(counters.count('unauthorized')).toBe(6 + 75);
  });

  it('keeps the open paths open and unlocks them for the right credentials', async () => {
    const { port } = await serve({
      file: at('web_config_users_noTLS.good.yml'),
      openPaths: ['/healthz'],
    });
    expect(await call(port, { path: '/healthz' })).toMatchObject({ status: 200 });
    expect(await call(port, { path: '/healthz', auth: 'alice:wrong' })).toMatchObject({
      status: 200,
    });
    expect(await call(port, { path: '/' })).toMatchObject({ status: 401 });
  });
});

describe('write endpoints', () => {
  const post = (port: number, extra: CallOptions = {}) =>
    call(port, { method: 'POST', path: '/w', body: '{}', ...extra });

  it('auto: refused on a non-loopback address without authentication, with how to enable them', async () => {
    const { port, counters } = await serve({ writes: { mode: 'auto', listenHost: '0.0.0.0' } });
    const res = await post(port);
    expect(res).toMatchObject({ status: 403, headers: { connection: 'close' } });
    const body = JSON.parse('body' in res ? res.body : '{}') as { error: string; message: string };
    expect(body.error).toBe('writes_disabled');
    expect(body.message).toMatch(/--web\.config\.file.*GPULSE_HTTP_WRITE_ENDPOINTS=open/);
    expect(await call(port)).toMatchObject({ status: 200 });
    expect(counters.count('writes_disabled')).toBe(1);
  });

  it('auto: allowed on loopback, and for authenticated clients elsewhere', async () => {
    const loopback = await serve({ writes: { mode: 'auto', listenHost: '127.0.0.1' } });
    expect(await post(loopback.port)).toMatchObject({ status: 200, body: 'written' });
    const users = await serve({
      file: at('web_config_users_noTLS.good.yml'),
      writes: { mode: 'auto', listenHost: '0.0.0.0' },
    });
    expect(await post(users.port)).toMatchObject({ status: 401 });
    expect(await post(users.port, { auth: 'alice:alice123' })).toMatchObject({ status: 200 });
  });

  it('auto: a client certificate counts only when the configured client CA signed it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpulse-webapp-'));
    for (const f of ['server.crt', 'server.key', 'client_selfsigned.pem']) {
      copyFileSync(at(f), join(dir, f));
    }
    writeFileSync(
      join(dir, 'web.yml'),
      'tls_server_config: {cert_file: server.crt, key_file: server.key, client_auth_type: VerifyClientCertIfGiven, client_ca_file: client_selfsigned.pem}\n',
    );
    const { port } = await serve({
      file: join(dir, 'web.yml'),
      writes: { mode: 'auto', listenHost: '::' },
    });
    expect(await post(port, { tls: tls() })).toMatchObject({ status: 403 });
    expect(await post(port, { tls: tls(clientCert('client_selfsigned')) })).toMatchObject({
      status: 200,
    });
    const publicCas = await serve({
      file: at('web_config_noAuth.good.yml'),
      writes: { mode: 'auto', listenHost: '0.0.0.0' },
    });
    expect(await post(publicCas.port, { tls: tls() })).toMatchObject({ status: 403 });
  });

  it('open and off', async () => {
    const open = await serve({ writes: { mode: 'open', listenHost: '0.0.0.0' } });
    expect(await post(open.port)).toMatchObject({ status: 200 });
    const off = await serve({ writes: { mode: 'off', listenHost: '127.0.0.1' } });
    const res = await post(off.port);
    expect(res).toMatchObject({ status: 403 });
    expect('body' in res && res.body).toMatch(/http\.writeEndpoints: off/);
  });

  it('knows loopback hosts', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) {
      expect(isLoopbackHost(h), h).toBe(true);
    }
    for (const h of ['0.0.0.0', '::', '', '10.0.0.1', '128.0.0.1', 'example.com']) {
      expect(isLoopbackHost(h), h).toBe(false);
    }
  });
});

describeWithTools('reloading the web configuration', tools('openssl'), () => {
  it('applies changed users and certificates to new connections; keeps the old on a bad change', async () => {
    const pki = createTestPki('reload');
    const first = pki.server('first');
    const dir = mkdtempSync(join(tmpdir(), 'gpulse-reload-'));
    copyFileSync(first.cert, join(dir, 'server.crt'));
    copyFileSync(first.key, join(dir, 'server.key'));
    const path = join(dir, 'web.yml');
    const write = (password: string) =>
      writeFileSync(
        path,
        `tls_server_config: {cert_file: server.crt, key_file: server.key}\nbasic_auth_users: {ops: "${bcrypt.hashSync(password, 4)}"}\n`,
      );
    write('one');
    const { log, records } = captureLogger('info');
    const { port, counters } = await serve({
      log,
      file: path,
      reload: () => Promise.resolve().then(() => loadWebConfigFile(path)),
      reloadIntervalMs: 50,
    });
    const client = { tls: { ca: pki.read(pki.ca.cert) } };
    const before = await call(port, { ...client, auth: 'ops:one' });
    expect(before).toMatchObject({ status: 200 });
    const firstSerial = 'serverSerial' in before ? before.serverSerial : '';

    write('two');
    await vi.waitFor(async () =>
      expect(statusOf(await call(port, { ...client, auth: 'ops:two' }))).toBe(200),
    );
    expect(statusOf(await call(port, { ...client, auth: 'ops:one' }))).toBe(401);

    // A rotated certificate (as cert-manager swaps a Secret) reaches new connections.
    const second = pki.server('second');
    copyFileSync(second.key, join(dir, 'server.key'));
    copyFileSync(second.cert, join(dir, 'server.crt'));
    await vi.waitFor(async () => {
      const after = await call(port, { ...client, auth: 'ops:two' });
      expect(after).toMatchObject({ status: 200 });
      expect('serverSerial' in after && after.serverSerial).not.toBe(firstSerial);
    });
    expect(counters.reloadOk).toBe(true);

    // A broken file is refused; the configuration in force stays.
    writeFileSync(path, 'basic_auth_users: {ops: nothash}\n');
    await vi.waitFor(() => expect(counters.reloadOk).toBe(false));
    expect(statusOf(await call(port, { ...client, auth: 'ops:two' }))).toBe(200);
    expect(records).toContainEqual(
      expect.objectContaining({
        level: 50,
        msg: expect.stringMatching(/refused; the previous one stays in force.*not a bcrypt hash/),
      }),
    );
    // So is dropping TLS, which a running server cannot do.
    writeFileSync(path, `basic_auth_users: {ops: "${bcrypt.hashSync('two', 4)}"}\n`);
    await vi.waitFor(() =>
      expect(records).toContainEqual(
        expect.objectContaining({ msg: expect.stringMatching(/HTTPS to HTTP needs a restart/) }),
      ),
    );
    expect(statusOf(await call(port, { ...client, auth: 'ops:two' }))).toBe(200);
  });
});

describe('connection cap and timeouts', () => {
  const limits = (over: Partial<HttpLimits>): HttpLimits => ({ ...DEFAULT_HTTP_LIMITS, ...over });

  /** Opens a raw TCP connection and waits until it is established. */
  const open = (port: number): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(s));
      s.on('error', reject);
    });
  const closed = (s: Socket) =>
    new Promise<void>((resolve) => {
      if (s.destroyed || s.readyState === 'closed') resolve();
      s.once('close', () => resolve());
    });

  it('closes the connection idle longest to admit a new one', async () => {
    const { port, counters } = await serve({ limits: limits({ maxConnections: 4 }) });
    const idle: Socket[] = [];
    for (let i = 0; i < 10; i++) {
      idle.push(await open(port));
      idle.at(-1)?.on('error', () => {});
    }
    // Once they have idled past the grace period, the oldest make room.
    await vi.waitFor(async () => expect(statusOf(await call(port))).toBe(200), { timeout: 5000 });
    // Beyond the cap, newcomers were turned away while the others were young; then the one
    // idle longest made room.
    await closed(idle[5]!);
    await closed(idle[0]!);
    expect(idle[3]!.destroyed).toBe(false);
    expect(counters.count('max_connections')).toBeGreaterThanOrEqual(6);
    expect(counters.count('evicted')).toBeGreaterThanOrEqual(1);
    for (const s of idle) s.destroy();
  });

  it('lets another client in at once: the client holding the most connections makes room', async () => {
    const { port, counters, hanging } = await serve({ limits: limits({ maxConnections: 4 }) });
    const idle = async () => {
      const s = await open(port);
      s.on('error', () => {});
      return s;
    };
    // One client holds every slot: two idle, two with a request in progress.
    const first = [await idle(), await idle()];
    const busy = [call(port, { path: '/hang' }), call(port, { path: '/hang' })];
    await vi.waitFor(() => expect(hanging()).toBe(2));
    // The same client gets no more (its connections are young) ...
    expect(statusOf(await call(port))).toMatch(/ECONNRESET|socket hang up/);
    // ... another one is served at once, in place of the first client's idle connection.
    expect(await call(port, { localAddress: '127.0.0.2' })).toMatchObject({ status: 200 });
    await closed(first[0]!);
    const refill = await idle();
    expect(await call(port, { localAddress: '127.0.0.2' })).toMatchObject({ status: 200 });
    await closed(first[1]!);
    expect(refill.destroyed).toBe(false);
    refill.destroy();
    // With only requests in progress, the longest-running one goes.
    const more = [call(port, { path: '/hang' }), call(port, { path: '/hang' })];
    await vi.waitFor(() => expect(hanging()).toBe(4));
    expect(await call(port, { localAddress: '127.0.0.2' })).toMatchObject({ status: 200 });
    expect(statusOf(await busy[0]!)).toMatch(/ECONNRESET|socket hang up/);
    expect(counters.count('evicted')).toBe(3);
    void Promise.all([busy[1], ...more]);
  });

  it('does the same on a TLS port, handshakes that never start included', async () => {
    const { port, counters } = await serve({
      file: at('web_config_noAuth.good.yml'),
      limits: limits({ maxConnections: 2 }),
    });
    const idle = [await open(port), await open(port), await open(port)];
    for (const s of idle) s.on('error', () => {});
    await closed(idle[2]!);
    await vi.waitFor(async () => expect(statusOf(await call(port, { tls: tls() }))).toBe(200), {
      timeout: 5000,
    });
    await closed(idle[0]!);
    expect(counters.count('evicted')).toBeGreaterThanOrEqual(1);
    for (const s of idle) s.destroy();
  });

  it('refuses new connections when every one is busy', async () => {
    const { port, counters, release, hanging } = await serve({
      limits: limits({ maxConnections: 3 }),
    });
    const busy = [1, 2, 3].map(() => call(port, { path: '/hang' }));
    await vi.waitFor(() => expect(hanging()).toBe(3));
    await vi.waitFor(async () =>
      expect(statusOf(await call(port))).toMatch(/ECONNRESET|socket hang up/),
    );
    expect(counters.count('max_connections')).toBeGreaterThanOrEqual(1);
    release();
    expect((await Promise.all(busy)).map(statusOf)).toEqual([200, 200, 200]);
    expect(counters.count('evicted')).toBe(0);
    expect(await call(port)).toMatchObject({ status: 200 });
  });

  it('disconnects a client that trickles its headers', async () => {
    const { port, counters } = await serve({
      limits: limits({ headersTimeout: 300, requestTimeout: 600 }),
    });
    const slow = await open(port);
    slow.on('error', () => {});
    slow.write('GET / HTTP/1.1\r\n');
    const timer = setInterval(() => slow.writable && slow.write('X-Slow: 1\r\n'), 50);
    let answer = '';
    slow.on('data', (d: Buffer) => (answer += d.toString()));
    await closed(slow);
    clearInterval(timer);
    expect(answer).toMatch(/^HTTP\/1\.1 408 Request Timeout/);
    expect(counters.count('timeout')).toBe(1);
  });
});
