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
