import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { executableProblem, explicitToolProblems } from './explicit-tools.js';

const dir = mkdtempSync(join(tmpdir(), 'gpulse-tools-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function problems(flags: Record<string, string>, env: NodeJS.ProcessEnv = {}): string[] {
  const { config, explicit } = loadConfig({ flags, env });
  return explicitToolProblems(config, explicit ?? {});
}

describe('GPU tool paths set on purpose', () => {
  it('reports a path that does not exist, with where it was set', () => {
    expect(problems({ 'nvidia-smi': join(dir, 'nvidia-smi') })).toEqual([
      `collectors.nvidia-smi.binary: "${join(dir, 'nvidia-smi')}" does not exist (from --nvidia-smi); give the path of nvidia-smi (\`command -v nvidia-smi\` prints it), or leave it unset to use nvidia-smi from PATH`,
    ]);
    expect(problems({}, { GPULSE_TEGRASTATS: join(dir, 'x', 'tegrastats') })).toEqual([
      `collectors.tegrastats.binary: "${join(dir, 'x', 'tegrastats')}" does not exist (from GPULSE_TEGRASTATS); give the path of tegrastats (\`command -v tegrastats\` prints it), or leave it unset to use tegrastats from PATH`,
    ]);
  });

  it('leaves the defaults, bare names (PATH lookups) and collectors turned off alone', () => {
    expect(problems({})).toEqual([]);
    expect(problems({ 'nvidia-smi': 'nvidia-smi-535' })).toEqual([]);
    expect(problems({ 'nvidia-smi': join(dir, 'gone'), 'nvidia-smi-mode': 'off' })).toEqual([]);
  });

  it('tells a file that cannot run from one that can', () => {
    const plain = join(dir, 'plain');
    const tool = join(dir, 'tool');
    writeFileSync(plain, '');
    writeFileSync(tool, '#!/bin/sh\n');
    chmodSync(plain, 0o644);
    chmodSync(tool, 0o755);
    expect(executableProblem(tool)).toBeUndefined();
    expect(executableProblem(dir)).toBe('is not a file');
    expect(executableProblem(join(plain, 'below'))).toBe('does not exist');
    // root may read anything but runs only files with an execute bit.
    expect(executableProblem(plain)).toBe('is not executable by this user');
  });
});
