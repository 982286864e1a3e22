// A bad command line ends at once with exit status 2 and a message naming the flag and what it
// accepts: no stack trace, no agent started that then fails forever. Runs the built CLI.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PROFILES } from '../../collectors/nvidia-smi/simulator/profile-table.js';
import { JETSON_DEVICES } from '../../collectors/simulation/jetson.js';
import { CLI, requireBuild, startCli } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'gpulse-cli-usage-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs the CLI to its end; a command that would keep running is killed and fails the test. */
function gpulse(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ status: number | null; signal: string | null; stderr: string; stdout: string }> {
  requireBuild();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, GPULSE_LOG_FORMAT: 'json', ...env },
      },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: unknown; signal?: string | null }) | null;
        resolve({
          status: e === null ? 0 : typeof e.code === 'number' ? e.code : null,
          signal: e?.signal ?? null,
          stdout,
          stderr,
        });
      },
    );
  });
}

const profiles = [...Object.keys(PROFILES), ...Object.keys(JETSON_DEVICES)].join(', ');
const SCENARIO_FORM =
  'NAME[:after=10s,for=20s,gpu=0+3,ramp=5s,sigterm=ignore|exit] (for=inf never ends)';

describe.concurrent('gpulse simulate checks its flags before it starts', () => {
  it.each([
    [
      ['--profile', 'a100'],
      `error: option '--profile <NAME>' argument 'a100' is invalid. Known profiles: ${profiles}.`,
    ],
    [
      ['--scenario', 'meltdown'],
      `error: option '--scenario <SPEC>' argument 'meltdown' is invalid. Known scenarios: thermal-throttle, power-brake, gpu-lost, hang, memory-full, no-driver, no-devices; timing as ${SCENARIO_FORM}.`,
    ],
    [
      ['--scenario', 'thermal-throttle:after=soon'],
      `error: option '--scenario <SPEC>' argument 'thermal-throttle:after=soon' is invalid. Scenario parameter after=soon: not a duration. Expected ${SCENARIO_FORM}, durations like 500ms, 10s, 1m.`,
    ],
    [
      ['--seed', 'abc'],
      "error: option '--seed <N>' argument 'abc' is invalid. Expected a whole number from 0 to 4294967295.",
    ],
    [
      ['--process', '123'],
      "error: option '--process <PID:GPU:MIB>' argument '123' is invalid. Expected PID:GPU:MIB[:NAME], e.g. 4242:0:2048:python (a PID, a GPU index, MiB of GPU memory).",
    ],
    [
      ['--capture', join(work, 'missing.xml')],
      `error: option '--capture <FILE>' argument '${join(work, 'missing.xml')}' is invalid. No such file.`,
    ],
    [
      ['--capture', work],
      `error: option '--capture <FILE>' argument '${work}' is invalid. Not a regular file.`,
    ],
    [
      ['--process-count', '-3'],
      "error: option '--process-count <N>' argument '-3' is invalid. Expected a whole number from 0 to 4096.",
    ],
    [
      ['--profile', 'h100', '--process', '4242:1:100'],
      "error: option '--process <PID:GPU:MIB>' argument '4242:1:100' is invalid. Profile h100 has 1 GPU(s): use a GPU index from 0 to 0.",
    ],
    [
      ['--profile', 'h200', '--scenario', 'gpu-lost:gpu=3'],
      "error: option '--scenario <SPEC>' argument 'gpu-lost:gpu=3' is invalid. Profile h200 has 1 GPU(s): gpu=3 does not exist.",
    ],
    [
      ['--apps-capture', CLI],
      "error: option '--apps-capture <FILE>' needs --capture: it replays the processes of that capture.",
    ],
    [
      ['--profile', 'jetson-orin', '--process-count', '4'],
      "error: option '--process-count <N>' does not apply to jetson-orin: a Jetson runs its profile's processes; name real ones with --process PID:0:MIB.",
    ],
  ])('simulate %j', async (args, message) => {
    const r = await gpulse(['simulate', ...args, '--listen', '127.0.0.1:0']);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`${message}\n(run \`gpulse simulate --help\` for usage)\n`);
  });

  it('lists every profile, the Jetson boards included, in --help', async () => {
    const r = await gpulse(['simulate', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain(`simulated machine: ${profiles} (default:`);
  });
});

describe.concurrent(
  'every command validates its flags (exit 2, the flag and what it accepts)',
  () => {
    const publish = ['model', 'publish', '--name', 'm', '--version', '1', '--release', '1'];
    const more = ['--from', work, '--store', work, '--key', join(work, 'k')];
    const apply = ['model', 'apply', '--name', 'm', '--source', 'http://127.0.0.1:1/m/'];
    const applyMore = ['--dir', work, '--trust', join(work, 'k.pub')];
    it.each([
      [
        [...publish, ...more, '--expires', 'soon'],
        "error: option '--expires <DURATION>' argument 'soon' is invalid. Expected a duration of at least 1m, like 500ms, 30s, 10m, 1h30m or 180d.",
        'model publish',
      ],
      [
        [...publish, ...more, '--golden-tolerance', 'close'],
        "error: option '--golden-tolerance <X>' argument 'close' is invalid. Expected a number, at least 0.",
        'model publish',
      ],
      [
        [...publish, ...more, '--golden-input', 'in.bin'],
        "error: options '--golden-input <PATH>' and '--golden-expected <PATH>' go together: give both or neither.",
        'model publish',
      ],
      [
        [...apply, ...applyMore, '--trial', 'soon'],
        "error: option '--trial <DURATION>' argument 'soon' is invalid. Expected a duration, like 500ms, 30s, 10m, 1h30m or 180d.",
        'model apply',
      ],
      [
        [...apply, ...applyMore, '--parallel', 'lots'],
        "error: option '--parallel <N>' argument 'lots' is invalid. Expected a whole number from 1 to 32.",
        'model apply',
      ],
      [
        [...apply, ...applyMore, '--max-bytes', 'huge'],
        "error: option '--max-bytes <SIZE>' argument 'huge' is invalid. Expected a size of at least 1 bytes, like 1048576, 512MiB or 64GiB.",
        'model apply',
      ],
      [
        [...apply, ...applyMore, '--reload-signal', 'SIGKILL:/run/x.pid'],
        "error: option '--reload-signal <SIGNAL:PIDFILE>' argument 'SIGKILL:/run/x.pid' is invalid. Expected SIGNAL:PIDFILE such as SIGHUP:/run/server.pid, SIGNAL one of SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT.",
        'model apply',
      ],
      [
        [...apply, ...applyMore, '--health-cmd', 'curl x | grep ok'],
        'error: option \'--health-cmd <CMD>\' argument \'curl x | grep ok\' is invalid. command "curl x | grep ok" uses shell syntax ({"op":"|"}); give a plain command with arguments (it runs without a shell).',
        'model apply',
      ],
      [
        ['model', 'apply', '--name', 'm', '--source', 'ftp://h/m', ...applyMore],
        "error: option '--source <URL>' argument 'ftp://h/m' is invalid. Expected an http:// or https:// URL.",
        'model apply',
      ],
      [
        ['drift', 'profile', '--input', 'a.csv', '--out', 'b.json', '--format', 'xml'],
        "error: option '--format <FORMAT>' argument 'xml' is invalid. Allowed choices are auto, jsonl, csv.",
        'drift profile',
      ],
      [
        ['doctor', '--timeout', 'never'],
        "error: option '--timeout <DURATION>' argument 'never' is invalid. Expected a duration from 1ms to 10m, like 500ms, 30s, 10m, 1h30m or 180d.",
        'doctor',
      ],
      [['run', '--bogus'], "error: unknown option '--bogus'", 'run'],
    ])('%j', async (args, message, command) => {
      const r = await gpulse(args);
      expect(r.status).toBe(2);
      expect(r.stderr).toBe(`${message}\n(run \`gpulse ${command} --help\` for usage)\n`);
    });

    it('shows durations and sizes in --help as durations and sizes', async () => {
      const publishHelp = (await gpulse(['model', 'publish', '--help'])).stdout.replace(
        /\s+/g,
        ' ',
      );
      expect(publishHelp).toContain(
        '--expires <DURATION> validity of the manifest (default: 180d)',
      );
      const applyHelp = (await gpulse(['model', 'apply', '--help'])).stdout.replace(/\s+/g, ' ');
      expect(applyHelp).toContain('(default: 0s)');
      expect(applyHelp).toContain(
        '--stall-timeout <DURATION> abort a response silent for this long (default: 30s)',
      );
      expect(applyHelp).toContain(
        '--max-bytes <SIZE> refuse models larger than this (default: 64GiB)',
      );
      expect(applyHelp).not.toMatch(/default: \d{5,}/);
    });
  },
);

describe('gpulse run with a GPU tool path that does not exist', () => {
  it.each([
    [
      ['--nvidia-smi', join(work, 'nvidia-smi')],
      {},
      `collectors.nvidia-smi.binary: "${join(work, 'nvidia-smi')}" does not exist (from --nvidia-smi); give the path of nvidia-smi (\`command -v nvidia-smi\` prints it), or leave it unset to use nvidia-smi from PATH`,
    ],
    [
      [],
      { GPULSE_DCGMI: join(work, 'dcgmi') },
      `collectors.dcgm.binary: "${join(work, 'dcgmi')}" does not exist (from GPULSE_DCGMI); give the path of dcgmi (\`command -v dcgmi\` prints it), or leave it unset to use dcgmi from PATH`,
    ],
  ])('%j %j is a configuration error (exit 2), not "no GPU here"', async (args, env, problem) => {
    const r = await gpulse(['run', ...args, '--listen', '127.0.0.1:0'], env);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`gpulse: invalid configuration:\n  - ${problem}\n`);
  });

  it('with --nvidia-smi-mode required and no nvidia-smi, /metrics serves and /readyz says not ready', async () => {
    const cli = await startCli(['run', '--nvidia-smi-mode', 'required'], {
      PATH: '/usr/bin:/bin',
      GPULSE_NVIDIA_SMI: '',
    });
    try {
      await cli.waitForMetrics((b) =>
        b.includes('gpulse_collector_status{collector="nvidia-smi",status="error"'),
      );
      const ready = await cli.get('/readyz');
      expect(ready.status).toBe(503);
      expect(JSON.parse(ready.body)).toMatchObject({
        ready: false,
        required: ['nvidia-smi'],
        collectors: { 'nvidia-smi': { status: 'error', reason: 'binary_not_found' } },
      });
    } finally {
      await cli.stop();
    }
  });
});
