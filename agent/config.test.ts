import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { problemsOf } from '../test/helpers/config-errors.js';
import { CONFIG_FILE_LIMITS, loadConfig, parseListen, readConfigFile } from './config.js';
import { formatDuration, parseDuration } from './core/duration.js';

describe('loadConfig', () => {
  it('has working defaults with no sources', () => {
    const { config, warnings } = loadConfig();
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 9489 });
    expect(config.collectors['nvidia-smi']).toMatchObject({
      mode: 'auto',
      binary: 'nvidia-smi',
      interval: 5000,
      xmlInterval: 60_000,
      processes: 'on',
      stallIntervals: 3,
    });
    expect(config.collectors.host.interval).toBe(15_000);
    expect(warnings).toEqual([]);
  });

  it('layers file < environment < flags', () => {
    const file = {
      name: 'gpulse.yaml',
      text: 'listen: 127.0.0.1:1000\ncollectors:\n  nvidia-smi:\n    interval: 2s\n    binary: /opt/a\n',
    };
    const { config } = loadConfig({
      file,
      env: { GPULSE_NVIDIA_SMI: '/opt/b', GPULSE_LISTEN: '127.0.0.1:2000' },
      flags: { listen: '[::1]:3000' },
    });
    expect(config.collectors['nvidia-smi'].interval).toBe(2000);
    expect(config.collectors['nvidia-smi'].binary).toBe('/opt/b');
    expect(config.listen).toEqual({ host: '::1', port: 3000 });
  });

  it('reports every problem at once, each with its path and origin', () => {
    const file = {
      name: 'gpulse.yaml',
      text: 'listen: nowhere\ncolectors: {}\ncollectors:\n  nvidia-smi:\n    interval: soon\n    mode: maybe\n',
    };
    const problems = problemsOf(() => loadConfig({ file, env: { GPULSE_HOST_INTERVAL: '10' } }));
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^listen: expected HOST:PORT .*got "nowhere" \(from gpulse.yaml\)$/),
        expect.stringMatching(/^colectors: unknown setting \(in gpulse.yaml\)/),
        expect.stringMatching(/^collectors\.nvidia-smi\.interval: expected a duration .*"soon"/),
        expect.stringMatching(/^collectors\.nvidia-smi\.mode: .*(auto|required|off)/),
        expect.stringMatching(
          /^collectors\.host\.interval: must be at least 1000ms, got 10ms \(from GPULSE_HOST_INTERVAL\)$/,
        ),
      ]),
    );
    expect(problems).toHaveLength(5);
  });

  it('rejects unknown nested keys', () => {
    const file = { name: 'x.yaml', text: 'collectors:\n  nvidia-smi:\n    bianry: /x\n' };
    expect(problemsOf(() => loadConfig({ file }))).toEqual([
      'collectors.nvidia-smi.bianry: unknown setting (in x.yaml); did you mean binary?',
    ]);
  });

  it('reports YAML syntax errors with the file name', () => {
    const problems = problemsOf(() =>
      loadConfig({ file: { name: 'bad.yaml', text: 'listen: [1, 2\n' } }),
    );
    expect(problems[0]).toMatch(/^bad\.yaml: /);
  });

  it('rejects a non-mapping top level and accepts an empty file', () => {
    expect(problemsOf(() => loadConfig({ file: { name: 'l.yaml', text: '- a\n- b\n' } }))).toEqual([
      'l.yaml: the top level must be a mapping of settings',
    ]);
    expect(loadConfig({ file: { name: 'e.yaml', text: '' } }).config.listen.port).toBe(9489);
  });

  it('splits list settings from the environment and warns on unknown GPULSE_ variables', () => {
    const { config, warnings } = loadConfig({
      env: {
        GPULSE_NVIDIA_SMI_EXCLUDE_FIELDS: 'remapped_rows.histogram.*, fabric.*',
        GPULSE_LISTN: ':1',
        GPULSE_SIM_PROFILE: 'h100-8x',
        GPULSE_FROBNICATE: 'yes',
      },
    });
    expect(config.collectors['nvidia-smi'].excludeFields).toEqual([
      'remapped_rows.histogram.*',
      'fabric.*',
    ]);
    expect(warnings).toEqual([
      'unknown environment variable GPULSE_LISTN ignored: did you mean GPULSE_LISTEN?',
      'unknown environment variable GPULSE_FROBNICATE ignored (every variable: docs/configuration.md)',
    ]);
  });
});

/** A "billion laughs" file: nine levels of nine aliases each, 9^9 strings once expanded. */
const BILLION_LAUGHS = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  ...'bcdefghi'.split('').map((c, i) => {
    const prev = 'abcdefghi'[i]!;
    return `${c}: &${c} [${Array(9).fill(`*${prev}`).join(',')}]`;
  }),
].join('\n');

