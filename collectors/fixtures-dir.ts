import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The fixtures folder of a collector (`collectors/<collector>/fixtures`), found by walking up
 * from this module to the package root: the same code runs from `collectors/...` (tests) and
 * from `dist/collectors/...` (the built binary).
 */
export function collectorFixturesDir(collector: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')))
      return join(dir, 'collectors', collector, 'fixtures');
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`${collector}: package root not found`);
    dir = parent;
  }
}
