import { describe, expect, it } from 'vitest';
import { ChildStream, type LineVerdict, type StreamExit } from './child-stream.js';
import { systemClock, type Clock } from '../core/clock.js';
import { CommandError, runCommand } from './process.js';
import { alive } from '../../test/helpers/processes.js';

const node = process.execPath;

/** How the tests wait for real child processes (bounded, not timed). */
const POLL = { timeout: 5000, interval: 10 };

function stream(script: string, extra: Partial<ConstructorParameters<typeof ChildStream>[0]> = {}) {
  const lines: string[] = [];
  const exits: StreamExit[] = [];
  const s = new ChildStream({
    command: node,
    args: ['-e', script],
    stallMs: 0,
    backoffBaseMs: 20,
    backoffMaxMs: 40,
    onLine: (l) => {
      lines.push(l);
    },
    onExit: (e) => exits.push(e),
    ...extra,
  });
  return { s, lines, exits };
}

/** The system clock, recording the delay of every timer set through it. */
function recordingClock(): Clock & { delays: number[] } {
  const delays: number[] = [];
  return {
    delays,
    now: () => systemClock.now(),
    setTimeout(fn, ms) {
      delays.push(ms);
      return systemClock.setTimeout(fn, ms);
    },
    clearTimeout: (h) => systemClock.clearTimeout(h),
  };
}

// A wrapper script: starts two `sleep`s, prints their pids and its own, then waits.
const WRAPPER = 'sleep 300 & echo $!; sleep 300 & echo $!; echo $$; wait';

/** Starts the stream, waits until it has exited `n` times, and stops it. */
async function runUntilExits(
  s: ChildStream,
  exits: readonly StreamExit[],
  n: number,
  poll = POLL,
): Promise<void> {
  s.start();
  await expect.poll(() => exits.length, poll).toBeGreaterThanOrEqual(n);
  await s.stop();
}

