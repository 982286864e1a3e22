import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and its key, as PEM files. */
export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

/** A throwaway certificate authority in a temp folder, made with the openssl CLI. */
export interface TestPki {
  readonly dir: string;
  readonly ca: CertFiles;
  /** A server certificate for localhost and 127.0.0.1 (and `sans` more), signed by the CA. */
  server(name: string, sans?: readonly string[]): CertFiles;
  /** A client certificate (extendedKeyUsage clientAuth) with these subject alternative names. */
  client(name: string, sans?: readonly string[]): CertFiles;
  /** PEM text of a file. */
  read(path: string): string;
}

function openssl(dir: string, args: readonly string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Creates a CA in a new temp folder (needs `openssl`, Debian package openssl). */
export function createTestPki(label = 'ca'): TestPki {
  const dir = mkdtempSync(join(tmpdir(), `gpulse-pki-${label}-`));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(dir, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    `/CN=gpulse test ${label}`,
  ]);
  const issue = (name: string, ext: string): CertFiles => {
    openssl(dir, [
      'req',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${name}`,
    ]);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    ]);
    return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  };
  return {
    dir,
    ca: { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') },
    server: (name, sans = []) =>
      issue(
        name,
        `subjectAltName=${['DNS:localhost', 'IP:127.0.0.1', ...sans].join(',')}\nextendedKeyUsage=serverAuth\n`,
      ),
    client: (name, sans = []) =>
      issue(
        name,
        `${sans.length > 0 ? `subjectAltName=${sans.join(',')}\n` : ''}extendedKeyUsage=clientAuth\n`,
      ),
    read: (path) => readFileSync(path, 'utf8'),
  };
}
