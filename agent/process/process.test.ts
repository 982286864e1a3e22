import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { alive } from '../../test/helpers/processes.js';
import { ChildProcesses, CommandError, runCommand } from './process.js';

// A wrapper script: starts two `sleep`s, writes their pids and its own to a file, then waits.
function wrapper(pidFile: string): string[] {
  return [
    '-c',
    `sleep 300 & echo $! >> ${pidFile}; sleep 300 & echo $! >> ${pidFile}; echo $$ >> ${pidFile}; wait`,
  ];
}

/** The pids a wrapper wrote to `file`, once there are `count` of them. */
function pidsIn(file: string, count: number): Promise<number[]> {
  return vi.waitFor(
    async () => {
      const text = await readFile(file, 'utf8').catch(() => '');
      const pids = text.split('\n').filter(Boolean).map(Number);
      if (pids.length < count) throw new Error(`${file} lists ${pids.length} of ${count} pids`);
      return pids;
    },
    { timeout: 20_000, interval: 20 },
  );
}

const dir = mkdtempSync(join(tmpdir(), 'gpulse-process-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

/** A fresh file name for a wrapper's pids. */
function tempFile(): string {
  return join(dir, `pids-${++files}`);
}

describe('runCommand and process groups', () => {
  it('a timeout ends the command and everything it started', async () => {
    const file = tempFile();
    const run = runCommand('sh', wrapper(file), { timeoutMs: 1000 });
    const pids = await pidsIn(file, 3);
    expect(pids.every(alive)).toBe(true);
    await expect(run).rejects.toMatchObject({ reason: 'timeout' });
    await expect.poll(() => pids.filter(alive), { timeout: 5000 }).toEqual([]);
  });

  it('helpers a finished command leaves behind in its group are ended with it', async () => {
    const file = tempFile();
    // The helper keeps running after the command exits; its output goes elsewhere, not to our pipe.
    const r = await runCommand(
      'sh',
      ['-c', `sleep 300 >/dev/null 2>&1 & echo $! >> ${file}; echo done`],
      { timeoutMs: 10_000 },
    );
    expect(r.stdout).toBe('done\n');
    const [helper] = await pidsIn(file, 1);
    await expect.poll(() => alive(helper!), { timeout: 5000 }).toBe(false);
  });
});

describe('ChildProcesses', () => {
  it('stop() ends a hung one-shot command and its descendants; spawning afterwards fails', async () => {
    const children = new ChildProcesses();
    const file = tempFile();
    const run = runCommand('sh', wrapper(file), {
      timeoutMs: 600_000,
      spawnFn: children.spawn,
    }).catch((e: unknown) => e);
    const pids = await pidsIn(file, 3);
    expect(children.size).toBe(1);
    await children.stop(500);
    expect(children.size).toBe(0);
    // A sleep closes the shared pipe (which fires 'close') a moment before the kernel marks it
    // dead, so allow that moment; a sleep that stop() missed would live 300 s.
    await expect.poll(() => pids.filter(alive), { timeout: 2000 }).toEqual([]);
    // The command saw its child die (not a timeout: that would take ten minutes).
    const result = await run;
    expect(result).toMatchObject({ code: null, signal: 'SIGTERM' });
    await expect(
      runCommand('true', [], { timeoutMs: 1000, spawnFn: children.spawn }),
    ).rejects.toBeInstanceOf(CommandError);
  });

  it('escalates to SIGKILL for a group that ignores SIGTERM', async () => {
    const children = new ChildProcesses();
    const file = tempFile();
    void runCommand(
      'sh',
      ['-c', `trap '' TERM; sleep 300 & echo $! >> ${file}; echo $$ >> ${file}; wait; wait`],
      { timeoutMs: 600_000, spawnFn: children.spawn },
    ).catch(() => undefined);
    const pids = await pidsIn(file, 2);
    await children.stop(200);
    await expect.poll(() => pids.filter(alive), { timeout: 5000 }).toEqual([]);
  });
});
