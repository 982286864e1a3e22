import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package root, found by walking up from this module: the same code runs from
 * `collectors/...` (tests) and from `dist/collectors/...` (the built binary).
 */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('tegrastats simulator: package root not found');
    dir = parent;
  }
}

/** Reads a fixture of a collector (`tegrastats`, `nvidia-smi`) as UTF-8. */
export function readCollectorFixture(collector: string, relativePath: string): string {
  return readFileSync(
    join(packageRoot(), 'collectors', collector, 'fixtures', relativePath),
    'utf8',
  );
}
