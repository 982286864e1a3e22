import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../agent/core/clock.js';
import { silentLogger } from '../../../test/helpers/log-sink.js';
import { Spool, type DropReason } from './spool.js';

const WRITER = new URL('./fixtures/crash-writer.mjs', import.meta.url).pathname;
const BUILT = new URL('../../../dist/edge/mqtt/spool/spool.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'gpulse-spool-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the writer until it has acknowledged `acks` batches, then SIGKILLs it mid-work. */
async function runAndKill(acks: number, spooled: Set<number>, consumed: Set<number>) {
  const child = spawn(process.execPath, [WRITER, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );
  // Every line is read, also those written between the decision to kill and the kill: a
  // "consumed" line left unread there made its acknowledged (deleted) records look lost.
  const lines = createInterface({ input: child.stdout });
  const closed = new Promise<void>((resolve) => lines.on('close', resolve));
  let seen = 0;
  let killing = false;
  lines.on('line', (line) => {
    const [kind, ...seqs] = line.split(' ');
    if (kind === 'spooled') {
      for (const s of seqs) spooled.add(Number(s));
      seen++;
    } else if (kind === 'consumed') {
      for (const s of seqs) consumed.add(Number(s));
    }
    if (seen >= acks && !killing) {
      killing = true;
      // A random delay so the kill lands anywhere: mid-write, mid-fsync, mid-delete.
      setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 15));
    }
  });
  await closed;
  const signal = await exited;
  expect(signal, `writer died on its own: ${stderr}`).toBe('SIGKILL');
}

describe('spool crash safety', () => {
  it('loses nothing acknowledged as spooled when the writer is killed with SIGKILL at any moment', async () => {
    // Needs the compiled spool (npm run build; CI builds before testing).
    expect(existsSync(BUILT), `${BUILT} missing: run npm run build first`).toBe(true);
    const spooled = new Set<number>();
    const consumed = new Set<number>();
    for (let round = 0; round < 6; round++) {
      await runAndKill(10 + Math.floor(Math.random() * 60), spooled, consumed);
      const drops = new Map<DropReason, number>();
      const spool = await Spool.open({
        dir,
        clock: systemClock,
        log: silentLogger(),
        maxBytes: 64 * 1024 * 1024,
        maxAgeMs: 7 * 86_400_000,
        segmentBytes: 64 * 1024,
        onDrop: (reason, count) => drops.set(reason, (drops.get(reason) ?? 0) + count),
      });
      const records = await spool.read(0, 1_000_000);
      const seqs = records.map((r) => r.seq);
      // In order, each once, each with its own content intact.
      expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
      for (const r of records)
        expect(r.data.subarray(0, 8).toString()).toMatch(new RegExp(`^${r.seq}:`));
      const present = new Set(seqs);
      const lost = [...spooled].filter((s) => !consumed.has(s) && !present.has(s));
      expect(lost, `round ${round}`).toEqual([]);
      // A kill is no damage: a torn write is cut off uncounted. Only records of the batch the kill
      // interrupted (never acknowledged, e.g. events not yet written beside written telemetry)
      // may count as missing.
      expect(drops.get('corrupt') ?? 0, `round ${round}`).toBe(0);
      const top = Math.max(0, ...seqs);
      let unacknowledged = 0;
      for (let s = 1; s <= top; s++) if (!spooled.has(s) && !present.has(s)) unacknowledged++;
      expect(drops.get('missing') ?? 0, `round ${round}`).toBeLessThanOrEqual(unacknowledged);
      await spool.close();
    }
    expect(spooled.size).toBeGreaterThan(50);
  }, 120_000);
});
