import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  chunkDelta,
  createHarness,
  harnessApplyArgs,
  matchesManifest,
  type Harness,
} from '../../test/helpers/models/harness.js';
import { fineTune, writeModel } from '../../test/helpers/models/model-gen.js';
import { parseEnvelope, parseSignedManifest } from './manifest.js';
import { ModelPaths, readState } from './state.js';
import { PAUSE_POINTS, type PausePoint } from './updater.js';

// Power loss at any step must leave `current` on a fully verified version, and the next run must
// finish the update. The built CLI is killed with SIGKILL exactly at each state (test hook).

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'agent', 'main.js');

function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [CLI, 'model', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done };
}

/** The invariant after any crash: `current`, when present, resolves to a complete, verified version. */
async function currentIsVerified(root: string): Promise<string | undefined> {
  const link = await readlink(join(root, 'current')).catch(() => undefined);
  if (!link) return undefined;
  expect(link).toMatch(/^versions\/[^/]+$/);
  expect(link.endsWith('.partial')).toBe(false);
  const version = link.slice('versions/'.length);
  const m = parseSignedManifest(
    parseEnvelope(await readFile(join(root, 'manifests', `${version}.json`), 'utf8')).signed,
  );
  expect(await matchesManifest(join(root, link), m)).toBe(true);
  return version;
}

describe('SIGKILL of `gpulse model apply` at every state', () => {
  let h: Harness;

  beforeEach(async () => {
    if (!existsSync(CLI))
      throw new Error(`${CLI} is missing: run \`npm run build\` before these tests`);
    h = await createHarness();
    const v1 = randomBytes(6 * 1024 * 1024);
    await writeModel(join(h.tmp, 'm1'), v1);
    await writeModel(join(h.tmp, 'm2'), fineTune(v1, 0.1, 3, 32 * 1024));
    await h.publish(join(h.tmp, 'm1'), '1.0.0', 1);
    expect((await h.apply()).outcome).toBe('committed');
    await h.publish(join(h.tmp, 'm2'), '2.0.0', 2);
  });

  afterEach(async () => {
    await h.cleanup();
  });

  const applyArgs = (extra: string[] = []) => [
    ...harnessApplyArgs(h),
    '--trial',
    '500ms',
    '--parallel',
    '1',
    '--log-level',
    'warn',
    '--json',
    ...extra,
  ];

  async function killAt(point: PausePoint, extra: string[] = []): Promise<void> {
    const pauseFile = join(h.tmp, `paused-${point}-${Date.now()}`);
    const run = runCli(applyArgs(extra), {
      GPULSE_TEST_PAUSE_AT: point,
      GPULSE_TEST_PAUSE_FILE: pauseFile,
    });
    try {
      await expect
        .poll(() => existsSync(pauseFile), {
          timeout: 60_000,
          interval: 25,
          message: `${pauseFile} to appear`,
        })
        .toBe(true);
    } catch (err) {
      run.child.kill('SIGKILL');
      const out = await run.done;
      throw new Error(
        `${(err as Error).message}; the CLI ended with ${out.code}: ${out.stdout}${out.stderr}`,
        { cause: err },
      );
    }
    run.child.kill('SIGKILL');
    const out = await run.done;
    expect(out.code).toBeNull();
    await rm(pauseFile);
  }

  const healthy = PAUSE_POINTS.filter((p) => p !== 'rolling_back');

  it.each(healthy)(
    'killed at %s: current stays verified, the restart commits v2',
    async (point) => {
      await killAt(point);
      const during = await currentIsVerified(h.root);
      expect(['1.0.0', '2.0.0']).toContain(during);
      const state = await readState(new ModelPaths(h.root), 'detector');
      expect(state.update?.state).toBe(
        point === 'downloading' ? 'downloading' : point === 'activating' ? 'verified' : point,
      );

      const restart = await runCli(applyArgs()).done;
      expect(restart.code, restart.stderr).toBe(0);
      expect(JSON.parse(restart.stdout)).toMatchObject({ outcome: 'committed', version: '2.0.0' });
      expect(await currentIsVerified(h.root)).toBe('2.0.0');
      expect(await readlink(join(h.root, 'previous'))).toBe('versions/1.0.0');
      expect((await readdir(join(h.root, 'versions'))).sort()).toEqual(['1.0.0', '2.0.0']);
      const after = await readState(new ModelPaths(h.root), 'detector');
      expect(after.update).toMatchObject({ state: 'committed', version: '2.0.0' });
      if (point === 'downloading') {
        // The restart resumed: chunks the killed run had verified and written were not fetched again.
        const { bytes: fresh } = await chunkDelta(h.store, 1, 2);
        expect(fresh).toBeGreaterThan(0);
        expect(after.update!.bytes_to_download).toBeLessThanOrEqual(fresh * 0.6);
      }
    },
  );

  it('killed while rolling back: the restart finishes the rollback to v1', async () => {
    await killAt('rolling_back', ['--health-cmd', 'false']);
    expect(['1.0.0', '2.0.0']).toContain(await currentIsVerified(h.root));
    const restart = await runCli(applyArgs(['--health-cmd', 'false'])).done;
    expect(restart.code).toBe(3);
    expect(JSON.parse(restart.stdout)).toMatchObject({
      outcome: 'rolled_back',
      version: '2.0.0',
      reason: 'command_failed',
    });
    expect(await currentIsVerified(h.root)).toBe('1.0.0');
    const state = await readState(new ModelPaths(h.root), 'detector');
    expect(state.quarantined.map((q) => q.release)).toEqual([2]);
  });

  it('rolls back after the trial was interrupted more often than --max-trial-starts', async () => {
    await killAt('trial', ['--max-trial-starts', '2']);
    await killAt('trial', ['--max-trial-starts', '2']);
    const third = await runCli(applyArgs(['--max-trial-starts', '2'])).done;
    expect(third.code).toBe(3);
    expect(JSON.parse(third.stdout)).toMatchObject({
      outcome: 'rolled_back',
      reason: 'trial_restarts',
    });
    expect(await currentIsVerified(h.root)).toBe('1.0.0');
  });
});
