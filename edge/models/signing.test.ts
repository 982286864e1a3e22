import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SMALL_FILE_CHUNKING } from './gear-cdc.js';
import { ManifestError, unsafePathReason, type SignedManifest } from './manifest.js';
import {
  generateKeyPair,
  readPrivateKey,
  readTrustedKeys,
  signManifest,
  verifyManifest,
} from './signing.js';
import { splitCommand, modelsConfigSchema } from './config.js';
import { loadConfig } from '../../agent/config.js';
import { ConfigError } from '../../agent/core/errors.js';

const manifest = (over: Partial<SignedManifest> = {}): SignedManifest => ({
  _type: 'gpulse.model-manifest',
  spec: 1,
  model: 'detector',
  version: '1.0.0',
  release: 1,
  created: '2026-01-01T00:00:00.000Z',
  expires: '2027-01-01T00:00:00.000Z',
  files: [
    {
      path: 'w.bin',
      size: 3,
      sha256: 'a'.repeat(64),
      chunking: { ...SMALL_FILE_CHUNKING },
      chunks: [['b'.repeat(64), 3]],
    },
  ],
  drift_reference: { features: { x: { bins: [0, 1] } } },
  ...over,
});

describe('model signing', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gpulse-sign-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keygen writes a 0600 private key and refuses to overwrite it', async () => {
    const k = await generateKeyPair(join(dir, 'k'));
    expect((await stat(k.privatePath)).mode & 0o777).toBe(0o600);
    expect(k.keyid).toMatch(/^[0-9a-f]{64}$/);
    await expect(generateKeyPair(join(dir, 'k'))).rejects.toMatchObject({ code: 'EEXIST' });
  });

  it('verifies a signed manifest and keeps the opaque drift reference', async () => {
    const k = await generateKeyPair(join(dir, 'k2'));
    const env = signManifest(manifest(), await readPrivateKey(k.privatePath));
    const v = verifyManifest(JSON.stringify(env), await readTrustedKeys([k.publicPath]));
    expect(v.signed.drift_reference).toEqual({ features: { x: { bins: [0, 1] } } });
    // Key order in the served JSON does not matter: signatures cover canonical JSON.
    const reordered = JSON.stringify({
      signatures: env.signatures,
      signed: Object.fromEntries(Object.entries(env.signed).reverse()),
    });
    expect(verifyManifest(reordered, await readTrustedKeys([k.publicPath])).signed.version).toBe(
      '1.0.0',
    );
  });

  it('refuses unsafe paths and inconsistent chunk lists even when signed', async () => {
    const k = await generateKeyPair(join(dir, 'k3'));
    const trust = await readTrustedKeys([k.publicPath]);
    const key = await readPrivateKey(k.privatePath);
    const evil = manifest({ files: [{ ...manifest().files[0]!, path: '../../etc/passwd' }] });
    expect(() => verifyManifest(JSON.stringify(signManifest(evil, key)), trust)).toThrow(
      /unsafe file path/,
    );
    const sum = manifest({ files: [{ ...manifest().files[0]!, size: 4 }] });
    expect(() => verifyManifest(JSON.stringify(signManifest(sum, key)), trust)).toThrow(
      /add up to 3/,
    );
    expect(() => verifyManifest('{"signed":{},"signatures":[]}', trust)).toThrow(ManifestError);
    expect(unsafePathReason('a/./b')).toBeDefined();
    expect(unsafePathReason('weights/model.bin')).toBeUndefined();
  });
});

describe('models config', () => {
  it('splits commands without a shell and refuses shell syntax', () => {
    expect(splitCommand(`check --model "my model" x`)).toEqual([
      'check',
      '--model',
      'my model',
      'x',
    ]);
    expect(() => splitCommand('check | tee x')).toThrow(/shell syntax/);
  });

  it('parses a model entry with defaults and reports every bad field with its path', () => {
    const ok = modelsConfigSchema.parse([
      {
        name: 'det',
        source: 'http://h/s/det/',
        dir: '/m/det',
        trust: '/k.pub',
        health: { command: 'check --quick' },
      },
    ]);
    expect(ok[0]).toMatchObject({
      schedule: '*/15 * * * *',
      trust: ['/k.pub'],
      parallel: 4,
      health: { command: ['check', '--quick'], trialWindow: 600_000 },
    });
    const bad = modelsConfigSchema.safeParse([
      {
        name: 'det',
        source: 'ftp://x',
        dir: '/m',
        trust: [],
        schedule: 'every minute',
        health: { xid: 'maybe' },
      },
    ]);
    expect(bad.success).toBe(false);
    const paths = bad.error!.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(
      expect.arrayContaining(['0.source', '0.trust', '0.schedule', '0.health.xid']),
    );
  });

  it('takes the list from GPULSE_MODELS as JSON and reports bad JSON with the variable name', () => {
    const env = {
      GPULSE_MODELS: JSON.stringify([
        { name: 'det', source: 'https://h/det/', dir: '/m/det', trust: '/k.pub' },
      ]),
    };
    expect(loadConfig({ env }).config.models[0]).toMatchObject({
      name: 'det',
      schedule: '*/15 * * * *',
    });
    try {
      loadConfig({ env: { GPULSE_MODELS: '[{' } });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems.join('\n')).toMatch(
        /models: expected a JSON array.*GPULSE_MODELS/,
      );
    }
  });
});
