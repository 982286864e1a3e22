import { describe, expect, it } from 'vitest';
import { ChildStream, type StreamExit } from './child-stream.js';
import { CommandError, runCommand } from './process.js';

const node = process.execPath;

function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) resolve();
      else if (Date.now() - start > timeoutMs) reject(new Error('condition not met in time'));
      else setTimeout(tick, 10);
    };
    tick();
  });
}

function stream(script: string, extra: Partial<ConstructorParameters<typeof ChildStream>[0]> = {}) {
  const lines: string[] = [];
  const exits: StreamExit[] = [];
  const s = new ChildStream({
    command: node,
    args: ['-e', script],
    stallMs: 0,
    backoffBaseMs: 20,
    backoffMaxMs: 40,
    onLine: (l) => lines.push(l),
    onExit: (e) => exits.push(e),
    ...extra,
  });
  return { s, lines, exits };
}

describe('ChildStream', () => {
  it('reads lines, reports the exit with stderr, and restarts with backoff', async () => {
    const { s, lines, exits } = stream(
      "process.stdout.write('a\\nb\\r\\npartial'); process.stderr.write('oops'); process.exit(9)",
    );
    s.start();
    await waitFor(() => exits.length >= 2);
    await s.stop();
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
    await waitFor(() => exits.length >= 1 && starts.length >= 2);
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
    await waitFor(() => lines.length >= 3);
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
    s.start();
    await waitFor(() => exits.length >= 2);
    await s.stop();
    expect(exits[0]).toMatchObject({ kind: 'spawn_error', spawnReason: 'not_found', lines: 0 });
  });

  it('restarts a child that prints an endless line (garbage)', async () => {
    const { s, exits } = stream("setInterval(() => process.stdout.write('x'.repeat(4096)), 1)", {
      maxLineBytes: 64 * 1024,
    });
    s.start();
    await waitFor(() => exits.length >= 1);
    await s.stop();
    expect(exits[0]?.kind).toBe('line_too_long');
  });

  it('stop() escalates to SIGKILL for a child that ignores SIGTERM', async () => {
    const { s, lines, exits } = stream(
      "process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000)",
    );
    s.start();
    await waitFor(() => lines.length === 1);
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
    await waitFor(() => starts.length === 1);
    s.restartNow();
    await waitFor(() => starts.length === 2);
    await s.stop();
    expect(exits[0]?.kind).toBe('stall');
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
