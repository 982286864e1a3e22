import { spawn, type SpawnOptions } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI,
  SIM_DCGMI,
  SIM_NVIDIA_SMI,
  freePort,
  requireBuild,
  startCli,
} from '../../test/helpers/cli.js';
import { startDockerd, type TestEngine } from '../../test/helpers/dockerd.js';
import { describeWithTools, itWhen, runningAsRoot, tools } from '../../test/helpers/tools.js';
import type { DoctorReport } from './run-doctor.js';
import type { CheckResult } from './types.js';

// `gpulse doctor` as users run it: the built CLI, real files under /proc and /sys, a real dockerd,
// the project's simulated nvidia-smi and dcgmi standing in for the NVIDIA tools.

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

let tmp: string;
let listen: string;

beforeAll(async () => {
  requireBuild();
  tmp = await mkdtemp(join(tmpdir(), 'gpulse-doctor-'));
  await chmod(tmp, 0o755);
  // A free port where no agent runs, so the endpoint check is about this test only.
  listen = `127.0.0.1:${await freePort()}`;
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Environment of a host without NVIDIA tools, Docker or config: only what a test adds. */
function baseEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('GPULSE_') && k !== 'DOCKER_HOST' && k !== 'NO_COLOR') env[k] = v;
  // The simulators start with `#!/usr/bin/env node`.
  env.PATH = [dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':');
  // Never the developer's real socket: a test that wants Docker passes its own.
  env.DOCKER_HOST = `unix://${join(tmp, 'no-docker.sock')}`;
  // Deterministic on machines that do have a GPU: this path never exists.
  env.GPULSE_NVIDIA_SMI = join(tmp, 'no-driver', 'nvidia-smi');
  env.GPULSE_DCGMI = join(tmp, 'no-dcgm', 'dcgmi');
  env.GPULSE_LISTEN = listen;
  return { ...env, ...extra };
}

