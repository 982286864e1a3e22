import { randomBytes } from 'node:crypto';
import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../../test/helpers/models/harness.js';
import { fineTune, writeModel } from '../../test/helpers/models/model-gen.js';
import { formatStatus, readModelStatus } from './status.js';

// The headline property: a 5 % fine-tune of a 256 MiB model (changed in four regions, with a
// 64 KiB block inserted that shifts everything after it) costs at most 10 % of a full download.

const SIZE = 256 * 1024 * 1024;

describe('delta update of a 256 MiB model', () => {
  let h: Harness;
  let v2: Buffer;

  beforeAll(async () => {
    h = await createHarness();
    const v1 = randomBytes(SIZE);
    v2 = fineTune(v1, 0.05, 4, 64 * 1024);
    await writeModel(join(h.tmp, 'm1'), v1);
    await writeModel(join(h.tmp, 'm2'), v2);
  }, 120_000);

  afterAll(async () => {
    await h.cleanup();
  });

  it('installs v1 in full, then v2 downloading at most 10 % of its size', async () => {
    await h.publish(join(h.tmp, 'm1'), '1.0.0', 1);
    const first = await h.apply();
    expect(first.outcome).toBe('committed');
    expect(first.stats!.bytesDownloaded).toBeGreaterThanOrEqual(SIZE);

    await h.publish(join(h.tmp, 'm2'), '1.1.0', 2);
    const sentBefore = h.server.bytesSent;
    const second = await h.apply();
    expect(second.outcome).toBe('committed');
    const s = second.stats!;
    expect(s.bytesDownloaded).toBeLessThanOrEqual(v2.length * 0.1);
    expect(h.server.bytesSent - sentBefore).toBeLessThanOrEqual(v2.length * 0.1 + 1024 * 1024);
    expect(s.bytesReused + s.bytesToDownload).toBe(s.bytesTotal);
    expect(s.bytesReused).toBeGreaterThan(v2.length * 0.85);

    expect(await h.current()).toEqual({ version: '1.1.0', verified: true });
    expect(await readlink(join(h.root, 'previous'))).toBe('versions/1.0.0');
    expect((await readdir(join(h.root, 'versions'))).sort()).toEqual(['1.0.0', '1.1.0']);
    expect(h.events.list({ type: 'model.update_committed' }).map((e) => e.labels.version)).toEqual([
      '1.1.0',
      '1.0.0',
    ]);

    const status = await readModelStatus(h.root);
    expect(status.state?.current).toMatchObject({ version: '1.1.0', release: 2 });
    expect(status.state?.update).toMatchObject({
      state: 'committed',
      bytes_downloaded: s.bytesDownloaded,
    });
    expect(formatStatus(status)).toMatch(/current\s+1\.1\.0 \(release 2\)/);
  }, 300_000);
});
