// Marks compiled entry points that start with a shebang as executable (tsc keeps the line, not the mode).
import { chmodSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.js') && readFileSync(path, 'utf8').startsWith('#!'))
      chmodSync(path, 0o755);
  }
}

walk(new URL('../dist', import.meta.url).pathname);