describe('ChildStream', () => {
  it('reads lines, reports the exit with stderr, and restarts with backoff', async () => {
    const { s, lines, exits } = stream(
      "process.stdout.write('a\\nb\\r\\npartial'); process.stderr.write('oops'); process.exit(9)",
    );
    await runUntilExits(s, exits, 2);
    expect(lines.slice(0, 3)).toEqual(['a', 'b', 'partial']);
    expect(exits[0]).toMatchObject({
      kind: 'exit',
      code: 9,
      signal: null,
      stderr: 'oops',
      lines: 3,
    });
    expect(s.restarts).toBeGreaterThanOrEqual(1);
    expect(s.running).toBe(false);
  });

  it('kills a stream that goes silent and restarts it', async () => {
    const starts: number[] = [];
    const { s, lines, exits } = stream("console.log('tick'); setInterval(() => {}, 1000)", {
      stallMs: 150,
      onStart: (pid) => starts.push(pid ?? -1),
    });
    s.start();
    await expect.poll(() => exits.length >= 1 && starts.length >= 2, POLL).toBe(true);
    await s.stop();
    expect(exits[0]).toMatchObject({ kind: 'stall', signal: 'SIGKILL', lines: 1 });
    expect(lines[0]).toBe('tick');
    expect(new Set(starts).size).toBe(starts.length);
  });

  it('gives a slow starter its startup grace before the watchdog applies', async () => {
    const { s, lines, exits } = stream(
      "setTimeout(() => { console.log('late'); setInterval(() => console.log('x'), 50); }, 400)",
      { stallMs: 150, startupGraceMs: 2000 },
    );
    s.start();
    await expect.poll(() => lines.length, POLL).toBeGreaterThanOrEqual(3);
    await s.stop();
    expect(lines[0]).toBe('late');
    expect(exits).toEqual([]);
  });

  it('reports a missing binary as a spawn error and keeps retrying', async () => {
    const exits: StreamExit[] = [];
    const s = new ChildStream({
      command: '/nonexistent/nvidia-smi',
      args: [],
      stallMs: 0,
      backoffBaseMs: 10,
      backoffMaxMs: 20,
      onLine: () => undefined,
      onExit: (e) => exits.push(e),
    });
    await runUntilExits(s, exits, 2);
    expect(exits[0]).toMatchObject({ kind: 'spawn_error', spawnReason: 'not_found', lines: 0 });
  });

  it('restarts a child that prints an endless line (garbage)', async () => {
    const { s, exits } = stream("setInterval(() => process.stdout.write('x'.repeat(4096)), 1)", {
      maxLineBytes: 64 * 1024,
    });
    await runUntilExits(s, exits, 1);
    expect(exits[0]?.kind).toBe('line_too_long');
  });

  it('a complete line over the bound is too long too, and stops the consumer reading that run', async () => {
    const { s, lines, exits } = stream(
      "process.stdout.write('short\\n' + 'x'.repeat(2000) + '\\nafter\\n'); setInterval(() => {}, 1000)",
      { maxLineBytes: 1000 },
    );
    await runUntilExits(s, exits, 1);
    // Every run gets as far as its first line; nothing after the long one is read.
    expect(lines.filter((l) => l !== 'short')).toEqual([]);
    expect(exits[0]).toMatchObject({ kind: 'line_too_long', lines: 1 });
  });

  it('stop() escalates to SIGKILL for a child that ignores SIGTERM', async () => {
    const { s, lines, exits } = stream(
      "process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000)",
    );
    s.start();
    await expect.poll(() => lines.length, POLL).toBe(1);
    const t0 = Date.now();
    await s.stop(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    expect(s.running).toBe(false);
    expect(exits).toEqual([]);
    s.restartNow();
  });

  it('restartNow() kills the running child so it comes back', async () => {
    const starts: number[] = [];
    const { s, exits } = stream("console.log('x'); setInterval(() => {}, 1000)", {
      onStart: (pid) => starts.push(pid ?? 0),
    });
    s.start();
    s.start();
    await expect.poll(() => starts.length, POLL).toBe(1);
    s.restartNow();
    await expect.poll(() => starts.length, POLL).toBe(2);
    await s.stop();
    expect(exits[0]?.kind).toBe('stall');
  });

  it('fails a stream that prints only rejected lines and restarts it ever more slowly', async () => {
    const clock = recordingClock();
    const exits: StreamExit[] = [];
    let seen = 0;
    // `yes garbage,line`: an endless flood of lines the consumer rejects.
    const s = new ChildStream({
      command: 'yes',
      args: ['garbage,line'],
      stallMs: 0,
      backoffBaseMs: 20,
      backoffMaxMs: 160,
      maxRejectedLines: 500,
      random: () => 1,
      clock,
      onLine: (): LineVerdict => {
        seen++;
        return 'rejected';
      },
      onExit: (e) => exits.push(e),
    });
    await runUntilExits(s, exits, 5);
    expect(exits[0]).toMatchObject({ kind: 'garbage', signal: 'SIGKILL', rejected: 500 });
    expect(exits.every((e) => e.kind === 'garbage')).toBe(true);
    // Nothing after the 500th rejected line of a run reaches the consumer.
    expect(seen).toBe(500 * exits.length);
    expect(s.rejectedLines).toBe(seen);
    // Restart delays grow (full jitter at its top with random() = 1): never reset by the output.
    expect(clock.delays.filter((d) => d !== 2000).slice(0, 5)).toEqual([20, 40, 80, 160, 160]);
  });

  it('a stream whose lines stop being accepted is killed as garbage by the watchdog', async () => {
    let n = 0;
    const { s, exits } = stream("setInterval(() => console.log('line'), 20)", {
      stallMs: 300,
      startupGraceMs: 10_000,
      // The first lines parse, then the tool starts printing something else.
      onLine: () => (++n <= 3 ? 'accepted' : 'rejected'),
    });
    await runUntilExits(s, exits, 1);
    expect(exits[0]).toMatchObject({ kind: 'garbage' });
    expect(exits[0]!.rejected).toBeGreaterThan(0);
  });

  it('a garbage verdict kills the run at once', async () => {
    const { s, exits } = stream("setInterval(() => console.log('<doc>'), 10)", {
      onLine: () => 'garbage',
    });
    await runUntilExits(s, exits, 1);
    expect(exits[0]).toMatchObject({ kind: 'garbage', lines: 1 });
  });

  it('lines the consumer ignores do not keep a stalled stream alive', async () => {
    const { s, exits } = stream("setInterval(() => console.log(''), 10)", {
      stallMs: 200,
      startupGraceMs: 200,
      onLine: () => 'ignored',
    });
    await runUntilExits(s, exits, 1);
    expect(exits[0]).toMatchObject({ kind: 'stall', rejected: 0 });
  });

  it('grows the backoff for a tool that prints a line and exits; a healthy run resets it', async () => {
    const clock = recordingClock();
    const exits: StreamExit[] = [];
    let mode = 'quick';
    const s = new ChildStream({
      command: 'sh',
      // Quick: one line and exit. Healthy: a line, a second of life, another line.
      get args() {
        return ['-c', mode === 'healthy' ? 'echo ok; sleep 1; echo ok' : 'echo ok'];
      },
      stallMs: 0,
      backoffBaseMs: 20,
      backoffMaxMs: 10_000,
      healthyAfterMs: 500,
      random: () => 1,
      clock,
      onLine: () => 'accepted',
      onExit: (e) => {
        exits.push(e);
        if (exits.length === 4) mode = 'healthy';
        if (exits.length === 5) mode = 'quick';
      },
    });
    await runUntilExits(s, exits, 6, { ...POLL, timeout: 10_000 });
    // Four quick runs: 20, 40, 80, 160 ms; the fifth run was healthy, so the next wait is 20 ms again.
    expect(clock.delays.slice(0, 6)).toEqual([20, 40, 80, 160, 20, 40]);
    expect(exits.every((e) => e.kind === 'exit' && e.code === 0)).toBe(true);
  });

  it('a stall kill and stop() end the whole process group of a wrapper script', async () => {
    const runs: number[][] = [];
    let current: number[] = [];
    const starts: number[] = [];
    const s = new ChildStream({
      command: 'sh',
      args: ['-c', WRAPPER],
      stallMs: 300,
      startupGraceMs: 300,
      backoffBaseMs: 20,
      backoffMaxMs: 40,
      onStart: (pid) => {
        starts.push(pid ?? 0);
        current = [];
        runs.push(current);
      },
      onLine: (l) => {
        current.push(Number(l));
      },
      onExit: () => undefined,
    });
    s.start();
    // The first run is killed as a stall (it prints its pids and goes quiet); the second one runs.
    await expect
      .poll(() => runs.length >= 2 && runs[1]!.length === 3, { ...POLL, timeout: 10_000 })
      .toBe(true);
    const [first, second] = [runs[0]!, runs[1]!];
    expect(first).toHaveLength(3);
    await expect.poll(() => first.every((pid) => !alive(pid)), POLL).toBe(true);
    expect(second.every((pid) => alive(pid))).toBe(true);
    await s.stop();
    await expect.poll(() => second.every((pid) => !alive(pid)), POLL).toBe(true);
    expect([...first, ...second].filter(alive)).toEqual([]);
  });

  it('bounds what a flood of random bytes without newlines costs', async () => {
    const { s, exits, lines } = stream(
      "const b = require('crypto').randomBytes(65536).toString('latin1').replace(/\\n/g, ''); setInterval(() => process.stdout.write(b), 1)",
      { maxLineBytes: 256 * 1024 },
    );
    await runUntilExits(s, exits, 2);
    expect(lines).toEqual([]);
    expect(exits.slice(0, 2).map((e) => e.kind)).toEqual(['line_too_long', 'line_too_long']);
  });
});

describe('runCommand', () => {
  it('captures stdout, stderr and the exit code', async () => {
    const r = await runCommand(
      node,
      ['-e', "console.log('out'); console.error('err'); process.exit(3)"],
      {
        timeoutMs: 5000,
      },
    );
    expect(r).toMatchObject({
      code: 3,
      signal: null,
      stdout: 'out\n',
      stderr: 'err\n',
      truncated: false,
    });
  });

  it('kills a hung command at its timeout', async () => {
    const err = await runCommand(
      node,
      ['-e', "console.log('partial'); setInterval(() => {}, 1000)"],
      {
        timeoutMs: 300,
      },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err).toMatchObject({ reason: 'timeout' });
    expect((err as CommandError).message).toMatch(/did not finish within 300ms and was killed/);
  });

  it('reports a missing binary as not_found', async () => {
    await expect(runCommand('/nonexistent/tool', [], { timeoutMs: 1000 })).rejects.toMatchObject({
      reason: 'not_found',
    });
  });

  it('bounds the output it keeps', async () => {
    const r = await runCommand(node, ['-e', "process.stdout.write('y'.repeat(100000))"], {
      timeoutMs: 5000,
      maxBytes: 1000,
    });
    expect(r.stdout).toHaveLength(1000);
    expect(r.truncated).toBe(true);
  });

  it('honours an abort signal, also one already aborted', async () => {
    const ac = new AbortController();
    const p = runCommand(node, ['-e', 'setInterval(() => {}, 1000)'], {
      timeoutMs: 10_000,
      signal: ac.signal,
    });
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toMatchObject({ reason: 'aborted' });
    await expect(
      runCommand(node, ['-e', '1'], { timeoutMs: 1000, signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ reason: 'aborted' });
  });

  it('passes arguments without a shell', async () => {
    const r = await runCommand(
      node,
      ['-e', 'console.log(process.argv[1])', '$(echo injected); rm -rf /'],
      {
        timeoutMs: 5000,
      },
    );
    expect(r.stdout).toBe('$(echo injected); rm -rf /\n');
  });
});
