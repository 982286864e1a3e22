import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** Locks held by this process: our own pid in a lock file is stale only if we do not hold it. */
const heldHere = new Set<string>();

/** Another live process holds the lock. */
export class LockHeldError extends Error {
  readonly code = 'GPULSE_INSTANCE_LOCKED';
  constructor(
    readonly path: string,
    readonly pid: number,
  ) {
    super(
      `another gpulse (pid ${pid}) already publishes from ${path.replace(/\/[^/]+$/, '')}: two agents with one MQTT client id would disconnect each other in a loop (MQTT.js #1585). Stop it, or give this one its own mqtt.spool.dir and mqtt.node.`,
    );
    this.name = 'LockHeldError';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function holder(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A single-instance lock: a file holding the owner's pid, created with link(2) so exactly one of
 * two racing processes wins. A lock left by a dead process (or by our own pid, as after a
 * container restart) is taken over. Hand-written: proper-lockfile judges staleness by mtime,
 * which needs a refresh timer and misjudges a paused process; a pid check is exact here.
 */
export class InstanceLock {
  private released = false;

  private constructor(
    readonly path: string,
    private readonly pid: number,
  ) {}

  /** Takes the lock at `path` or throws LockHeldError. */
  static acquire(path: string, pid = process.pid): InstanceLock {
    const key = resolve(path);
    if (pid === process.pid && heldHere.has(key)) throw new LockHeldError(path, pid);
    const tmp = `${path}.${pid}.tmp`;
    writeFileSync(tmp, `${pid}\n`, { mode: 0o600 });
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          linkSync(tmp, path);
          heldHere.add(key);
          return new InstanceLock(path, pid);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const owner = holder(path);
        if (owner !== undefined && owner !== pid && alive(owner))
          throw new LockHeldError(path, owner);
        unlinkSync(path);
      }
      throw new LockHeldError(path, holder(path) ?? 0);
    } finally {
      try {
        unlinkSync(tmp);
      } catch {
        // already gone
      }
    }
  }

  /** Removes the lock file if it is still ours. */
  release(): void {
    if (this.released) return;
    this.released = true;
    heldHere.delete(resolve(this.path));
    if (holder(this.path) !== this.pid) return;
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}
