import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { collectorFixturesDir } from '../../fixtures-dir.js';

/** The nvidia-smi fixtures folder, in sources and in the built binary alike. */
export function fixturesDir(): string {
  return collectorFixturesDir('nvidia-smi');
}

/** Reads a fixture file (path relative to the fixtures folder) as UTF-8. */
export function readFixture(relativePath: string): string {
  return readFileSync(join(fixturesDir(), relativePath), 'utf8');
}
