import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, it } from 'vitest';

/** A program an integration suite needs, and the Debian package that provides it. */
export interface RequiredTool {
  readonly bin: string;
  readonly pkg: string;
}

/** Absolute path of a program on PATH (or the given absolute path), if executable. */
export function findTool(bin: string): string | undefined {
  const candidates = bin.includes('/')
    ? [bin]
    : [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'].map((dir) =>
        join(dir, bin),
      );
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * An integration suite that needs real programs. Without them it is skipped with a message naming
 * the Debian packages, except under CI=true, where a skipped integration suite is a failure.
 */
export function describeWithTools(
  name: string,
  tools: readonly RequiredTool[],
  body: () => void,
): void {
  const missing = tools.filter((t) => findTool(t.bin) === undefined);
  if (missing.length === 0) {
    describe(name, body);
    return;
  }
  const pkgs = [...new Set(missing.map((t) => t.pkg))].join(' ');
  const why = `needs ${missing.map((t) => t.bin).join(', ')} (Debian: apt-get install ${pkgs})`;
  if (process.env.CI === 'true') {
    describe(name, () => {
      it(`cannot run: ${why}`, () => {
        throw new Error(`integration suite "${name}" ${why}; CI must not skip it`);
      });
    });
    return;
  }
  console.warn(`skipping integration suite "${name}": ${why}`);
  describe.skip(name, body);
}
