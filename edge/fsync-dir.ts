import { open } from 'node:fs/promises';

/** fsyncs a directory so renames, creations and removals inside it survive a power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
