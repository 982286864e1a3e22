import { open, readFile, unlink } from 'node:fs/promises';

// Hand-written rather than `proper-lockfile`: that package decides staleness by mtime, so after a
// SIGKILL or power loss a restarted updater would wait out the stale period. Here the holder is
// identified by boot id + pid + the pid's start time, which is exact on one host (also when a
// restarted container reuses the pid) and needs no heartbeat.

async function bootId(): Promise<string> {
  try {
    return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  } catch {
    return 'unknown';
  }
}

/** Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or undefined. */
async function startTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces: count fields after its closing parenthesis.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Thrown when another live process holds the model root. */
export class LockedError extends Error {
  readonly code = 'GPULSE_MODEL_LOCKED';
}

/** Takes the exclusive lock of a model root; returns the release function. */
export async function acquireLock(path: string): Promise<() => Promise<void>> {
  const boot = await bootId();
  const me = `${boot} ${process.pid} ${(await startTime(process.pid)) ?? '?'}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o644);
      await handle.writeFile(me);
      await handle.close();
      return async () => {
        await unlink(path).catch(() => undefined);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const text = await readFile(path, 'utf8').catch(() => '');
    const [lockBoot, pidText, lockStart] = text.trim().split(' ');
    const pid = Number(pidText);
    const held =
      lockBoot === boot &&
      Number.isInteger(pid) &&
      pid > 0 &&
      lockStart !== undefined &&
      (await startTime(pid)) === lockStart;
    if (held) {
      throw new LockedError(
        `${path} is held by process ${pid}: another update of this model is running; wait for it or stop it`,
      );
    }
    // The holder is gone (killed, power loss, container restart): the lock is stale, take it over.
    await unlink(path).catch(() => undefined);
  }
  throw new LockedError(`could not take ${path}: it keeps being re-created`);
}
