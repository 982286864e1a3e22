// `gpulse model apply` as a person at a terminal and a script in a pipe see it: on a terminal one
// line that rewrites itself with one percentage (bytes downloaded of the bytes the update needs),
// then one summary; in a pipe only the summary. The terminal is a real pseudo-terminal (script(1)).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { quote } from 'shell-quote';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { humanBytes } from '../../agent/progress-line.js';
import { CLI, requireBuild } from '../../test/helpers/cli.js';
import {
  chunkDelta,
  createHarness,
  harnessApplyArgs,
  type Harness,
} from '../../test/helpers/models/harness.js';
import { fineTune, writeModel } from '../../test/helpers/models/model-gen.js';
import { describeWithTools, findTool, tools } from '../../test/helpers/tools.js';

function run(file: string, args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) =>
    execFile(file, args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stdout}${stderr}`)) : resolve({ stdout, stderr }),
    ),
  );
}

describeWithTools('gpulse model apply progress', tools('script'), () => {
  let h: Harness;
  const v1 = randomBytes(2 * 1024 * 1024);
  const applyArgs = () => [CLI, 'model', ...harnessApplyArgs(h)];

  beforeAll(async () => {
    requireBuild();
    h = await createHarness();
  });
  afterAll(async () => h.cleanup());

  it('in a pipe: no progress, one summary line that says what moved', async () => {
    await writeModel(join(h.tmp, 'v1'), v1);
    await h.publish(join(h.tmp, 'v1'), '1.0.0', 1);
    const { stdout, stderr } = await run(process.execPath, applyArgs());
    expect(stdout).toMatch(
      /^committed detector 1\.0\.0 \(release 1\): downloaded 2\.0 MiB, reused 0 B of 2\.0 MiB, in \d+\.\d s\n$/,
    );
    expect(stderr).not.toContain('\r');
    // The logs (JSON off a terminal) say the same percentage as the terminal would.
    const downloads = stderr
      .split('\n')
      .filter((l) => l.includes('"msg":"downloading 1.0.0'))
      .map((l) => JSON.parse(l) as { percent: number; msg: string });
    expect(downloads.at(-1)?.percent).toBe(100);
    expect(downloads.at(-1)?.msg).toMatch(
      /^downloading 1\.0\.0: 2\.0 MiB of 2\.0 MiB needed \(100\.0%\), [\d.]+ [KMG]?i?B\/s$/,
    );
  });

  it('on a terminal: one updating line with one percentage, then the summary', async () => {
    await writeModel(join(h.tmp, 'v2'), fineTune(v1, 0.05, 4, 64 * 1024));
    await h.publish(join(h.tmp, 'v2'), '2.0.0', 2);
    const delta = await chunkDelta(h.store, 1, 2);
    const command = quote([process.execPath, ...applyArgs()]);
    const { stdout } = await run(findTool('script')!, ['-qfec', command, '/dev/null']);
    const frames = stdout.split('\r').map((f) => f.replaceAll('\x1b[K', ''));
    const steps = frames.map((f) => /^detector 2\.0\.0: ([a-z ]+)/.exec(f)?.[1]).filter(Boolean);
    // Each step once and in order (download reports repeat the step with new numbers).
    expect([...new Set(steps)]).toEqual([
      'downloading',
      'verifying',
      'activating',
      'checking health',
      'on trial',
      'committed',
    ]);
    const percents = frames
      .map((f) => /needed \((\d+\.\d)%\)/.exec(f)?.[1])
      .filter((p): p is string => p !== undefined)
      .map(Number);
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
    expect(percents.every((p) => p >= 0 && p <= 100)).toBe(true);
    // No log lines at a terminal's default level, and one summary, said once: the new chunks
    // and the chunk-index objects the device lacked.
    expect(stdout).not.toMatch(/INFO|committed: /);
    const summary = stdout.split('\r\x1b[K').at(-1)?.trim();
    expect(summary).toMatch(
      new RegExp(
        `^committed detector 2\\.0\\.0 \\(release 2\\): downloaded ${humanBytes(delta.bytes + delta.indexBytes).replace('.', '\\.')}, reused 1\\.\\d MiB of 2\\.\\d MiB, in \\d+\\.\\d s$`,
      ),
    );
  });
});
