import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chunkDelta, createHarness, type Harness } from '../../test/helpers/models/harness.js';
import { fineTune, writeModel } from '../../test/helpers/models/model-gen.js';
import { DEFAULT_FETCH } from './fetcher.js';
import { DEFAULT_HEALTH } from './health.js';
import { parseEnvelope, parseSignedManifest, type SignedManifest } from './manifest.js';
import { readState, ModelPaths } from './state.js';
import type { EventSeverity, NewEvent } from '../../agent/core/events.js';
import { generateKeyPair, readPrivateKey, signManifest } from './signing.js';
import type { PausePoint } from './updater.js';

// Every case starts with v1 committed and v2 published, injects one fault, and checks that
// `current` still resolves to a fully verified, committed version afterwards.

const V1_SIZE = 8 * 1024 * 1024;

let h: Harness;
let v2: Buffer;

async function setup(root?: string): Promise<void> {
  h = await createHarness(root);
  const v1 = randomBytes(V1_SIZE);
  v2 = fineTune(v1);
  await writeModel(join(h.tmp, 'm1'), v1);
  await writeModel(join(h.tmp, 'm2'), v2);
  await h.publish(join(h.tmp, 'm1'), '1.0.0', 1);
  const first = await h.apply();
  expect(first.outcome).toBe('committed');
  await h.publish(join(h.tmp, 'm2'), '1.1.0', 2);
}

/** Whether a store request fetches model bytes (a whole-file blob or a chunk object). */
function isPayload(path: string): boolean {
  return path.includes('blobs/') || path.includes('chunks/');
}

/** The event the xid collector emits for an Xid on GPU 0. */
function xidEvent(xid: number, severity: EventSeverity): NewEvent {
  return {
    type: 'gpu.xid',
    severity,
    source: 'xid',
    message: `Xid ${xid}`,
    labels: { gpu: '0', uuid: 'GPU-1' },
    data: { xid, severity },
  };
}

async function expectOnV1(): Promise<void> {
  expect(await h.current()).toEqual({ version: '1.0.0', verified: true });
}

async function storeManifest(): Promise<SignedManifest> {
  const text = await readFile(join(h.store, 'detector', 'manifest.json'), 'utf8');
  return parseSignedManifest(parseEnvelope(text).signed);
}

async function writeStoreManifest(envelope: unknown): Promise<void> {
  await writeFile(join(h.store, 'detector', 'manifest.json'), JSON.stringify(envelope));
}

