import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GpuProcessUtilization } from '../../agent/core/facts.js';
import { parsePmonLine, PmonSampler } from './pmon.js';

const DIR = join(import.meta.dirname, 'fixtures', 'text');
const FILES = readdirSync(DIR).filter((f) => f.endsWith('__pmon.txt'));

function samples(file: string): GpuProcessUtilization[][] {
  const out: GpuProcessUtilization[][] = [];
  const s = new PmonSampler((x) => out.push(x));
  for (const line of readFileSync(join(DIR, file), 'utf8').split('\n')) {
    expect(s.push(line), line).toBe(true);
  }
  s.flush();
  return out;
}

describe('nvidia-smi pmon fixtures', () => {
  it('has the nine captures', () => {
    expect(FILES).toHaveLength(9);
  });

  it.each(FILES)('%s: five samples, every line parsed', (file) => {
    const got = samples(file);
    expect(got).toHaveLength(5);
    const perSample = got.map((s) => s.length);
    expect(new Set(perSample).size).toBe(1);
  });

  it('H100 under load: gpu_burn at 99 % SM, 10 % memory; the memory hogs idle (0, not absent)', () => {
    const first = samples('linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01__load__pmon.txt')[0]!;
    // An idle memory hog: 0 % of SM and memory, no encoder or decoder column values.
    const memhog = (pid: number) => ({
      pid,
      gpuIndex: 0,
      processName: 'memhog',
      type: 'C',
      smRatio: 0,
      memoryRatio: 0,
      encoderRatio: undefined,
      decoderRatio: undefined,
    });
    expect(first).toEqual([
      memhog(11327),
      memhog(11328),
      {
        pid: 11345,
        gpuIndex: 0,
        processName: 'gpu_burn',
        type: 'C',
        smRatio: 0.99,
        memoryRatio: 0.1,
        encoderRatio: undefined,
        decoderRatio: undefined,
      },
    ]);
  });

  it('MIG: every value "-" means the GPU cannot tell, so no value at all', () => {
    for (const file of [
      'linux-x86_64__nvidia-h100-mig__590.48.01__load__pmon.txt',
      'linux-x86_64__nvidia-h200-mig__590.48.01__load__pmon.txt',
    ]) {
      for (const s of samples(file)) {
        expect(s.map((r) => [r.smRatio, r.memoryRatio])).toEqual([
          [undefined, undefined],
          [undefined, undefined],
          [undefined, undefined],
        ]);
      }
    }
  });

  it('NVENC load: encoder share per ffmpeg process, C+G type, graphics clients 0', () => {
    const s = samples('linux-x86_64__nvidia-geforce-rtx-4080-super__595.71.05__load__pmon.txt')[0]!;
    expect(s.find((r) => r.pid === 2165)).toMatchObject({
      type: 'C+G',
      processName: 'kwin_wayland',
      smRatio: 0,
      decoderRatio: 0,
    });
    expect(s.find((r) => r.pid === 5022)).toMatchObject({
      smRatio: 0.05,
      memoryRatio: 0.01,
      encoderRatio: 0.54,
    });
  });

  it('Windows: names with spaces, 16 characters, headers repeated mid-stream', () => {
    const s = samples('windows-x86_64__nvidia-geforce-rtx-2080-super__591.86__load__pmon.txt');
    expect(s[0]?.find((r) => r.pid === 4680)?.processName).toBe('NVIDIA Share.exe');
    expect(s[0]?.find((r) => r.pid === 25704)).toMatchObject({ smRatio: 0.03, encoderRatio: 0.49 });
  });
});

describe('parsePmonLine', () => {
  it('the no-process row, an older driver without jpg/ofa, garbage', () => {
    expect(
      parsePmonLine(
        '    0          -     -      -      -      -      -      -      -    -              ',
      ),
    ).toEqual({ kind: 'idle', gpuIndex: 0 });
    const old = ['gpu', 'pid', 'type', 'sm', 'mem', 'enc', 'dec', 'command'];
    expect(
      parsePmonLine('    1      4242     C     45     12      -      -   python', old),
    ).toEqual({
      kind: 'row',
      row: {
        gpuIndex: 1,
        pid: 4242,
        type: 'C',
        sm: 45,
        mem: 12,
        enc: undefined,
        dec: undefined,
        command: 'python',
      },
    });
    expect(parsePmonLine('Failed to initialize NVML: Driver/library version mismatch')).toEqual({
      kind: 'garbage',
    });
    expect(parsePmonLine('# gpu pid type sm mem enc dec command')).toEqual({
      kind: 'header',
      columns: old,
    });
  });
});
