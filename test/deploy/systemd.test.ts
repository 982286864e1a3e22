// deploy/systemd: the unit and each drop-in load without a warning (`systemd-analyze verify`),
// the hardening holds (`systemd-analyze security --offline`, which scores the sandbox), and the
// GPULSE_* variables the drop-ins set are settings the agent knows.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { settings } from '../../agent/settings.generated.js';
import { CLI, REPO_ROOT } from '../helpers/cli.js';
import { describeWithTools, tools } from '../helpers/tools.js';
import { deployPath } from './deploy-files.js';

const DIR = deployPath('systemd');
const UNIT = readFileSync(join(DIR, 'gpulse.service'), 'utf8');
const DROP_INS = readdirSync(join(DIR, 'drop-in')).filter((f) => f.endsWith('.conf'));

/** `Key=value` lines of a unit file (comments and sections left out), in order. */
function directives(text: string): [string, string][] {
  return text
    .split('\n')
    .filter((l) => /^[A-Za-z]+=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
}

describe('deploy/systemd unit', () => {
  it('starts edge devices through the gpulse-edge launcher the package installs', () => {
    const edge = directives(readFileSync(join(DIR, 'drop-in', 'edge.conf'), 'utf8'));
    expect(edge.filter(([k]) => k === 'ExecStart').map(([, v]) => v)).toEqual([
      '',
      '/usr/local/bin/gpulse-edge',
    ]);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(pkg.bin['gpulse-edge']).toBe('scripts/gpulse-edge');
  });

  it('runs the agent hardened, writing only to its state directory', () => {
    const d = new Map(directives(UNIT));
    expect(d.get('ExecStart')).toBe('/usr/local/bin/gpulse run');
    expect(Object.fromEntries(d)).toMatchObject({
      DynamicUser: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      NoNewPrivileges: 'yes',
      CapabilityBoundingSet: '',
      StateDirectory: 'gpulse',
      Restart: 'on-failure',
    });
    expect(d.get('RestrictAddressFamilies')!.split(' ')).not.toContain('AF_PACKET');
  });

  it('sets only GPULSE_* variables the agent knows', () => {
    const known = new Set(settings.flatMap((s) => (s.env ? [s.env] : [])));
    for (const file of ['gpulse.service', ...DROP_INS.map((f) => join('drop-in', f))]) {
      for (const [key, value] of directives(readFileSync(join(DIR, file), 'utf8'))) {
        if (key !== 'Environment') continue;
        const name = value.slice(0, value.indexOf('='));
        if (name.startsWith('GPULSE_')) expect(known.has(name), `${file}: ${name}`).toBe(true);
      }
    }
  });
});

describeWithTools('systemd-analyze', tools('systemd-analyze'), () => {
  const tmp = mkdtempSync(join(tmpdir(), 'gpulse-systemd-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  /** The unit with `dropIns` installed under a private unit path; ExecStart runs this checkout. */
  function install(name: string, dropIns: readonly string[]): string {
    const dir = join(tmp, name);
    mkdirSync(join(dir, 'gpulse.service.d'), { recursive: true });
    writeFileSync(
      join(dir, 'gpulse.service'),
      UNIT.replace('/usr/local/bin/gpulse run', `${process.execPath} ${CLI} run`),
    );
    for (const f of dropIns) {
      const text = readFileSync(join(DIR, 'drop-in', f), 'utf8');
      writeFileSync(
        join(dir, 'gpulse.service.d', f),
        text.replace('/usr/local/bin/gpulse-edge', join(REPO_ROOT, 'scripts', 'gpulse-edge')),
      );
    }
    return dir;
  }

  function analyze(dir: string, args: string[]) {
    return spawnSync('systemd-analyze', [...args, join(dir, 'gpulse.service')], {
      encoding: 'utf8',
      env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` },
    });
  }

  it('verifies the unit alone, with each drop-in and with all of them, without a warning', () => {
    expect(DROP_INS.sort()).toEqual(['docker.conf', 'edge.conf', 'kmsg.conf']);
    const sets = [[], ...DROP_INS.map((f) => [f]), DROP_INS];
    for (const set of sets) {
      const r = analyze(install(`verify-${set.join('-') || 'base'}`, set), ['verify']);
      expect(r.status, `${set.join(', ')}: ${r.stderr}`).toBe(0);
      expect(r.stderr, set.join(', ')).toBe('');
    }
  });

  it('scores as well sandboxed (exposure at most 3.0 of 10; with every drop-in at most 4.0)', () => {
    const exposure = (set: readonly string[]): number => {
      const r = analyze(install(`security-${set.join('-') || 'base'}`, set), [
        'security',
        '--offline=yes',
        '--no-pager',
      ]);
      const m = /Overall exposure level for gpulse\.service: ([\d.]+)/.exec(r.stdout);
      expect(m, r.stdout + r.stderr).not.toBeNull();
      return Number(m![1]);
    };
    expect(exposure([])).toBeLessThanOrEqual(3.0);
    expect(exposure(DROP_INS)).toBeLessThanOrEqual(4.0);
  });
});
