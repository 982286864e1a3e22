import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The fixtures folder, found by walking up from this module to the package root: the same
 * code runs from `collectors/...` (tests) and from `dist/collectors/...` (built binary).
 */
export function fixturesDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'collectors/nvidia-smi/fixtures');
    const parent = dirname(dir);
    if (parent === dir) throw new Error('nvidia-smi simulator: package root not found');
    dir = parent;
  }
}

/** Reads a fixture file (path relative to the fixtures folder) as UTF-8. */
export function readFixture(relativePath: string): string {
  return readFileSync(join(fixturesDir(), relativePath), 'utf8');
}