function doctor(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  opts: SpawnOptions = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'doctor', ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...opts,
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function doctorJson(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  opts: SpawnOptions = {},
) {
  const run = await doctor(['--json', ...args], env, opts);
  let report: DoctorReport;
  try {
    report = JSON.parse(run.stdout) as DoctorReport;
  } catch {
    throw new Error(
      `doctor --json printed no JSON (exit ${run.code}):\n${run.stdout}\n${run.stderr}`,
    );
  }
  const check = (id: string): CheckResult => {
    const c = report.checks.find((x) => x.id === id);
    if (!c) throw new Error(`no check ${id} in ${run.stdout}`);
    return c;
  };
  return { ...run, report, check };
}

describe('gpulse doctor on a host without a GPU', () => {
  it('fails the required nvidia-smi check with its fix, passes the checks that hold, and exits 1', async () => {
    const modelDir = join(tmp, 'models', 'resnet');
    const env = baseEnv({
      GPULSE_MODELS: JSON.stringify([
        {
          name: 'resnet',
          source: 'https://models.example/resnet',
          dir: modelDir,
          trust: join(tmp, 'k.pub'),
        },
      ]),
    });
    const run = await doctor([], env);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe('');
    // Not a terminal: no colours.
    expect(run.stdout).not.toContain('\u001b[');
    const lines = run.stdout.split('\n');
    const row = (title: string) => lines.find((l) => l.slice(2).startsWith(`${title} `)) ?? '';
    expect(row('nvidia-smi')).toMatch(/^✖ nvidia-smi +fail\* +.*unusable: not found$/);
    expect(row('cgroup version')).toMatch(/^✔ cgroup version +ok +v[12] /);
    expect(row('host /proc')).toMatch(/^✔ host \/proc +ok +\/proc/);
    expect(row('free disk')).toMatch(
      new RegExp(`^✔ free disk +ok +model resnet ${modelDir}: .* free of `),
    );
    expect(row('driver / CUDA')).toMatch(/^- driver \/ CUDA +skip +/);
    expect(row('Docker socket')).toMatch(/^⚠ Docker socket +warn +no Docker socket at /);
    expect(row('agent endpoint')).toMatch(/^⚠ agent endpoint +warn +no agent answers at /);
    // The fix for the failure: what is wrong and the setting/command that fixes it.
    const fixes = run.stdout.slice(run.stdout.indexOf('What to do:'));
    expect(fixes).toContain('✖ nvidia-smi (required)');
    expect(fixes).toContain(
      `problem: \`${env.GPULSE_NVIDIA_SMI}\` is not installed or not on PATH`,
    );
    expect(fixes).toMatch(
      /fix: +.*install the NVIDIA driver.*GPULSE_NVIDIA_SMI=\/path\/to\/nvidia-smi/,
    );
    expect(run.stdout).toMatch(/1 failed \(1 required, marked \*\), .*: not ready \(exit 1\)\n$/);
  });

  it('prints one stable JSON object with --json', async () => {
    const { code, report, check } = await doctorJson([], baseEnv());
    expect(code).toBe(1);
    expect(Object.keys(report)).toEqual([
      'schemaVersion',
      'gpulseVersion',
      'ok',
      'exitCode',
      'summary',
      'checks',
    ]);
    expect(report).toMatchObject({ schemaVersion: 1, ok: false, exitCode: 1 });
    expect(report.gpulseVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(report.checks.map((c) => c.id)).toEqual([
      'nvidia-smi',
      'driver-cuda',
      'container-toolkit',
      'docker',
      'cri',
      'pod-resources',
      'cgroup',
      'host-proc',
      'dcgm',
      'mqtt',
      'disk',
      'agent',
    ]);
    for (const c of report.checks) {
      expect(['ok', 'warn', 'fail', 'skip']).toContain(c.status);
      expect(typeof c.required).toBe('boolean');
      expect(c.finding.length).toBeGreaterThan(0);
      expect(c.finding).not.toContain('\n');
      if (c.status === 'fail' || c.status === 'warn') {
        expect(c.problem, c.id).toBeTruthy();
        expect(c.fix, c.id).toBeTruthy();
      }
    }
    expect(check('nvidia-smi')).toMatchObject({
      status: 'fail',
      required: true,
      details: { reason: 'not_found', mode: 'auto' },
    });
    const counted = report.checks.reduce<Record<string, number>>((acc, c) => {
      acc[c.status] = (acc[c.status] ?? 0) + 1;
      return acc;
    }, {});
    expect(report.summary).toEqual({
      ok: counted.ok ?? 0,
      warn: counted.warn ?? 0,
      fail: counted.fail ?? 0,
      skip: counted.skip ?? 0,
      requiredFailed: 1,
    });
    // Nothing is configured for these: they are skipped, not failed.
    expect(check('mqtt')).toMatchObject({
      status: 'skip',
      finding: 'MQTT not configured (mqtt.url unset)',
    });
    expect(check('disk').status).toBe('skip');
    expect(check('dcgm').status).toBe('skip');
  });

  it('passes when the nvidia-smi collector is off (a host known to have no GPU)', async () => {
    const { code, check } = await doctorJson([], baseEnv({ GPULSE_NVIDIA_SMI_MODE: 'off' }));
    expect(check('nvidia-smi').status).toBe('skip');
    expect(code).toBe(0);
  });

  it('explains a driver that is not loaded', async () => {
    const { code, check } = await doctorJson(
      [],
      baseEnv({ GPULSE_NVIDIA_SMI: SIM_NVIDIA_SMI, GPULSE_SIM_SCENARIO: 'no-driver' }),
    );
    expect(code).toBe(1);
    expect(check('nvidia-smi')).toMatchObject({
      status: 'fail',
      required: true,
      finding: `${SIM_NVIDIA_SMI} unusable: driver not loaded`,
    });
    expect(check('nvidia-smi').problem).toContain('(exit 9)');
    expect(check('nvidia-smi').fix).toContain('sudo modprobe nvidia');
  });

  it('reports an invalid configuration and exits 2 before checking anything', async () => {
    const run = await doctor([], baseEnv({ GPULSE_NVIDIA_SMI_MODE: 'sometimes' }));
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('collectors.nvidia-smi.mode:');
  });
});

describe('gpulse doctor with the simulated NVIDIA tools', () => {
  it('passes nvidia-smi and reports the simulated driver and CUDA versions', async () => {
    const env = baseEnv({ GPULSE_NVIDIA_SMI: SIM_NVIDIA_SMI, GPULSE_SIM_PROFILE: 'h100-8x' });
    const { code, check, report } = await doctorJson([], env);
    expect(check('nvidia-smi')).toMatchObject({
      status: 'ok',
      required: true,
      finding: `${SIM_NVIDIA_SMI} answers: 8 GPUs (NVIDIA H100 80GB HBM3)`,
      details: { gpus: 8 },
    });
    expect(check('driver-cuda')).toMatchObject({
      status: 'ok',
      details: { driverVersion: '590.48.01', cudaVersion: '13.1' },
    });
    expect(check('driver-cuda').finding).toContain('driver 590.48.01, CUDA 13.1');
    // A GPU is here but no toolkit: worth a warning, never a failure of the agent.
    expect(check('container-toolkit')).toMatchObject({ status: 'warn', required: false });
    expect(check('container-toolkit').fix).toContain(
      'nvidia-ctk runtime configure --runtime=docker',
    );
    expect(report.summary.requiredFailed).toBe(0);
    expect(code).toBe(0);
  });

  it('names a GPU fallen off the bus among the others, with the fix', async () => {
    const env = baseEnv({
      GPULSE_NVIDIA_SMI: SIM_NVIDIA_SMI,
      GPULSE_SIM_PROFILE: 'h100-8x',
      GPULSE_SIM_SCENARIO: 'gpu-lost:after=0s,gpu=2',
    });
    const { code, check } = await doctorJson([], env);
    expect(code).toBe(1);
    expect(check('nvidia-smi')).toMatchObject({
      status: 'fail',
      required: true,
      finding: `${SIM_NVIDIA_SMI} answers for 7 GPUs; lost: GPU 2 at 00000000:18:00.0 (Unknown Error)`,
      details: { gpus: 7, lost: 1 },
    });
    expect(check('nvidia-smi').fix).toContain('a GPU fell off the bus');
    // The versions still come from the document of the GPUs that answer.
    expect(check('driver-cuda').details).toMatchObject({
      driverVersion: '590.48.01',
      cudaVersion: '13.1',
    });
  });

  it('reports another profile’s versions (driver 610, CUDA from the deprecated-field layout)', async () => {
    const env = baseEnv({
      GPULSE_NVIDIA_SMI: SIM_NVIDIA_SMI,
      GPULSE_SIM_PROFILE: 'rtx-2080-super',
    });
    const { check } = await doctorJson(['--cuda', '12.4'], env);
    expect(check('nvidia-smi').finding).toContain('1 GPU (NVIDIA GeForce RTX 2080 SUPER)');
    expect(check('driver-cuda')).toMatchObject({
      status: 'ok',
      details: {
        driverVersion: '610.57.04',
        cudaVersion: '13.3',
        requestedCuda: '12.4',
        minimumDriver: '550.54.14',
        cudaSupported: true,
      },
    });
  });

  it('says whether the driver supports --cuda X.Y, and fails when it does not', async () => {
    const env = baseEnv({ GPULSE_NVIDIA_SMI: SIM_NVIDIA_SMI, GPULSE_SIM_PROFILE: 'h200' });
    const ok = await doctorJson(['--cuda', '12.4'], env);
    expect(ok.check('driver-cuda')).toMatchObject({
      status: 'ok',
      details: { cudaSupported: true },
    });
    expect(ok.check('driver-cuda').finding).toBe(
      'driver 590.48.01, CUDA 13.1: supports CUDA 12.4 (CUDA 12.4 needs driver ≥ 550.54.14)',
    );
    expect(ok.code).toBe(0);

    // 13.4 is newer than this 13.1 driver: same major, so minor version compatibility only.
    const compat = await doctorJson(['--cuda', '13.4'], env);
    expect(compat.check('driver-cuda')).toMatchObject({
      status: 'warn',
      details: { cudaSupported: false },
    });
    expect(compat.check('driver-cuda').fix).toContain('cuda-compat-13-4');
    expect(compat.code).toBe(0);

    const tooNew = await doctorJson(['--cuda', '14.0'], env);
    expect(tooNew.check('driver-cuda')).toMatchObject({ status: 'fail', required: true });
    expect(tooNew.check('driver-cuda').finding).toBe(
      'driver 590.48.01, CUDA 13.1: does not support CUDA 14.0',
    );
    expect(tooNew.check('driver-cuda').fix).toContain('reports CUDA 14.0 or newer');
    expect(tooNew.code).toBe(1);

    const bad = await doctorJson(['--cuda', 'latest'], env);
    expect(bad.check('driver-cuda').fix).toContain('gpulse doctor --cuda 12.4');
  });

  it('reaches DCGM through the simulated dcgmi, and explains a missing host engine', async () => {
    const env = baseEnv({ GPULSE_NVIDIA_SMI: SIM_NVIDIA_SMI, GPULSE_DCGMI: SIM_DCGMI });
    const up = await doctorJson([], env);
    expect(up.check('dcgm')).toMatchObject({
      status: 'ok',
      finding: 'host engine at localhost answers: 8 GPUs',
      details: { gpus: 8 },
    });

    const down = await doctorJson([], { ...env, GPULSE_SIM_DCGM: 'absent' });
    expect(down.check('dcgm')).toMatchObject({
      status: 'warn',
      required: false,
      finding: 'no DCGM host engine answers at localhost',
    });
    expect(down.check('dcgm').fix).toContain('systemctl enable --now nvidia-dcgm');
    expect(down.code).toBe(0);

    const required = await doctorJson([], {
      ...env,
      GPULSE_SIM_DCGM: 'absent',
      GPULSE_DCGM_MODE: 'required',
    });
    expect(required.check('dcgm')).toMatchObject({ status: 'fail', required: true });
    expect(required.code).toBe(1);
  });

  it('finds a running agent on its listen address', async () => {
    const agent = await startCli(['simulate', '--profile', 'h100']);
    try {
      const { check } = await doctorJson([], baseEnv({ GPULSE_LISTEN: `127.0.0.1:${agent.port}` }));
      expect(check('agent')).toMatchObject({
        status: 'ok',
        finding: `a running agent answers at http://127.0.0.1:${agent.port}/healthz`,
      });
    } finally {
      await agent.stop();
    }
  });
});

describe('gpulse doctor and the agent port', () => {
  it('tells another program on the agent port apart from no agent at all', async () => {
    const other = createServer((_req, res) => res.writeHead(404).end('not here'));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const { port } = other.address() as AddressInfo;
    try {
      const { check, code } = await doctorJson(
        [],
        baseEnv({ GPULSE_LISTEN: `127.0.0.1:${port}`, GPULSE_NVIDIA_SMI_MODE: 'off' }),
      );
      expect(check('agent')).toMatchObject({
        status: 'fail',
        required: false,
        finding: `http://127.0.0.1:${port}/healthz answered 404, not gpulse's health check`,
        details: { httpStatus: 404 },
      });
      // Not required: a port clash is reported but does not fail the host.
      expect(code).toBe(0);
    } finally {
      await new Promise((r) => other.close(r));
    }
  });
});

describeWithTools('gpulse doctor against a real dockerd', tools('dockerd'), () => {
  let engine: TestEngine;
  let socket: string;

  beforeAll(async () => {
    engine = await startDockerd({
      dir: join(tmp, 'docker'),
      // The runtime a configured NVIDIA Container Toolkit adds (dockerd only records the path).
      args: ['--add-runtime', 'nvidia=/usr/bin/nvidia-container-runtime'],
      image: false,
    });
    socket = engine.socket;
  }, 120_000);

  afterAll(() => engine.destroy(), 30_000);

  it('reaches the Engine, reports its version and runtimes, and sees the nvidia runtime', async () => {
    const env = baseEnv({ DOCKER_HOST: `unix://${socket}`, GPULSE_NVIDIA_SMI: SIM_NVIDIA_SMI });
    const { check } = await doctorJson([], env);
    const docker = check('docker');
    expect(docker.status).toBe('ok');
    expect(docker.finding).toMatch(
      new RegExp(
        `^Docker Engine \\d+\\.\\d+\\.\\d+\\S* \\(API 1\\.\\d+\\) at ${socket}: 0 containers, runtimes .*nvidia`,
      ),
    );
    expect(docker.details?.runtimes).toContain('runc');
    expect(docker.details?.runtimes).toContain('nvidia');
    // Configured in Docker, but the toolkit's programs are not installed here.
    expect(check('container-toolkit')).toMatchObject({
      status: 'warn',
      finding:
        'runtime "nvidia" configured in the Docker daemon (GET /info), but its tools are not on PATH',
      details: { configured: true, tools: [] },
    });
  });

  itWhen(
    'explains a socket this user may not use (EACCES) with the docker-group fix',
    [runningAsRoot('run gpulse doctor as uid 65534')],
    async () => {
      // dockerd makes its socket 0660 root:<docker group>: an unprivileged user is refused.
      const { check, code } = await doctorJson(
        [],
        baseEnv({
          DOCKER_HOST: `unix://${socket}`,
          GPULSE_NVIDIA_SMI_MODE: 'off',
          HOME: tmp,
        }),
        { uid: 65534, gid: 65534 },
      );
      const docker = check('docker');
      expect(docker).toMatchObject({
        status: 'fail',
        required: true,
        details: { code: 'EACCES' },
      });
      expect(docker.finding).toBe(`permission denied on ${socket} (from DOCKER_HOST)`);
      expect(docker.problem).toContain('uid 65534');
      expect(docker.fix).toMatch(/sudo usermod -aG \S+ \$USER|--group-add \d+/);
      expect(code).toBe(1);
    },
  );
});
