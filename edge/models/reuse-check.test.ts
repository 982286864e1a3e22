import { randomBytes } from 'node:crypto';
import { open, readFile, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../../test/helpers/models/harness.js';
import { fineTune, writeModel } from '../../test/helpers/models/model-gen.js';

// Chunks copied from an installed version are not hashed one by one: the whole-file hash after
// assembly covers them. These are the cases where that hash catches an installed file that
// changed behind the updater's back, and the update still lands with the right bytes.

const SIZE = 4 * 1024 * 1024;

describe('reusing chunks of an installed version', () => {
  let h: Harness;
  let v2: Buffer;

  beforeEach(async () => {
    h = await createHarness();
    const v1 = randomBytes(SIZE);
    // Rewrites around 12.5, 37.5, 62.5 and 87.5 % and inserts at 37 %: 5 % and 75 % stay as in v1.
    v2 = fineTune(v1, 0.05, 4, 64 * 1024);
    await writeModel(join(h.tmp, 'm1'), v1);
    await writeModel(join(h.tmp, 'm2'), v2);
    await h.publish(join(h.tmp, 'm1'), '1.0.0', 1);
    expect((await h.apply()).outcome).toBe('committed');
    await h.publish(join(h.tmp, 'm2'), '1.1.0', 2);
  }, 60_000);

  afterEach(async () => {
    await h.cleanup();
  });

  const installedWeights = () => join(h.root, 'versions', '1.0.0', 'weights.bin');

  it('fetches the chunks whose installed bytes changed, and installs exactly v2', async () => {
    const f = await open(installedWeights(), 'r+');
    try {
      for (const at of [Math.floor(SIZE * 0.05), Math.floor(SIZE * 0.75)]) {
        const { buffer } = await f.read(Buffer.alloc(1), 0, 1, at);
        await f.write(Buffer.from([buffer[0]! ^ 0xff]), 0, 1, at);
      }
    } finally {
      await f.close();
    }
    const r = await h.apply();
    expect(r.outcome).toBe('committed');
    const s = r.stats!;
    // One chunk holds each changed byte; both were fetched instead of copied.
    expect(s.chunksReuseFailed).toBe(2);
    expect(s.verified).toBe(true);
    expect(s.bytesReused + s.bytesToDownload).toBe(s.bytesTotal);
    expect(s.bytesReused).toBeGreaterThan(SIZE * 0.8);
    expect(await h.current()).toEqual({ version: '1.1.0', verified: true });
    expect((await readFile(join(h.root, 'current', 'weights.bin'))).equals(v2)).toBe(true);
  });

  it('fetches everything an installed file that is gone would have given', async () => {
    await rm(installedWeights());
    const r = await h.apply();
    expect(r.outcome).toBe('committed');
    const s = r.stats!;
    expect(s.bytesReused).toBeLessThan(1024);
    expect(s.bytesToDownload).toBeGreaterThanOrEqual(v2.length);
    expect(await h.current()).toEqual({ version: '1.1.0', verified: true });
  });

  it('fetches what an installed file cut short no longer holds', async () => {
    await truncate(installedWeights(), SIZE / 2);
    const r = await h.apply();
    expect(r.outcome).toBe('committed');
    const s = r.stats!;
    expect(s.bytesReused + s.bytesToDownload).toBe(s.bytesTotal);
    // The first half is still copied; the runs that reach past the cut are fetched whole.
    expect(s.bytesReused).toBeGreaterThan(SIZE * 0.3);
    expect(s.bytesReused).toBeLessThan(SIZE * 0.5);
    expect(await h.current()).toEqual({ version: '1.1.0', verified: true });
    expect((await readFile(join(h.root, 'current', 'weights.bin'))).equals(v2)).toBe(true);
  });

  it('copies unchanged chunks without a refetch when nothing changed behind its back', async () => {
    const r = await h.apply();
    expect(r.outcome).toBe('committed');
    expect(r.stats).toMatchObject({ chunksReuseFailed: 0, verified: true });
    expect(r.stats!.bytesToDownload).toBeLessThan(SIZE * 0.15);
    expect(await h.current()).toEqual({ version: '1.1.0', verified: true });
  });
});
