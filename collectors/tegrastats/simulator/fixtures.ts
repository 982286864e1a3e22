import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { collectorFixturesDir } from '../../fixtures-dir.js';

/** Reads a fixture of a collector (`tegrastats`, `nvidia-smi`) as UTF-8. */
export function readCollectorFixture(collector: string, relativePath: string): string {
  return readFileSync(join(collectorFixturesDir(collector), relativePath), 'utf8');
}
