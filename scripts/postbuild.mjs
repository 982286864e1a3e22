// Marks compiled entry points that start with a shebang as executable (tsc keeps the line, not the
// mode), and copies the gRPC .proto files (with their licences) beside the code that loads them.
import { chmodSync, cpSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.js') && readFileSync(path, 'utf8').startsWith('#!'))
      chmodSync(path, 0o755);
  }
}

const root = new URL('..', import.meta.url).pathname;
walk(join(root, 'dist'));
for (const name of readdirSync(join(root, 'collectors'))) {
  const proto = join(root, 'collectors', name, 'proto');
  if (existsSync(proto))
    cpSync(proto, join(root, 'dist', 'collectors', name, 'proto'), { recursive: true });
}
