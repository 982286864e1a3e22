import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exited, recordStdout, startSimulator } from '../../../test/helpers/simulator-process.js';
import { builtAndFresh, describeWhen } from '../../../test/helpers/tools.js';
import { parseTegrastatsLine } from '../parse.js';

const here = import.meta.dirname;
const root = join(here, '../../..');
const entry = join(root, 'dist/collectors/tegrastats/simulator/tegrastats.js');

// These run the built binary as the agent does; tests run on sources, so they need `npm run build`
// (npm test does it): a missing or stale build is named with its fix, and fails under CI.
const built = builtAndFresh(entry, [here, join(here, '..'), join(root, 'collectors/simulation')]);

const start = (args: string[], env: Record<string, string> = {}) =>
  startSimulator(entry, args, env);

describe('entry file', () => {
  it('starts with a node shebang so the build marks it executable', () => {
    expect(readFileSync(join(here, 'tegrastats.ts'), 'utf8').split('\n')[0]).toBe(
      '#!/usr/bin/env node',
    );
  });
});

describeWhen('built binary (real process)', [built], () => {
  it('streams a line per interval as it goes and dies of SIGTERM like the real one', async () => {
    const child = start(['--interval', '150'], { GPULSE_SIM_PROFILE: 'jetson-tx2' });
    const out = recordStdout(child);
    await expect
      .poll(() => out.text.split('\n').length, { timeout: 10_000, interval: 20 })
      .toBeGreaterThanOrEqual(5);
    child.kill('SIGTERM');
    expect(await exited(child)).toEqual({ code: null, signal: 'SIGTERM' });
    const lines = out.text.split('\n').filter(Boolean);
    expect(lines.every((l) => parseTegrastatsLine(l)?.rails.length === 6)).toBe(true);
    // Flushed one by one, not in one block at exit.
    expect(out.arrivals[out.arrivals.length - 1]! - out.arrivals[0]!).toBeGreaterThanOrEqual(300);
  });

  it('with hang:sigterm=ignore shrugs off SIGTERM while hung, as a read stuck in the kernel', async () => {
    const simStart = Date.now();
    const child = start(['--interval', '100'], {
      GPULSE_SIM_PROFILE: 'jetson-orin',
      GPULSE_SIM_START: String(simStart),
      GPULSE_SIM_SCENARIO: 'hang:after=3s,sigterm=ignore',
    });
    // A first line says the tool runs, so its SIGTERM handler (set before it starts) is there...
    let text = '';
    child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
    await expect.poll(() => text.includes('\n'), { timeout: 10_000, interval: 20 }).toBe(true);
    // ...and the hang begins 3 s after GPULSE_SIM_START by the wall clock the handler reads.
    await expect
      .poll(() => Date.now() - simStart, { timeout: 10_000, interval: 20 })
      .toBeGreaterThan(3100);
    child.kill('SIGTERM');
    const raced = await Promise.race([
      exited(child),
      new Promise<'alive'>((r) => setTimeout(() => r('alive'), 700)),
    ]);
    expect(raced).toBe('alive');
    child.kill('SIGKILL');
    expect((await exited(child)).signal).toBe('SIGKILL');
  });
});
