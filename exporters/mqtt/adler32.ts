/**
 * Adler-32 (RFC 1950 §9): the checksum by which a zlib header names its preset dictionary.
 * Hand-written: node:zlib exposes crc32 but not adler32, and it is eight lines.
 */
export function adler32Of(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < data.length; i += 3800) {
    // 3800 bytes keep b below 2^32 between reductions (zlib uses 5552 with unsigned math).
    const end = Math.min(data.length, i + 3800);
    for (let j = i; j < end; j++) {
      a += data[j] as number;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}
