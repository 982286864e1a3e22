import { closeSync, fdatasyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

const FILE = 'sequence.json';
const RECORD_BYTES = 256;
/** Seqs handed out per fsync: after a power loss seq jumps by at most this much, never back. */
const LEASE = 1000;

interface Stored {
  readonly next: number;
  readonly lease: number;
  readonly session: number;
  readonly boot?: string;
  readonly clean: boolean;
}

/** Identity of the running kernel boot (Linux); undefined elsewhere. */
export function currentBootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Options of the sequence store. */
export interface SequenceOptions {
  readonly dir: string;
  /** The next seq is at least this (e.g. one above the newest spooled record). */
  readonly floor?: number;
  readonly log: Logger;
  /** Boot identity (tests pass their own). */
  readonly bootId?: () => string | undefined;
  /** Wall clock used only when the state file is damaged. */
  readonly now?: () => number;
}

/**
 * The node's monotonic message sequence number and session (connection) counter, kept in one
 * fixed-size file. Every `next()` rewrites it in place without fsync — a killed process loses
 * nothing, the page cache outlives it — and every LEASE numbers an fsynced lease is recorded.
 * After a reboot (another boot id, maybe a power loss that lost unsynced writes) the count resumes
 * at the lease, so seq may skip ahead but never repeats.
 */
export class SequenceStore {
  private constructor(
    private readonly fd: number,
    private nextSeq: number,
    private lease: number,
    private session: number,
    private readonly boot: string | undefined,
  ) {}

  /** Opens or creates the store in `dir`. */
  static open(options: SequenceOptions): SequenceStore {
    const path = join(options.dir, FILE);
    const boot = (options.bootId ?? currentBootId)();
    const stored = readStored(path, options.log);
    let next: number;
    let session = 0;
    if (stored === 'missing') {
      next = 1;
    } else if (stored === 'damaged') {
      // Wall-clock microseconds exceed any seq a sane past could have produced.
      next = Math.floor((options.now ?? Date.now)() * 1000);
      options.log.warn(
        { path, next },
        'sequence file is damaged; seq continues from the clock so it never goes backwards',
      );
    } else {
      const sameBoot = stored.boot !== undefined && stored.boot === boot;
      next = stored.clean || sameBoot ? stored.next : stored.lease;
      session = stored.session;
    }
    next = Math.max(next, options.floor ?? 1, 1);
    const fd = openSync(path, stored === 'missing' ? 'w+' : 'r+', 0o600);
    const store = new SequenceStore(fd, next, next + LEASE, session, boot);
    store.write(true, false);
    return store;
  }

  /** Takes the next sequence number. */
  next(): number {
    const seq = this.nextSeq++;
    const renew = this.nextSeq > this.lease;
    if (renew) this.lease = this.nextSeq + LEASE;
    this.write(renew, false);
    return seq;
  }

  /** The number the next `next()` returns. */
  peek(): number {
    return this.nextSeq;
  }

  /** Starts a new connection session and returns its number (durable: sessions are rare). */
  newSession(): number {
    this.session++;
    this.write(true, false);
    return this.session;
  }

  /** Records a clean stop (exact values survive a reboot) and closes the file. */
  close(): void {
    this.write(true, true);
    closeSync(this.fd);
  }

  private write(sync: boolean, clean: boolean): void {
    const text = JSON.stringify({
      v: 1,
      next: this.nextSeq,
      lease: this.lease,
      session: this.session,
      boot: this.boot,
      clean,
    });
    const buf = Buffer.alloc(RECORD_BYTES, 0x20);
    buf.write(text, 0, 'utf8');
    buf[RECORD_BYTES - 1] = 0x0a;
    // One write of a fixed-size record at offset 0: a reader never sees two records mixed.
    writeSync(this.fd, buf, 0, RECORD_BYTES, 0);
    if (sync) fdatasyncSync(this.fd);
  }
}

function readStored(path: string, log: Logger): Stored | 'missing' | 'damaged' {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    log.warn({ path, err: (err as Error).message }, 'cannot read the sequence file');
    return 'damaged';
  }
  try {
    const v = JSON.parse(text.trim()) as Record<string, unknown>;
    const ok = (x: unknown): x is number =>
      typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
    if (!ok(v.next) || !ok(v.lease) || !ok(v.session)) return 'damaged';
    return {
      next: v.next,
      lease: Math.max(v.lease, v.next),
      session: v.session,
      boot: typeof v.boot === 'string' ? v.boot : undefined,
      clean: v.clean === true,
    };
  } catch {
    return 'damaged';
  }
}
