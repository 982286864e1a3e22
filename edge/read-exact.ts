import type { FileHandle } from 'node:fs/promises';

/** The `length` bytes of a file at `offset`, or undefined when the file ends before them. */
export async function readExact(
  handle: FileHandle,
  offset: number,
  length: number,
): Promise<Buffer | undefined> {
  const buf = Buffer.allocUnsafe(length);
  const { bytesRead } = await handle.read(buf, 0, length, offset);
  return bytesRead === length ? buf : undefined;
}

/**
 * Writes all of `data` at `offset`, going on after a short write (which the kernel may make when
 * a disk is nearly full: the next write then fails with ENOSPC rather than leaving a hole).
 */
export async function writeAll(
  handle: FileHandle,
  data: Uint8Array,
  offset: number,
): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, offset + done);
    if (bytesWritten === 0)
      throw new Error(`wrote 0 of ${data.length - done} bytes at ${offset + done}`);
    done += bytesWritten;
  }
}
