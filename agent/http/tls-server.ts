import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import type { Server as TlsServer, TLSSocket, TlsOptions } from 'node:tls';
import type { PemSource, WebTlsConfig } from './web-config-types.js';

function pem(source: PemSource): string {
  return 'inline' in source ? source.inline : readFileSync(source.file, 'utf8');
}

/** The TLS options of a server that serves `tls` (reads the PEM files now). */
export function tlsServerOptions(tls: WebTlsConfig): TlsOptions {
  // OpenSSL verifies the chain only when the client must present a verified certificate;
  // the other policies are checked after the handshake (clientCertificateProblem).
  const verify = tls.clientAuth === 'RequireAndVerifyClientCert';
  return {
    cert: pem(tls.cert),
    key: pem(tls.key),
    ...(tls.clientCa ? { ca: pem(tls.clientCa) } : {}),
    requestCert: tls.clientAuth !== 'NoClientCert',
    rejectUnauthorized: verify,
    minVersion: tls.minVersion,
    maxVersion: tls.maxVersion,
    ...(tls.ciphers ? { ciphers: tls.ciphers } : {}),
    honorCipherOrder: tls.honorCipherOrder,
    ...(tls.ecdhCurve ? { ecdhCurve: tls.ecdhCurve } : {}),
  };
}

/**
 * Applies a reloaded `tls` to a running server: new connections get the new certificate, CA and
 * client policy; connections already open keep theirs (as with exporter-toolkit, which reads the
 * file at each handshake).
 */
export function applyTlsOptions(server: TlsServer, tls: WebTlsConfig): void {
  const options = tlsServerOptions(tls);
  server.setSecureContext(options);
  // Not part of the secure context: tls.Server reads them per connection.
  const policy = server as unknown as { requestCert: boolean; rejectUnauthorized: boolean };
  policy.requestCert = options.requestCert === true;
  policy.rejectUnauthorized = options.rejectUnauthorized === true;
}

/** An IP address in one spelling (IPv6 compressed and lower case), anything else as is. */
function canonical(value: string): string {
  return isIPv6(value) ? new URL(`http://[${value}]/`).hostname.slice(1, -1) : value;
}

/**
 * The subject alternative names of a certificate as Node prints them ("DNS:a, IP Address:b,
 * URI:c, email:d"; values with separators in them JSON-quoted): the values of DNS, IP, email and
 * URI entries, the kinds exporter-toolkit matches.
 */
export function subjectAltNames(text: string | undefined): string[] {
  if (!text) return [];
  const out: string[] = [];
  const re = /(DNS|IP Address|email|URI|[A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;
  for (let m = re.exec(text); m !== null && m[0] !== ''; m = re.exec(text)) {
    const kind = m[1];
    let value = m[2] ?? '';
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        continue;
      }
    }
    if (kind === 'DNS' || kind === 'email' || kind === 'URI') out.push(value);
    else if (kind === 'IP Address') out.push(canonical(value));
  }
  return out;
}

/**
 * Why a TLS connection must be closed under the client_auth_type and client_allowed_sans of
 * `tls`, or undefined when it may go on. OpenSSL enforces RequireAndVerifyClientCert itself;
 * Node has no hook during the handshake for the others, so they are checked right after it,
 * before any request is read.
 */
export function clientCertificateProblem(socket: TLSSocket, tls: WebTlsConfig): string | undefined {
  const cert = socket.getPeerX509Certificate();
  switch (tls.clientAuth) {
    case 'NoClientCert':
    case 'RequestClientCert':
      break;
    case 'RequireAnyClientCert':
      if (!cert) return 'no client certificate (client_auth_type RequireAnyClientCert)';
      break;
    case 'VerifyClientCertIfGiven':
    case 'RequireAndVerifyClientCert':
      if (!cert && tls.clientAuth === 'RequireAndVerifyClientCert') {
        return 'no client certificate (client_auth_type RequireAndVerifyClientCert)';
      }
      if (cert && !socket.authorized) {
        return `the client certificate is not signed by the client CA (${String(socket.authorizationError)})`;
      }
      break;
  }
  if (tls.clientAllowedSans && cert) {
    const allowed = new Set(tls.clientAllowedSans.map(canonical));
    const sans = subjectAltNames(cert.subjectAltName);
    if (!sans.some((s) => allowed.has(s))) {
      return `the client certificate has none of the subject alternative names in client_allowed_sans (it has ${sans.join(', ') || 'none'})`;
    }
  }
  return undefined;
}
