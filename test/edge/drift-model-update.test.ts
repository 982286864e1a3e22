// A model version published with `gpulse model publish --drift-reference` installs its profile as
// the model's drift reference (source "manifest") when a running `gpulse run` commits it, and again
// at the next start; a profile that does not parse leaves the update committed and the previous
// reference in place. Real CLI processes, a real store served over HTTP.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReferenceProfile, profileSha256 } from '../../agent/components/drift/profile.js';
import { CLI, requireBuild, seriesValue, startCli, type CliProcess } from '../helpers/cli.js';
import { eventually } from '../helpers/mosquitto.js';
import { writeModel } from '../helpers/models/model-gen.js';
import { StoreServer } from '../helpers/models/store-server.js';

/** Runs the built CLI to completion; fails the test with its stderr when it exits non-zero. */
function gpulse(...args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`gpulse ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

interface DriftResult {
  reference?: { source: string; sha256: string; rows: number; features: number };
}

describe('drift reference shipped in a model manifest', () => {
  let tmp: string;
  let server: StoreServer;
  let config: string;
  let expectedSha: string;
  const running: CliProcess[] = [];

  const publish = (version: string, release: number, reference: string) =>
    gpulse(
      'model',
      'publish',
      '--name',
      'detector',
      '--version',
      version,
      '--release',
      String(release),
      '--from',
      join(tmp, `m-${version}`),
      '--store',
      join(tmp, 'store'),
      '--key',
      join(tmp, 'keys', 'model-signing.key'),
      '--drift-reference',
      reference,
    );

  const start = async () => {
    const cli = await startCli(['run', '--nvidia-smi-mode', 'off', '--config', config], {
      GPULSE_DRIFT_INTERVAL: '1s',
    });
    running.push(cli);
    return cli;
  };

  const driftOf = async (cli: CliProcess): Promise<DriftResult | undefined> => {
    const res = await cli.get('/api/v1/models/detector/drift');
    return res.status === 200 ? (JSON.parse(res.body) as DriftResult) : undefined;
  };

  beforeAll(async () => {
    requireBuild();
    tmp = await mkdtemp(join(tmpdir(), 'gpulse-drift-manifest-'));
    // Reference data → profile, with the real `gpulse drift profile`.
    const lines = Array.from({ length: 1500 }, (_, i) =>
      JSON.stringify({ score: (i * 7919) % 1000, label: ['cat', 'dog', 'bird'][i % 3] }),
    );
    await writeFile(join(tmp, 'valid.jsonl'), `${lines.join('\n')}\n`);
    gpulse(
      'drift',
      'profile',
      '--input',
      join(tmp, 'valid.jsonl'),
      '--out',
      join(tmp, 'profile.json'),
      '--model',
      'detector',
    );
    expectedSha = profileSha256(
      parseReferenceProfile(await readFile(join(tmp, 'profile.json'), 'utf8')),
    );
    gpulse('model', 'keygen', '--out', join(tmp, 'keys'));
    await writeModel(join(tmp, 'm-1.0.0'), randomBytes(128 * 1024));
    await writeModel(join(tmp, 'm-2.0.0'), randomBytes(128 * 1024));
    publish('1.0.0', 1, join(tmp, 'profile.json'));
    server = new StoreServer({ root: join(tmp, 'store') });
    await server.start();
    config = join(tmp, 'gpulse.yaml');
    await writeFile(
      config,
      [
        'models:',
        '  - name: detector',
        `    source: ${server.url}detector/`,
        `    dir: ${join(tmp, 'device', 'detector')}`,
        `    trust: ${join(tmp, 'keys', 'model-signing.pub')}`,
        '    schedule: "off"',
        '    onStart: check',
        '    health:',
        '      trialWindow: 0s',
        '      command: [sh, -c, "test -f \\"$GPULSE_MODEL_DIR/weights.bin\\""]',
        '',
      ].join('\n'),
    );
  }, 120_000);

  afterAll(async () => {
    for (const cli of running) await cli.stop();
    await server?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('installs the profile when the version commits, and again at the next start', async () => {
    const first = await start();
    const installed = await eventually(
      async () => (await driftOf(first))?.reference,
      30_000,
      'the manifest reference after the commit',
    );
    expect(installed).toMatchObject({
      source: 'manifest',
      sha256: expectedSha,
      rows: 1500,
      features: 2,
    });
    const profile = JSON.parse((await first.get('/api/v1/models/detector/reference')).body) as {
      features: Record<string, unknown>;
    };
    expect(Object.keys(profile.features).sort()).toEqual(['label', 'score']);
    await first.waitForMetrics(
      (text) =>
        seriesValue(text, 'gpulse_drift_reference_info', {
          model: 'detector',
          source: 'manifest',
          sha256: expectedSha,
        }) === 1,
    );
    await first.stop();

    // 2.0.0 ships a document that is not a profile.
    await writeFile(
      join(tmp, 'broken.json'),
      JSON.stringify({ format: 'gpulse.drift-profile', features: 42 }),
    );
    publish('2.0.0', 2, join(tmp, 'broken.json'));
    const second = await start();
    const models = await eventually(
      async () => {
        const body = JSON.parse((await second.get('/models')).body) as {
          models: { state: { current?: { version: string } } | null; running: boolean }[];
        };
        const m = body.models[0];
        return m?.state?.current?.version === '2.0.0' && !m.running ? body : undefined;
      },
      30_000,
      '2.0.0 committed',
    );
    expect(models.models[0]?.state?.current?.version).toBe('2.0.0');
    // The reference installed at start from 1.0.0's manifest is still the one in use.
    expect((await driftOf(second))?.reference).toMatchObject({
      source: 'manifest',
      sha256: expectedSha,
    });
    const events = JSON.parse(
      (await second.get('/api/v1/events?type=drift.reference_invalid')).body,
    ) as { events: { severity: string; labels: Record<string, string>; message: string }[] };
    expect(events.events).toHaveLength(1);
    expect(events.events[0]).toMatchObject({
      severity: 'warning',
      labels: { model: 'detector', source: 'manifest' },
    });
    expect(events.events[0]?.message).toContain('2.0.0 (release 2)');
    expect(events.events[0]?.message).toContain('features');
    expect(
      second.logs.some(
        (l) => l.level === 40 && typeof l.msg === 'string' && l.msg.includes('was not installed'),
      ),
    ).toBe(true);
  }, 90_000);
});
