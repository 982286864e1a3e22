import { describe, expect, it } from 'vitest';
import { problemsOf } from '../test/helpers/config-errors.js';
import { agentConfigSchema, loadConfig, type ConfigSources } from './config.js';
import { didYouMean, knownKeys, Provenance, showValue, valueAt } from './config-messages.js';

function problems(sources: ConfigSources): readonly string[] {
  return problemsOf(() => loadConfig(sources));
}

const yaml = (text: string) => ({ file: { name: 'gpulse.yaml', text } });

describe('configuration problems say what was expected and what was given', () => {
  it.each([
    [
      'collectors:\n  nvidia-smi:\n    interval: true\n',
      'collectors.nvidia-smi.interval: expected a duration like "500ms", "15s" or "1m", got true (from gpulse.yaml)',
    ],
    ['mqtt:\n  qos: 2\n', 'mqtt.qos: expected 0 or 1, got 2 (from gpulse.yaml)'],
    [
      'log:\n  level: loud\n',
      'log.level: expected one of trace, debug, info, warn, error, fatal, silent, got "loud" (from gpulse.yaml)',
    ],
    [
      'listen: 9489\n',
      'listen: expected HOST:PORT such as "0.0.0.0:9489", "127.0.0.1:9489", "[::1]:9489" or ":9489" (every interface), got 9489 (from gpulse.yaml)',
    ],
    ['collectors: 5\n', 'collectors: expected a mapping of settings, got 5 (from gpulse.yaml)'],
    [
      'collectors:\n  nvidia-smi:\n    excludeFields: "a"\n',
      'collectors.nvidia-smi.excludeFields: expected a list, got "a" (from gpulse.yaml)',
    ],
    [
      'collectors:\n  docker:\n    concurrency: [1]\n',
      'collectors.docker.concurrency: expected an integer, got a list ([1]) (from gpulse.yaml)',
    ],
    [
      'mqtt:\n  spool:\n    maxBytes: false\n',
      'mqtt.spool.maxBytes: expected a size like "256MiB" or a number of bytes, got false (from gpulse.yaml)',
    ],
  ])('%j', (text, problem) => {
    expect(problems(yaml(text))).toEqual([problem]);
  });

  it('names the environment variable a bad value came from', () => {
    expect(problems({ env: { GPULSE_MQTT_QOS: '2' } })).toEqual([
      'mqtt.qos: expected 0 or 1, got "2" (from GPULSE_MQTT_QOS)',
    ]);
  });

  it('attributes problems inside GPULSE_MODELS to it, with the values it gave', () => {
    const models = JSON.stringify([{ name: 'a b', source: 'ftp://x', dir: 3 }]);
    expect(problems({ env: { GPULSE_MODELS: models } })).toEqual([
      'models.0.name: letters, digits, . _ + - only, got "a b" (from GPULSE_MODELS)',
      'models.0.source: expected an http:// or https:// URL, got "ftp://x" (from GPULSE_MODELS)',
      'models.0.dir: expected a string, got 3 (from GPULSE_MODELS)',
      'models.0.trust: missing; expected a string or a list (from GPULSE_MODELS)',
    ]);
  });

  it('keeps the source of the deepest node that has one (a preset value inside a file section)', () => {
    const p = new Provenance();
    p.setTree({ mqtt: { url: 'mqtt://b', spool: {} } }, 'gpulse.yaml');
    p.set(['mqtt', 'spool', 'maxBytes'], 'preset edge');
    p.set(['mqtt', 'qos'], 'GPULSE_MQTT_QOS');
    expect(p.of(['mqtt', 'spool', 'maxBytes'])).toBe('preset edge');
    expect(p.of(['mqtt', 'spool', 'dir'])).toBe('gpulse.yaml');
    expect(p.of(['mqtt', 'qos'])).toBe('GPULSE_MQTT_QOS');
    expect(p.of(['log', 'level'])).toBe('defaults');
  });

  it('a flag wins over the file, and its problem names the flag', () => {
    expect(
      problems({
        ...yaml('collectors:\n  nvidia-smi:\n    interval: 5s\n'),
        flags: { interval: 'soon' },
      }),
    ).toEqual([
      'collectors.nvidia-smi.interval: expected a duration like "500ms", "15s" or "1m", got "soon" (from --interval)',
    ]);
  });
});

