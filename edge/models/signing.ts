import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  canonicalBytes,
  ManifestError,
  parseEnvelope,
  parseSignedManifest,
  type ManifestEnvelope,
  type SignedManifest,
} from './manifest.js';

/** File names `gpulse model keygen` writes. */
export const PRIVATE_KEY_FILE = 'model-signing.key';
/** File name of the public half, to copy to devices. */
export const PUBLIC_KEY_FILE = 'model-signing.pub';

/** A trusted public key and its id. */
export interface TrustedKey {
  readonly keyid: string;
  readonly key: KeyObject;
  /** Where it was read from, for messages. */
  readonly source: string;
}

/** Key id: SHA-256 of the raw 32-byte ed25519 public key, hex. */
export function keyId(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string')
    throw new Error('not an ed25519 public key');
  return createHash('sha256').update(Buffer.from(jwk.x, 'base64url')).digest('hex');
}

/** Writes a new ed25519 key pair: the private key with mode 0600, the public key with 0644. */
export async function generateKeyPair(
  dir: string,
): Promise<{ privatePath: string; publicPath: string; keyid: string }> {
  await mkdir(dir, { recursive: true });
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const privatePath = join(dir, PRIVATE_KEY_FILE);
  const publicPath = join(dir, PUBLIC_KEY_FILE);
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' });
  // `wx`: never overwrite an existing signing key; mode applies at creation (umask may narrow it).
  await writeFile(privatePath, pem, { mode: 0o600, flag: 'wx' });
  await chmod(privatePath, 0o600);
  await writeFile(publicPath, publicKey.export({ format: 'pem', type: 'spki' }), {
    mode: 0o644,
    flag: 'wx',
  });
  return { privatePath, publicPath, keyid: keyId(publicKey) };
}

/** Reads a PEM ed25519 private key. */
export async function readPrivateKey(path: string): Promise<KeyObject> {
  const key = createPrivateKey(await readFile(path));
  if (key.asymmetricKeyType !== 'ed25519')
    throw new Error(
      `${path} is a ${key.asymmetricKeyType ?? 'unknown'} key; gpulse signs with ed25519 (gpulse model keygen)`,
    );
  return key;
}

/** Reads trusted PEM ed25519 public keys. */
export async function readTrustedKeys(paths: readonly string[]): Promise<TrustedKey[]> {
  const out: TrustedKey[] = [];
  for (const path of paths) {
    let key: KeyObject;
    try {
      key = createPublicKey(await readFile(path));
    } catch (err) {
      throw new Error(`cannot read trusted key ${path}: ${(err as Error).message}`, { cause: err });
    }
    if (key.asymmetricKeyType !== 'ed25519')
      throw new Error(
        `trusted key ${path} is not an ed25519 public key (use model-signing.pub from gpulse model keygen)`,
      );
    out.push({ keyid: keyId(key), key, source: path });
  }
  return out;
}

/** Signs a manifest body. */
export function signManifest(signed: SignedManifest, privateKey: KeyObject): ManifestEnvelope {
  const publicKey = createPublicKey(privateKey);
  const sig = sign(null, canonicalBytes(signed), privateKey).toString('base64');
  return { signed, signatures: [{ keyid: keyId(publicKey), sig }] };
}

/**
 * Parses and verifies a served manifest: at least one signature by a trusted key must verify over
 * the canonical bytes of `signed`, and only then is the body validated and returned.
 */
export function verifyManifest(text: string, trusted: readonly TrustedKey[]): ManifestEnvelope {
  const envelope = parseEnvelope(text);
  const bytes = canonicalBytes(envelope.signed);
  const byId = new Map(trusted.map((k) => [k.keyid, k]));
  let known = 0;
  for (const s of envelope.signatures) {
    const key = byId.get(s.keyid);
    if (!key) continue;
    known++;
    let ok: boolean;
    try {
      ok = verify(null, bytes, key.key, Buffer.from(s.sig, 'base64'));
    } catch {
      ok = false;
    }
    if (ok)
      return { signed: parseSignedManifest(envelope.signed), signatures: envelope.signatures };
  }
  if (known === 0) {
    throw new ManifestError(
      'unknown_key',
      `manifest is signed by key ${envelope.signatures.map((s) => s.keyid.slice(0, 16)).join(', ')}, which is not trusted here (trusted: ${trusted.map((k) => `${k.keyid.slice(0, 16)} from ${k.source}`).join(', ') || 'none'}); add the publisher's model-signing.pub to --trust`,
    );
  }
  throw new ManifestError(
    'bad_signature',
    'manifest signature does not verify: the manifest was modified after signing or signed with another key; re-publish it',
  );
}
