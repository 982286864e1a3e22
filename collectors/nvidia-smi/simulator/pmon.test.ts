import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GpuProcessUtilization } from '../../../agent/core/facts.js';
import { PmonSampler } from '../pmon.js';
import { runSimulated } from './harness.js';

const TEXT = join(import.meta.dirname, '..', 'fixtures', 'text');
const CAPTURES = join(import.meta.dirname, '..', 'fixtures', 'captures');
const NOW = Date.parse('2026-11-28T12:00:00Z');
const H100_PMON = readFileSync(
  join(TEXT, 'linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01__load__pmon.txt'),
  'utf8',
).split('\n');

/** Character positions where each column of a pmon line ends (right-aligned fields). */
function columnEnds(line: string): number[] {
  const ends: number[] = [];
  for (const m of line.trimEnd().matchAll(/\S+/g)) ends.push((m.index ?? 0) + m[0].length);
  return ends.slice(0, 9);
}

function parse(stdout: string): GpuProcessUtilization[][] {
  const out: GpuProcessUtilization[][] = [];
  const s = new PmonSampler((x) => out.push(x));
  for (const l of stdout.split('\n')) expect(s.push(l), l).toBe(true);
  s.flush();
  return out;
}

describe('simulated nvidia-smi pmon', () => {
  it('prints the real header and rows laid out as the H100 capture, one sample per second', async () => {
    const run = await runSimulated(
      ['pmon', '-c', '3'],
      { GPULSE_SIM_PROFILE: 'h100' },
      { nowMs: NOW },
    );
    expect(run.code).toBe(0);
    expect(run.blocks).toHaveLength(3);
    const lines = run.stdout.split('\n');
    expect(lines.slice(0, 2)).toEqual(H100_PMON.slice(0, 2));
    const captureRow = H100_PMON[2]!;
    for (const row of lines.slice(2).filter((l) => l !== '')) {
      expect(row.length, row).toBe(captureRow.length);
      expect(columnEnds(row), row).toEqual(columnEnds(captureRow));
    }
    // The capture's processes in its order, base names as pmon prints them.
    const samples = parse(run.stdout);
    expect(samples).toHaveLength(3);
    expect(samples[0]?.map((p) => p.processName)).toEqual(['memhog', 'memhog', 'gpu_burn']);
    expect(run.endMs - NOW).toBe(2000);
  });

  it('reports injected PIDs with a share of the GPU load (what attribution tests use)', async () => {
    const run = await runSimulated(
      ['pmon', '-c', '1', '-d', '2'],
      { GPULSE_SIM_PROFILE: 'h100-8x', GPULSE_SIM_PROCESSES: '4242:3:2048,4343:3:1024:trainer' },
      { nowMs: NOW + 120_000 },
    );
    const [sample] = parse(run.stdout);
    const mine = sample?.filter((p) => p.gpuIndex === 3) ?? [];
    expect(mine.map((p) => [p.pid, p.processName])).toEqual([
      [4242, 'python'],
      [4343, 'trainer'],
    ]);
    expect(mine[0]?.smRatio).toBe(mine[1]?.smRatio);
    expect(mine[0]?.smRatio ?? 0).toBeGreaterThan(0);
    // GPUs without a process print the "-" row.
    expect(run.stdout).toContain(
      '    0          -     -      -      -      -      -      -      -    -              \n',
    );
  });

  it('a GPU without processes prints the idle capture row byte for byte', async () => {
    const capture = readFileSync(
      join(CAPTURES, 'linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01__nvidia-gpu-exporter.txt'),
      'utf8',
    ).split('\n');
    const at = capture.findIndex((l) => l.startsWith('# idle :: pmon'));
    const idleRow = capture.slice(at).find((l) => /^\s+0\s+-/.test(l));
    const run = await runSimulated(
      ['pmon', '-c', '1'],
      { GPULSE_SIM_PROFILE: 'h100', GPULSE_SIM_PROCESSES: '' },
      { nowMs: NOW },
    );
    expect(run.stdout.split('\n')[2]).toBe(idleRow);
  });

  it('MIG: "-" everywhere, as the H100 MIG capture', async () => {
    const run = await runSimulated(
      ['pmon', '-c', '1'],
      { GPULSE_SIM_PROFILE: 'h100-mig' },
      { nowMs: NOW },
    );
    const rows = run.stdout.split('\n').slice(2).filter(Boolean);
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows)
      expect(r.split(/\s+/).slice(4, 10)).toEqual(['-', '-', '-', '-', '-', '-']);
  });

  it('rejects what it does not simulate the way nvidia-smi rejects options', async () => {
    const run = await runSimulated(['pmon', '-s', 'm'], {}, { nowMs: NOW });
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("ERROR: Option m is not recognized. Please run 'nvidia-smi -h'.\n");
  });
});
