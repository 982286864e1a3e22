import { randomBytes } from 'node:crypto';
import { open, readlink, rename, rm, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsyncDir } from '../fsync-dir.js';

// Hand-written rather than `write-file-atomic`: that package fsyncs the temporary file but not the
// directory holding the rename, and without the directory fsync a power loss can undo the rename.

export { fsyncDir };

/** Writes a file via temp + fsync + rename + directory fsync: readers see the old or the new whole. */
export async function writeFileDurable(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(tmp, 'w', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(path));
}

/** Writes a file via temp + rename without fsync (progress files that may be lost). */
export async function writeFileReplace(path: string, data: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(tmp, 'w', 0o644);
  try {
    await handle.writeFile(data);
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
}

/**
 * Points the symlink `link` at `target` atomically: a new link is created beside it and renamed
 * over it (rename(2) replaces the old link in one step), then the directory is fsynced.
 */
export async function swapSymlink(link: string, target: string): Promise<void> {
  const tmp = join(dirname(link), `.${basename(link)}.${randomBytes(4).toString('hex')}.tmp`);
  await symlink(target, tmp);
  try {
    await rename(tmp, link);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dirname(link));
}

/** Target of a symlink, or undefined when it does not exist. */
export async function readLinkIfExists(link: string): Promise<string | undefined> {
  try {
    return await readlink(link);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** True when an fs error means "no space left" (ENOSPC) or quota (EDQUOT). */
export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