describe('hostile configuration', () => {
  it('a billion-laughs YAML file is an invalid configuration, not a crash', () => {
    const problems = problemsOf(() =>
      loadConfig({ file: { name: 'laughs.yaml', text: BILLION_LAUGHS } }),
    );
    expect(problems).toEqual([
      'laughs.yaml: its aliases (*name) expand into far more values than the file holds, as a YAML "billion laughs" bomb does; write the values out',
    ]);
  });

  it('a few aliases are fine', () => {
    const text = 'collectors:\n  host:\n    interval: &i 2s\n  kmsg:\n    interval: *i\n';
    const { config } = loadConfig({ file: { name: 'ok.yaml', text } });
    expect(config.collectors.kmsg.interval).toBe(2000);
  });

  it('a file nested too deeply is an invalid configuration', () => {
    const text = `a: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`;
    const problems = problemsOf(() => loadConfig({ file: { name: 'deep.yaml', text } }));
    expect(problems.length).toBeLessThanOrEqual(6);
    expect(problems[0]).toMatch(/^deep\.yaml: /);
  });

  it('refuses a config file over its size bound, also an endless one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpulse-config-'));
    try {
      const big = join(dir, 'big.yaml');
      writeFileSync(big, `# ${'x'.repeat(CONFIG_FILE_LIMITS.maxBytes)}\n`);
      expect(problemsOf(() => readConfigFile(big))).toEqual([
        `${big}: the config file is larger than 1048576 bytes; is it the right file?`,
      ]);
      expect(problemsOf(() => readConfigFile('/dev/zero'))).toHaveLength(1);
      const ok = join(dir, 'ok.yaml');
      writeFileSync(ok, 'listen: 127.0.0.1:1\n');
      expect(readConfigFile(ok)).toEqual({ name: ok, text: 'listen: 127.0.0.1:1\n' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bounds every duration: no timer overflows to 1 ms', () => {
    const env = {
      // 2^31 ms: Node.js would fire such a timer after 1 ms.
      GPULSE_NVIDIA_SMI_INTERVAL: '2147483648',
      GPULSE_KMSG_TIMEOUT: '1h',
      GPULSE_MQTT_STATUS_INTERVAL: '30d',
      GPULSE_DOCKER_RETENTION: '25d',
    };
    expect(problemsOf(() => loadConfig({ env }))).toEqual([
      'collectors.nvidia-smi.interval: must be at most 1h, got 2147483648ms (from GPULSE_NVIDIA_SMI_INTERVAL)',
      'collectors.kmsg.timeout: must be at most 10m, got 1h (from GPULSE_KMSG_TIMEOUT)',
      'collectors.docker.retention: must be at most 24d, got 25d (from GPULSE_DOCKER_RETENTION)',
      'mqtt.statusInterval: must be at most 24d, got 30d (from GPULSE_MQTT_STATUS_INTERVAL)',
    ]);
    const { config } = loadConfig({
      env: { GPULSE_NVIDIA_SMI_INTERVAL: '1h', GPULSE_DOCKER_RETENTION: '24d' },
    });
    expect(config.collectors['nvidia-smi'].interval).toBe(3_600_000);
    // The longest watchdog (100 silent intervals) still fits a timer.
    expect(100 * config.collectors['nvidia-smi'].interval).toBeLessThan(2 ** 31 - 1);
  });

  it('rates must be above zero', () => {
    expect(problemsOf(() => loadConfig({ env: { GPULSE_MQTT_REPLAY_RATE: '0' } }))).toEqual([
      'mqtt.spool.replayRate: must be at least 1, got 0 (from GPULSE_MQTT_REPLAY_RATE)',
    ]);
    expect(
      loadConfig({ env: { GPULSE_MQTT_REPLAY_RATE: '64KiB' } }).config.mqtt.spool.replayRate,
    ).toBe(65_536);
  });
});

describe('parseListen', () => {
  it.each([
    ['0.0.0.0:9489', { host: '0.0.0.0', port: 9489 }],
    ['localhost:1', { host: 'localhost', port: 1 }],
    ['[::]:9489', { host: '::', port: 9489 }],
    ['9489', undefined],
    ['host:99999', undefined],
    [':9489', { host: '0.0.0.0', port: 9489 }],
    ['[::1]:1', { host: '::1', port: 1 }],
  ])('%s', (text, expected) => {
    expect(parseListen(text)).toEqual(expected);
  });
});

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['15s', 15_000],
    ['1m', 60_000],
    ['1h30m', 5_400_000],
    ['7d', 604_800_000],
    ['250', 250],
    [1000, 1000],
    ['1.5s', 1500],
  ])('%s → %d', (input, ms) => expect(parseDuration(input)).toBe(ms));

  it.each(['', 'soon', '5 parsecs', '10x', '-1s', 's'])('rejects %j', (input) => {
    expect(parseDuration(input)).toBeUndefined();
  });

  it('rejects negative and non-finite numbers', () => {
    expect(parseDuration(-1)).toBeUndefined();
    expect(parseDuration(Number.NaN)).toBeUndefined();
  });

  it('formats back', () => {
    expect([0, 1500, 15_000, 120_000, 7_200_000, 86_400_000].map(formatDuration)).toEqual([
      '0ms',
      '1500ms',
      '15s',
      '2m',
      '2h',
      '1d',
    ]);
  });
});
