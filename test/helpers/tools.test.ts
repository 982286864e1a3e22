// The preconditions the CI guard checks: each must say what is missing and how to fix it.
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { builtAndFresh, findTool, readable, runningAsRoot, toolsInstalled } from './tools.js';

const dir = mkdtempSync(join(tmpdir(), 'gpulse-tools-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('integration preconditions', () => {
  it('finds programs on PATH and in the sbin folders, and names the packages of missing ones', () => {
    expect(findTool('sh')).toMatch(/\/sh$/);
    expect(findTool('no-such-program-gpulse')).toBeUndefined();
    expect(toolsInstalled([{ bin: 'sh', pkg: 'dash' }])).toMatchObject({ met: true });
    expect(
      toolsInstalled([
        { bin: 'sh', pkg: 'dash' },
        { bin: 'no-such-a', pkg: 'pkg-a' },
        { bin: 'no-such-b', pkg: 'pkg-a' },
      ]),
    ).toEqual({
      met: false,
      why: 'needs no-such-a, no-such-b (Debian: apt-get install pkg-a)',
    });
  });

  it('says a path is unreadable with the fix given', () => {
    expect(readable(join(dir, 'absent'), 'create it')).toEqual({
      met: false,
      why: `needs read access to ${join(dir, 'absent')} (create it)`,
    });
    writeFileSync(join(dir, 'present'), '');
    expect(readable(join(dir, 'present'), 'x').met).toBe(true);
  });

  it('knows whether it runs as root', () => {
    expect(runningAsRoot('do it').met).toBe(process.getuid?.() === 0);
    expect(runningAsRoot('do it').why).toBe(
      'must run as root to do it (run the tests as root, as .ci/run does)',
    );
  });

  it('finds a build missing, stale (a source newer than it) or fresh', () => {
    const src = join(dir, 'src');
    mkdirSync(src);
    const entry = join(dir, 'built.js');
    const fix = `needs ${entry} built from the current sources (run \`npm run build\`; npm test does)`;
    expect(builtAndFresh(entry, [src])).toEqual({ met: false, why: fix });
    writeFileSync(join(src, 'a.ts'), '');
    writeFileSync(join(src, 'a.test.ts'), '');
    writeFileSync(entry, '');
    utimesSync(join(src, 'a.ts'), 1000, 1000);
    utimesSync(entry, 2000, 2000);
    // A test file newer than the build does not make it stale: tests are not built.
    utimesSync(join(src, 'a.test.ts'), 3000, 3000);
    expect(builtAndFresh(entry, [src])).toEqual({ met: true, why: fix });
    utimesSync(join(src, 'a.ts'), 3000, 3000);
    expect(builtAndFresh(entry, [src])).toEqual({ met: false, why: fix });
  });
});