describe('unknown settings', () => {
  it('suggest the setting they were probably meant to be', () => {
    expect(
      problems(
        yaml(
          'colectors: {}\nnvidia-smi: {}\ninterval: 5s\ncollectors:\n  nvidia-smi:\n    bianry: x\n    XMLInterval: 1m\n  dockr: {}\nmqtt:\n  tls:\n    cafile: x\n',
        ),
      ),
    ).toEqual([
      'collectors.nvidia-smi.bianry: unknown setting (in gpulse.yaml); did you mean binary?',
      'collectors.nvidia-smi.XMLInterval: unknown setting (in gpulse.yaml); did you mean xmlInterval?',
      'collectors.dockr: unknown setting (in gpulse.yaml); did you mean docker?',
      'mqtt.tls.cafile: unknown setting (in gpulse.yaml); the settings of mqtt.tls are ca, cert, key (docs/configuration.md)',
      'colectors: unknown setting (in gpulse.yaml); did you mean collectors?',
      'nvidia-smi: unknown setting (in gpulse.yaml); it goes under collectors',
      'interval: unknown setting (in gpulse.yaml); the settings of the top level are preset, listen, http, log, procRoot, cgroupRoot, collectors, metrics, mqtt, gateway, drift, models (docs/configuration.md)',
    ]);
  });

  it('inside a model of GPULSE_MODELS', () => {
    const models = JSON.stringify([
      { name: 'm', source: 'https://h/m/', dir: '/m', trust: '/k.pub', shedule: 'off' },
    ]);
    expect(problems({ env: { GPULSE_MODELS: models } })).toEqual([
      'models.0.shedule: unknown setting (in GPULSE_MODELS); did you mean schedule?',
    ]);
  });

  it('didYouMean keeps to close spellings', () => {
    expect(didYouMean('bianry', ['mode', 'binary', 'interval'])).toBe('binary');
    expect(didYouMean('INTERVAL', ['mode', 'binary', 'interval'])).toBe('interval');
    expect(didYouMean('url', ['qos', 'site'])).toBeUndefined();
    expect(didYouMean('x', [])).toBeUndefined();
  });

  it('knownKeys walks through defaults, pipes and lists', () => {
    expect(knownKeys(agentConfigSchema, ['mqtt', 'tls'])).toEqual(['ca', 'cert', 'key']);
    expect(knownKeys(agentConfigSchema, ['models', 0, 'reload'])).toEqual([
      'container',
      'signal',
      'url',
      'method',
      'timeout',
    ]);
    expect(knownKeys(agentConfigSchema, ['listen'])).toEqual([]);
  });
});

describe('values in messages', () => {
  it('reads through a JSON string the way the schema does', () => {
    const raw = { models: '[{"name":"a"}]' };
    expect(valueAt(raw, ['models', 0, 'name'])).toBe('a');
    expect(valueAt(raw, ['models', 1, 'name'])).toBeUndefined();
    expect(valueAt({ models: 'not json' }, ['models', 0])).toBeUndefined();
  });

  it('shows each kind of value', () => {
    expect(
      [undefined, null, 'x', 2, true, [1, 2], { a: 1 }, { long: 'x'.repeat(50) }].map(showValue),
    ).toEqual([
      'nothing',
      'an empty value (null)',
      '"x"',
      '2',
      'true',
      'a list ([1,2])',
      'a mapping ({"a":1})',
      'a mapping ({"long":"xxxxxxxxxxxxxxxxxxxxxxxxxxxx...)',
    ]);
  });
});

describe('--listen', () => {
  it('accepts the Go exporters\' ":PORT" as every interface', () => {
    expect(loadConfig({ flags: { listen: ':9500' } }).config.listen).toEqual({
      host: '0.0.0.0',
      port: 9500,
    });
    expect(loadConfig({ env: { GPULSE_LISTEN: '[::1]:9501' } }).config.listen).toEqual({
      host: '::1',
      port: 9501,
    });
  });
});
