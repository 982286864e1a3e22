import { execFileSync, spawnSync } from 'node:child_process';
import { findTool } from './tools.js';

/** The first python3 (PATH, then Debian's /usr/bin/python3) that can import every module. */
export function findPython(modules: readonly string[]): string | undefined {
  const candidates = [findTool('python3'), '/usr/bin/python3'].filter(
    (p): p is string => p !== undefined,
  );
  for (const python of new Set(candidates)) {
    const probe = spawnSync(python, ['-c', `import ${modules.join(', ')}`], {
      timeout: 30_000,
      stdio: 'ignore',
    });
    if (probe.status === 0) return python;
  }
  return undefined;
}

/** Runs a Python script with arguments and parses what it prints as JSON. */
export function runPythonJson(python: string, script: string, args: readonly string[]): unknown {
  const out = execFileSync(python, [script, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(out) as unknown;
}
