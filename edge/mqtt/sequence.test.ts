import { readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDirs } from '../../test/helpers/temp-dirs.js';
import { captureLogger } from '../../test/helpers/log-sink.js';
import { InstanceLock, LockHeldError } from './instance-lock.js';
import { SequenceStore } from './sequence.js';

const tempDir = tempDirs('gpulse-seq-');

/** Hands out 1 to 10 on boot-1 and dies without close(), then opens the store again on `boot`. */
function reopenAfterKill(boot: string): SequenceStore {
  const dir = tempDir();
  const { log } = captureLogger();
  const a = SequenceStore.open({ dir, log, bootId: () => 'boot-1' });
  for (let i = 0; i < 10; i++) a.next();
  // No close(): the process died. The file holds what the last next() wrote.
  return SequenceStore.open({ dir, log, bootId: () => boot });
}

describe('SequenceStore', () => {
  it('continues exactly where it stopped after a clean stop', () => {
    const dir = tempDir();
    const { log } = captureLogger();
    const a = SequenceStore.open({ dir, log, bootId: () => 'boot-1' });
    expect([a.next(), a.next(), a.next()]).toEqual([1, 2, 3]);
    expect(a.newSession()).toBe(1);
    a.close();
    const b = SequenceStore.open({ dir, log, bootId: () => 'boot-2' });
    expect(b.next()).toBe(4);
    expect(b.newSession()).toBe(2);
    b.close();
  });

  it('continues exactly after a process kill (same boot: the page cache kept every write)', () => {
    expect(reopenAfterKill('boot-1').next()).toBe(11);
  });

  it('jumps to the fsynced lease after a reboot without a clean stop (power loss), never back', () => {
    const seq = reopenAfterKill('boot-2').next();
    expect(seq).toBeGreaterThan(10);
    expect(seq).toBeLessThanOrEqual(1001);
  });

  it('never goes below the floor (the newest spooled seq + 1)', () => {
    const dir = tempDir();
    const { log } = captureLogger();
    const a = SequenceStore.open({ dir, log, floor: 500 });
    expect(a.next()).toBe(500);
    a.close();
  });

  it('continues from the wall clock when the file is damaged, and says so', () => {
    const dir = tempDir();
    const { log, records } = captureLogger();
    writeFileSync(join(dir, 'sequence.json'), '{"next": "garbage');
    const a = SequenceStore.open({ dir, log, now: () => 1_700_000_000_000 });
    expect(a.next()).toBe(1_700_000_000_000_000);
    expect(records.some((r) => /damaged/.test(String(r.msg)))).toBe(true);
    a.close();
    expect(JSON.parse(readFileSync(join(dir, 'sequence.json'), 'utf8'))).toMatchObject({
      next: 1_700_000_000_000_001,
      clean: true,
    });
  });
});

describe('InstanceLock', () => {
  it('lets one process hold it, names the holder, and frees it on release', () => {
    const dir = tempDir();
    const path = join(dir, 'instance.lock');
    const lock = InstanceLock.acquire(path);
    // A live process (our parent) holding it: a second agent is refused with a clear message.
    writeFileSync(path, `${process.ppid}\n`);
    expect(() => InstanceLock.acquire(path, 999_999_998)).toThrow(LockHeldError);
    expect(() => InstanceLock.acquire(path, 999_999_998)).toThrow(
      new RegExp(`pid ${process.ppid}.*client id`),
    );
    writeFileSync(path, `${process.pid}\n`);
    lock.release();
    const again = InstanceLock.acquire(path);
    again.release();
  });

  it('takes over a lock left behind by a dead process', async () => {
    const dir = tempDir();
    const path = join(dir, 'instance.lock');
    const child = spawn(process.execPath, ['-e', '0']);
    const deadPid = child.pid as number;
    await new Promise((r) => child.on('exit', r));
    writeFileSync(path, `${deadPid}\n`);
    const lock = InstanceLock.acquire(path);
    expect(readFileSync(path, 'utf8').trim()).toBe(String(process.pid));
    lock.release();
  });
});