describe('model update fault matrix', () => {
  afterEach(async () => {
    await h.cleanup();
  });

  describe('with v1 installed and v2 published', () => {
    beforeEach(async () => {
      await setup();
    });

    it('refuses a corrupted chunk after retries, keeps v1, then resumes and commits v2 from a good server', async () => {
      await h.serve({
        fault: (path) => (isPayload(path) ? { kind: 'corrupt' } : undefined),
      });
      const bad = await h.apply();
      expect(bad).toMatchObject({
        outcome: 'failed',
        reason: 'chunk_verify_failed',
        version: '1.1.0',
      });
      await expectOnV1();
      await h.serve();
      const good = await h.apply();
      expect(good.outcome).toBe('committed');
      expect(await h.current()).toEqual({ version: '1.1.0', verified: true });
    });

    it('refuses truncated chunks and keeps v1', async () => {
      await h.serve({
        fault: (path) => (path.includes('blobs/') ? { kind: 'truncate' } : undefined),
      });
      const r = await h.apply();
      expect(r).toMatchObject({ outcome: 'failed', reason: 'truncated' });
      await expectOnV1();
    });

    it('refuses truncated chunk-index objects and keeps v1', async () => {
      await h.serve({
        fault: (path) => (path.includes('chunks/') ? { kind: 'truncate' } : undefined),
      });
      const r = await h.apply();
      expect(r.outcome).toBe('failed');
      expect(r.reason).toBe('truncated');
      expect(h.server.requests.filter((q) => q.path.includes('blobs/'))).toEqual([]);
      await expectOnV1();
    });

    it('quarantines a manifest whose file hash is wrong and never retries that release', async () => {
      const m = await storeManifest();
      const f = m.files.find((x) => x.path === 'weights.bin')!;
      const tampered = {
        ...m,
        files: m.files.map((x) => (x === f ? { ...x, sha256: 'ab'.repeat(32) } : x)),
      };
      await writeStoreManifest(signManifest(tampered, await readPrivateKey(h.keyPath)));
      const r = await h.apply();
      expect(r).toMatchObject({ outcome: 'failed', reason: 'verify_failed' });
      await expectOnV1();
      const again = await h.apply();
      expect(again).toMatchObject({ outcome: 'refused', reason: 'quarantined' });
      const state = await readState(new ModelPaths(h.root), 'detector');
      expect(state.quarantined.map((q) => q.release)).toEqual([2]);
    });

    it('refuses a manifest modified after signing', async () => {
      const env = JSON.parse(await readFile(join(h.store, 'detector', 'manifest.json'), 'utf8'));
      env.signed.expires = '2099-01-01T00:00:00.000Z';
      await writeStoreManifest(env);
      expect(await h.apply()).toMatchObject({ outcome: 'refused', reason: 'bad_signature' });
      await expectOnV1();
    });

    it('refuses a manifest signed by an unknown key', async () => {
      const other = await generateKeyPair(join(h.tmp, 'other-keys'));
      await writeStoreManifest(
        signManifest(await storeManifest(), await readPrivateKey(other.privatePath)),
      );
      const r = await h.apply();
      expect(r).toMatchObject({ outcome: 'refused', reason: 'unknown_key' });
      expect(r.message).toContain('--trust');
      await expectOnV1();
    });

    it('refuses an expired manifest (freeze attack)', async () => {
      await rm(join(h.store, 'detector', 'manifest.json'));
      await h.publish(join(h.tmp, 'm2'), '1.2.0', 3, { now: () => Date.now() - 3 * 86_400_000 });
      expect(await h.apply()).toMatchObject({ outcome: 'refused', reason: 'expired', release: 3 });
      await expectOnV1();
    });

    it('refuses a lower release number (rollback attack) after v2 is committed', async () => {
      expect((await h.apply()).outcome).toBe('committed');
      const old = await readFile(join(h.store, 'detector', 'manifests', '1.json'));
      await writeFile(join(h.store, 'detector', 'manifest.json'), old);
      expect(await h.apply()).toMatchObject({
        outcome: 'refused',
        reason: 'release_not_newer',
        release: 1,
      });
      expect(await h.current()).toEqual({ version: '1.1.0', verified: true });
    });

    it('falls back to chunk objects when the server ignores Range, downloading only the delta', async () => {
      await h.serve({ ranges: false });
      const r = await h.apply();
      expect(r.outcome).toBe('committed');
      expect(await h.current()).toEqual({ version: '1.1.0', verified: true });
      expect(h.server.requests.some((q) => q.path.startsWith('detector/chunks/'))).toBe(true);
      expect(h.server.requests.every((q) => q.status !== 206)).toBe(true);
      // Chunk boundaries depend on the random weights, so the delta's size varies run to run:
      // compare with the chunks v2's manifest lists that v1's does not, not with a fixed share.
      const { bytes: delta, chunks, indexBytes } = await chunkDelta(h.store, 1, 2);
      expect(delta).toBeGreaterThan(0);
      expect(delta).toBeLessThan(v2.length / 2);
      expect(indexBytes).toBeGreaterThan(0);
      expect(r.stats!.indexBytesDownloaded).toBe(indexBytes);
      expect(r.stats!.bytesDownloaded).toBe(delta + indexBytes);
      expect(r.stats!.chunksDownloaded).toBe(chunks);
    });

    it('retries a stalled response and commits', async () => {
      await h.serve({
        fault: (path, attempt) =>
          attempt === 1 && isPayload(path) ? { kind: 'stall', afterBytes: 1000 } : undefined,
      });
      const r = await h.apply({
        fetch: {
          ...DEFAULT_FETCH,
          parallel: 4,
          stallTimeoutMs: 300,
          requestTimeoutMs: 5000,
          retries: 3,
        },
      });
      expect(r.outcome).toBe('committed');
      expect(r.stats!.retries).toBeGreaterThan(0);
      expect(await h.current()).toEqual({ version: '1.1.0', verified: true });
    });

    it('gives up on a server that always stalls and keeps v1', async () => {
      await h.serve({
        fault: (path) => (isPayload(path) ? { kind: 'stall', afterBytes: 0 } : undefined),
      });
      const r = await h.apply({
        fetch: {
          ...DEFAULT_FETCH,
          parallel: 2,
          stallTimeoutMs: 200,
          requestTimeoutMs: 500,
          retries: 1,
        },
      });
      expect(r).toMatchObject({ outcome: 'failed' });
      expect(['stall', 'timeout']).toContain(r.reason);
      await expectOnV1();
    });

    it('rolls back when the health command fails and quarantines the release', async () => {
      const r = await h.apply({
        health: {
          ...DEFAULT_HEALTH,
          trialWindowMs: 0,
          command: ['sh', '-c', 'test "$GPULSE_MODEL_VERSION" != 1.1.0'],
        },
      });
      expect(r).toMatchObject({
        outcome: 'rolled_back',
        reason: 'command_failed',
        version: '1.1.0',
      });
      await expectOnV1();
      expect(await readFile(join(h.root, 'quarantine', '1.1.0-r2', 'weights.bin'))).toHaveLength(
        v2.length,
      );
      expect(h.events.list({ type: 'model.update_rolled_back' })).toHaveLength(1);
      expect(await h.apply()).toMatchObject({ outcome: 'refused', reason: 'quarantined' });
    });

    it('rolls back when the serving container is OOM-killed during the trial (agent event)', async () => {
      const pending = h.apply(
        { health: { ...DEFAULT_HEALTH, container: 'serving', trialWindowMs: 30_000 } },
        {
          pause: (point: PausePoint) => {
            if (point === 'trial') {
              setTimeout(() => {
                h.events.emit({
                  type: 'container.oom_kill',
                  severity: 'critical',
                  source: 'docker',
                  message: 'OOM kill',
                  labels: { container_name: 'serving', container_id: 'abc' },
                });
              }, 50);
            }
            return Promise.resolve();
          },
        },
      );
      const r = await pending;
      expect(r).toMatchObject({ outcome: 'rolled_back', reason: 'container_failed' });
      await expectOnV1();
    });

    it('ignores events of other containers and non-critical Xids, and commits after the trial', async () => {
      const r = await h.apply(
        { health: { ...DEFAULT_HEALTH, container: 'serving', trialWindowMs: 300 } },
        {
          pause: (point: PausePoint) => {
            if (point === 'trial') {
              h.events.emit({
                type: 'container.restart',
                severity: 'warning',
                source: 'docker',
                message: 'restart',
                labels: { container_name: 'other', container_id: 'def' },
              });
              h.events.emit(xidEvent(13, 'info'));
            }
            return Promise.resolve();
          },
        },
      );
      expect(r.outcome).toBe('committed');
      expect(await h.current()).toEqual({ version: '1.1.0', verified: true });
      expect(await readlink(join(h.root, 'previous'))).toBe('versions/1.0.0');
    });

    it('rolls back on a critical Xid during the trial', async () => {
      const r = await h.apply(
        { health: { ...DEFAULT_HEALTH, trialWindowMs: 30_000 } },
        {
          pause: (point: PausePoint) => {
            if (point === 'trial') setTimeout(() => h.events.emit(xidEvent(79, 'critical')), 20);
            return Promise.resolve();
          },
        },
      );
      expect(r).toMatchObject({ outcome: 'rolled_back', reason: 'gpu_xid' });
      await expectOnV1();
    });
  });

  describe('golden-input check before activation', () => {
    beforeEach(async () => {
      h = await createHarness();
      const v1 = randomBytes(1 << 20);
      await writeModel(join(h.tmp, 'm1'), v1, {
        'golden/in.bin': 'hello',
        'golden/out.bin': 'hello',
      });
      await h.publish(join(h.tmp, 'm1'), '1.0.0', 1, {
        health: {
          golden: {
            input: 'golden/in.bin',
            expected: 'golden/out.bin',
            compare: 'exact',
            abs_tolerance: 0,
          },
        },
      });
    });

    it('activates when the runner reproduces the expected output', async () => {
      const r = await h.apply({
        health: { ...DEFAULT_HEALTH, trialWindowMs: 0, goldenCommand: ['cat'] },
      });
      expect(r.outcome).toBe('committed');
    });

    it('never activates a version whose output differs, and quarantines it', async () => {
      const r = await h.apply({
        health: {
          ...DEFAULT_HEALTH,
          trialWindowMs: 0,
          goldenCommand: ['sh', '-c', 'echo wrong', 'golden'],
        },
      });
      expect(r).toMatchObject({ outcome: 'failed', reason: 'golden_mismatch' });
      expect(await h.current()).toEqual({ version: undefined, verified: false });
    });
  });

  describe('disk full', () => {
    const mnt = '/tmp/gpulse-models-tmpfs';
    beforeEach(async () => {
      await mkdir(mnt, { recursive: true });
      // A real small filesystem: 24 MiB of tmpfs (needs root, as on the dev machines and CI).
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt]);
      await setup(join(mnt, 'detector'));
    });
    afterEach(() => {
      execFileSync('umount', [mnt]);
    });

    it('refuses to start when the free space cannot hold the new version', async () => {
      const free = Number(
        execFileSync('df', ['--output=avail', '-B1', mnt]).toString().split('\n')[1],
      );
      await writeFile(join(mnt, 'filler'), Buffer.alloc(Math.max(0, free - 4 * 1024 * 1024)));
      expect(await h.apply()).toMatchObject({ outcome: 'refused', reason: 'disk_full' });
      await expectOnV1();
    });

    it('fails cleanly on ENOSPC during assembly, frees the partial files, and succeeds once there is room', async () => {
      const r = await h.apply(
        // One request in flight, so nothing is written while the test fills the disk.
        {
          fetch: {
            ...DEFAULT_FETCH,
            parallel: 1,
            stallTimeoutMs: 2000,
            requestTimeoutMs: 5000,
            retries: 0,
            maxRangeBytes: 1 << 20,
          },
        },
        {
          pause: async (point: PausePoint) => {
            if (point !== 'downloading') return;
            const free = Number(
              execFileSync('df', ['--output=avail', '-B1', mnt]).toString().split('\n')[1],
            );
            await writeFile(join(mnt, 'filler'), Buffer.alloc(free)).catch(() => undefined);
          },
        },
      );
      expect(r).toMatchObject({ outcome: 'failed', reason: 'disk_full' });
      await expectOnV1();
      await expect(lstat(join(h.root, 'versions', '.partial-1.1.0'))).rejects.toThrow(/ENOENT/);
      await rm(join(mnt, 'filler'));
      expect((await h.apply()).outcome).toBe('committed');
      expect(await h.current()).toEqual({ version: '1.1.0', verified: true });
    });
  });
});
