import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory holding gpulse's package.json, found from this module (works from source and dist). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string };
      if (pkg.name === 'gpulse') return dir;
    }
    dir = dirname(dir);
  }
  throw new Error('cannot locate the gpulse package root (package.json named gpulse)');
}

let cachedVersion: string | undefined;

/** gpulse's version from package.json. */
export function packageVersion(): string {
  if (cachedVersion === undefined) {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as {
      version?: string;
    };
    cachedVersion = pkg.version ?? '0.0.0';
  }
  return cachedVersion;
}

/** True when running from the compiled `dist/` tree rather than TypeScript sources. */
export function runningFromDist(): boolean {
  return fileURLToPath(import.meta.url).includes(`${'/'}dist${'/'}`);
}
