import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Files of a generated model version. */
export interface GeneratedModel {
  readonly dir: string;
  readonly weights: Buffer;
}

/** Writes a model directory: random `weights.bin` of `size` bytes plus a small config.json. */
export async function writeModel(
  dir: string,
  weights: Buffer,
  extra: Record<string, string> = {},
): Promise<GeneratedModel> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'weights.bin'), weights);
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify({ layers: 24, hidden: 1024, dtype: 'float32' }),
  );
  for (const [name, text] of Object.entries(extra)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return { dir, weights };
}

/**
 * A fine-tune of `v1`: `changedShare` of the bytes rewritten in `regions` places spread over the
 * file, plus `insert` new bytes in the middle, which shifts everything after it.
 */
export function fineTune(v1: Buffer, changedShare = 0.05, regions = 4, insert = 64 * 1024): Buffer {
  const v2 = Buffer.from(v1);
  const per = Math.floor((v1.length * changedShare) / regions);
  for (let r = 0; r < regions; r++) {
    const at = Math.floor(((r + 0.5) * v1.length) / regions) - Math.floor(per / 2);
    randomBytes(per).copy(v2, at);
  }
  const mid = Math.floor(v1.length * 0.37);
  return Buffer.concat([v2.subarray(0, mid), randomBytes(insert), v2.subarray(mid)]);
}
