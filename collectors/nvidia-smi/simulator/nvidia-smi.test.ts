import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { exited, recordStdout, startSimulator } from '../../../test/helpers/simulator-process.js';
import { builtAndFresh, describeWhen } from '../../../test/helpers/tools.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../../..');
const entry = join(root, 'dist/collectors/nvidia-smi/simulator/nvidia-smi.js');

// These run the built binary as the agent does; tests run on sources, so they need `npm run build`
// (npm test does it): a missing or stale build is named with its fix, and fails under CI.
const built = builtAndFresh(entry, [here, join(root, 'collectors/simulation')]);

const start = (args: string[], env: Record<string, string> = {}) =>
  startSimulator(entry, args, env);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('entry file', () => {
  it('starts with a node shebang so the build can mark it executable', () => {
    const text = readFileSync(join(here, 'nvidia-smi.ts'), 'utf8');
    expect(text.split('\n')[0]).toBe('#!/usr/bin/env node');
  });
});

describeWhen('built binary (real process)', [built], () => {
  it('streams one line per interval as it goes and dies of SIGTERM like the real one', async () => {
    const child = start([
      '--query-gpu=index,utilization.gpu',
      '--format=csv,noheader',
      '-lms',
      '150',
      '-i',
      '2',
    ]);
    const out = recordStdout(child);
    await expect
      .poll(() => out.arrivals.length, { timeout: 10_000, interval: 20 })
      .toBeGreaterThanOrEqual(3);
    child.kill('SIGTERM');
    const end = await exited(child);
    expect(end.signal).toBe('SIGTERM');
    expect(out.text.split('\n').filter(Boolean).slice(0, 3)).toEqual([
      expect.stringMatching(/^2, \d+ %$/),
      expect.stringMatching(/^2, \d+ %$/),
      expect.stringMatching(/^2, \d+ %$/),
    ]);
    // Chunks came apart in time: each block is flushed when it is printed.
    expect((out.arrivals[2] ?? 0) - (out.arrivals[0] ?? 0)).toBeGreaterThanOrEqual(200);
  });

  it('exits quietly when the reader goes away (EPIPE)', async () => {
    const child = start(['--query-gpu=index', '--format=csv', '-lms', '50']);
    await new Promise((r) => child.stdout?.once('data', r));
    child.stdout?.destroy();
    const end = await exited(child);
    expect(end).toEqual({ code: 0, signal: null });
  });

  it('ignores SIGTERM while hung in the driver with sigterm=ignore; SIGKILL ends it', async () => {
    // Blocks until the hang starts prove the process is up (its handler is set before the first
    // block); SIGTERM then lands inside the hang, where a process stuck in the driver stays.
    const startMs = Date.now();
    const child = start(['--query-gpu=index', '--format=csv,noheader', '-lms', '100', '-i', '0'], {
      GPULSE_SIM_START: String(startMs),
      GPULSE_SIM_SCENARIO: 'hang:after=3s,sigterm=ignore',
    });
    let out = '';
    child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    await expect.poll(() => out, { timeout: 3000, interval: 20 }).toMatch(/^0\n/);
    await sleep(startMs + 3300 - Date.now());
    const printed = out;
    child.kill('SIGTERM');
    await sleep(400);
    expect(child.exitCode).toBeNull();
    expect(child.signalCode).toBeNull();
    expect(out).toBe(printed);
    child.kill('SIGKILL');
    expect((await exited(child)).signal).toBe('SIGKILL');
  });

  it('dies of SIGTERM before the hang starts, as the default handler would', async () => {
    const startMs = Date.now();
    const child = start(['--query-gpu=index', '--format=csv,noheader', '-lms', '100', '-i', '0'], {
      GPULSE_SIM_START: String(startMs),
      GPULSE_SIM_SCENARIO: 'hang:after=60s,sigterm=ignore',
    });
    await new Promise((r) => child.stdout?.once('data', r));
    child.kill('SIGTERM');
    expect((await exited(child)).signal).toBe('SIGTERM');
  });

  it('answers -L and exits 0', async () => {
    const child = start(['-L'], { GPULSE_SIM_PROFILE: 'rtx-4080-super' });
    let out = '';
    child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    expect(await exited(child)).toEqual({ code: 0, signal: null });
    expect(out).toMatch(/^GPU 0: NVIDIA GeForce RTX 4080 SUPER \(UUID: GPU-[0-9a-f-]{36}\)\n$/);
  });
});
