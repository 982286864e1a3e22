import { describe, expect, it } from 'vitest';
import { loadConfig, parseListen } from './config.js';
import { ConfigError } from './errors.js';
import { formatDuration, parseDuration } from './duration.js';

function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

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
