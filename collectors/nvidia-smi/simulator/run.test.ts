import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseQueryCsv } from './capture.js';
import { fixturesDir } from './fixtures.js';
import { runSimulated } from './harness.js';
import { csvTimestamp } from './output.js';
import {
  EXIT_GPU_LOST,
  EXIT_NO_DEVICES,
  EXIT_NO_DRIVER,
  EXIT_UNKNOWN_ERROR,
  NO_DRIVER_MESSAGE,
  queryXmlMs,
} from './run.js';

const NOW = Date.UTC(2026, 6, 14, 8, 0, 0);

/** Environment of a simulation that began `agoMs` before NOW. */
function sim(agoMs: number, extra: Record<string, string> = {}): Record<string, string> {
  return { GPULSE_SIM_START: String(NOW - agoMs), ...extra };
}

/** Runs the simulator in-process at NOW. */
function runNow(args: string[], env: Record<string, string>): ReturnType<typeof runSimulated> {
  return runSimulated(args, env, { nowMs: NOW });
}

function rows(stdout: string): Map<string, string>[] {
  const t = parseQueryCsv(stdout);
  return t.rows.map((r) => new Map(t.columns.map((c, i) => [c.name, r[i] ?? ''] as const)));
}

describe('command line', () => {
  it('rejects an unknown field on stdout with exit 2, as nvidia-smi does', async () => {
    const run = await runNow(['--query-gpu=index,foo.bar', '--format=csv'], sim(0));
    expect(run).toMatchObject({
      code: 2,
      stdout: 'Field "foo.bar" is not a valid field to query.\n\n',
      stderr: '',
    });
  });

  it('rejects unknown options and bad combinations with the real messages', async () => {
    const bogus = await runNow(['--bogus'], sim(0));
    expect(bogus).toMatchObject({
      code: 2,
      stdout: "ERROR: Option --bogus is not recognized. Please run 'nvidia-smi -h'.\n",
    });
    for (const argv of [
      ['--format=csv'],
      ['--query-gpu=index'],
      ['-x'],
      ['-L', '--query-gpu=index', '--format=csv'],
    ]) {
      const run = await runNow(argv, sim(0));
      expect(run.code).toBe(2);
      expect(run.stdout).toBe(
        "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n",
      );
    }
  });

  it('accepts aliases and prints canonical names; `--query-gpu <fields>` works too', async () => {
    const run = await runNow(
      ['--query-gpu', 'gpu_name,clocks.sm,gpu_bus_id', '--format', 'csv', '-i', '0'],
      sim(0),
    );
    expect(run.stdout.split('\n')[0]).toBe('name, clocks.current.sm [MHz], pci.bus_id');
    expect(run.stdout.split('\n')[1]).toMatch(
      /^NVIDIA H100 80GB HBM3, \d+ MHz, 00000000:0A:00\.0$/,
    );
  });

  it('strips units only with nounits and the header only with noheader', async () => {
    const fields = '--query-gpu=memory.total,power.limit';
    const plain = await runNow([fields, '--format=csv', '-i', '0'], sim(0));
    expect(plain.stdout).toBe('memory.total [MiB], power.limit [W]\n81559 MiB, 700.00 W\n');
    const bare = await runNow([fields, '--format=csv,nounits', '-i', '0'], sim(0));
    expect(bare.stdout).toBe('memory.total [MiB], power.limit [W]\n81559, 700.00\n');
    const none = await runNow([fields, '--format=noheader,nounits,csv', '-i', '0'], sim(0));
    expect(none.stdout).toBe('81559, 700.00\n');
  });

  it('selects GPUs with -i by index, UUID or bus id; an unknown one finds no devices', async () => {
    const all = rows(
      (await runNow(['--query-gpu=index,uuid,pci.bus_id', '--format=csv'], sim(0))).stdout,
    );
    const uuid = all[5]?.get('uuid') ?? '';
    const pick = async (id: string): Promise<string> =>
      (await runNow(['--query-gpu=index', '--format=csv,noheader', '-i', id], sim(0))).stdout;
    expect(await pick('3')).toBe('3\n');
    expect(await pick(uuid)).toBe('5\n');
    expect(await pick('00000000:18:00.0')).toBe('2\n');
    expect(await pick('0000:69:00.0')).toBe('3\n');
    expect(await pick('1,7')).toBe('1\n7\n');
    const none = await runNow(['--query-gpu=index', '--format=csv', '-i', '9'], sim(0));
    expect(none).toMatchObject({ code: EXIT_NO_DEVICES, stdout: 'No devices were found\n' });
  });

  it('prints only the header for compute apps without processes, nothing with noheader', async () => {
    const env = sim(0, { GPULSE_SIM_PROCESSES: '' });
    const withHeader = await runNow(['--query-compute-apps=pid,used_memory', '--format=csv'], env);
    expect(withHeader.stdout).toBe('pid, used_gpu_memory [MiB]\n');
    const bare = await runNow(['--query-compute-apps=pid', '--format=csv,noheader'], env);
    expect(bare).toMatchObject({ code: 0, stdout: '' });
  });

  it('reports a bad simulator setting on stderr with exit 255', async () => {
    const run = await runNow(['-L'], sim(0, { GPULSE_SIM_PROFILE: 'tpu-v5' }));
    expect(run.code).toBe(255);
    expect(run.stderr).toMatch(/unknown profile "tpu-v5"/);
    const scenario = await runNow(['-L'], sim(0, { GPULSE_SIM_SCENARIO: 'melt' }));
    expect(scenario.stderr).toMatch(/unknown scenario "melt"/);
    const stray = await runNow(
      ['-L'],
      sim(0, { GPULSE_SIM_PROFILE: 'h200', GPULSE_SIM_PROCESSES: '99:1:10' }),
    );
    expect(stray.code).toBe(255);
    expect(stray.stderr).toMatch(/pid 99 on GPU 1, but profile h200 has 1 GPU/);
  });

  it('answers -h with the capture help text', async () => {
    const run = await runNow(['-h'], sim(0));
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^NVIDIA System Management Interface -- v590\.48\.01\n/);
  });
});

describe('loop mode', () => {
  it('-lms prints one block per interval with advancing timestamps, header once', async () => {
    const run = await runSimulated(
      ['--query-gpu=timestamp,index,utilization.gpu', '--format=csv', '-lms', '500', '-i', '0'],
      sim(0),
      { nowMs: NOW, maxBlocks: 4 },
    );
    expect(run.code).toBe(0);
    expect(run.blocks).toHaveLength(4);
    expect(run.blocks[0]?.split('\n')[0]).toBe('timestamp, index, utilization.gpu [%]');
    const stamps = run.blocks.map((b) => /^(\d{4}\/.*?), 0, /m.exec(b)?.[1]);
    expect(stamps).toEqual([0, 500, 1000, 1500].map((d) => csvTimestamp(NOW + d)));
    for (const b of run.blocks.slice(1)) expect(b).not.toMatch(/timestamp/);
  });

  it('-l repeats whole XML documents every second', async () => {
    const run = await runSimulated(['-q', '-x', '-l', '1', '-i', '0'], sim(0), {
      nowMs: NOW,
      maxBlocks: 3,
    });
    expect(run.blocks).toHaveLength(3);
    for (const b of run.blocks) {
      expect(b.startsWith('<?xml version="1.0" ?>\n')).toBe(true);
      expect(b.endsWith('</nvidia_smi_log>\n')).toBe(true);
    }
    // Each document comes 0.39 s after its tick: the time a real -q -x of one GPU takes.
    expect(run.endMs).toBe(NOW + 2000 + queryXmlMs(1));
    expect(queryXmlMs(1)).toBe(390);
    expect(queryXmlMs(8)).toBe(590);
  });

  it('moves values between blocks (the load curve runs on wall-clock time)', async () => {
    const run = await runSimulated(
      ['--query-gpu=power.draw.instant', '--format=csv,noheader', '-l', '1', '-i', '0'],
      sim(0),
      { nowMs: NOW, maxBlocks: 20 },
    );
    expect(new Set(run.blocks).size).toBeGreaterThan(3);
  });
});

describe('scenarios', () => {
  const throttleQuery = [
    '--query-gpu=clocks_event_reasons.active,clocks_event_reasons.hw_thermal_slowdown,clocks_event_reasons.sw_thermal_slowdown,temperature.gpu,clocks.sm,clocks_event_reasons_counters.hw_thermal_slowdown',
    '--format=csv,noheader,nounits',
    '-i',
    '0',
  ];

  it('thermal-throttle: flags, heat and slower clocks during the episode, then recovery', async () => {
    const at = async (agoMs: number): Promise<string[]> =>
      (
        await runNow(
          throttleQuery,
          sim(agoMs, { GPULSE_SIM_SCENARIO: 'thermal-throttle:after=10s,for=20s' }),
        )
      ).stdout
        .trim()
        .split(', ');
    const before = await at(5000);
    const during = await at(25_000);
    const after = await at(40_000);
    expect(before.slice(0, 3)).toEqual(['0x0000000000000000', 'Not Active', 'Not Active']);
    expect(during.slice(0, 3)).toEqual(['0x0000000000000060', 'Active', 'Active']);
    expect(Number(during[3])).toBeGreaterThanOrEqual(89);
    expect(Number(during[4])).toBeLessThan(Number(before[4]));
    expect(during[5]).toBe('15000000');
    expect(after.slice(0, 3)).toEqual(['0x0000000000000000', 'Not Active', 'Not Active']);
    expect(after[4]).toBe(before[4]);
    expect(after[5]).toBe('20000000');
  });

  it('power-brake: hw_slowdown and hw_power_brake_slowdown with low power', async () => {
    const run = await runNow(
      [
        '--query-gpu=clocks_event_reasons.active,clocks_event_reasons.hw_slowdown,clocks_event_reasons.hw_power_brake_slowdown,power.draw',
        '--format=csv,noheader,nounits',
        '-i',
        '0',
      ],
      sim(15_000, { GPULSE_SIM_SCENARIO: 'power-brake' }),
    );
    const [mask, slow, brake, power] = run.stdout.trim().split(', ');
    expect([mask, slow, brake]).toEqual(['0x0000000000000088', 'Active', 'Active']);
    expect(Number(power)).toBeLessThan(300);
  });

  it('memory-full: memory climbs to the total and the processes grow', async () => {
    const query = [
      '--query-gpu=memory.used,memory.free',
      '--format=csv,noheader,nounits',
      '-i',
      '0',
    ];
    const env = (ago: number): Record<string, string> =>
      sim(ago, { GPULSE_SIM_SCENARIO: 'memory-full:after=10s,ramp=20s' });
    const start = (await runNow(query, env(5000))).stdout;
    const full = (await runNow(query, env(60_000))).stdout;
    expect(Number(start.split(', ')[1])).toBeGreaterThan(10_000);
    expect(full).toBe('81081, 0\n');
    const apps = await runNow(
      ['--query-compute-apps=used_gpu_memory', '--format=csv,noheader,nounits', '-i', '0'],
      env(60_000),
    );
    expect(apps.stdout).toBe('81061\n');
  });

  it('gpu-lost: the lost GPU’s line stands in its rows’ place, the others still answer', async () => {
    const env = (ago: number, spec = 'gpu-lost:after=10s'): Record<string, string> =>
      sim(ago, { GPULSE_SIM_SCENARIO: spec });
    const ok = await runNow(['-L'], env(5000));
    expect(ok.code).toBe(0);
    const lost = await runNow(['--query-gpu=index,pci.bus_id', '--format=csv'], env(11_000));
    expect(lost.code).toBe(EXIT_UNKNOWN_ERROR);
    expect(lost.stdout.split('\n')).toEqual([
      'index, pci.bus_id',
      'Unable to determine the device handle for GPU0: 0000:0A:00.0: Unknown Error',
      '1, 00000000:11:00.0',
      '2, 00000000:18:00.0',
      '3, 00000000:69:00.0',
      '4, 00000000:8A:00.0',
      '5, 00000000:91:00.0',
      '6, 00000000:98:00.0',
      '7, 00000000:E9:00.0',
      '',
    ]);
    // NVML's other answer for a lost board, with its own exit status.
    const isLost = await runNow(
      ['--query-gpu=index', '--format=csv,noheader', '-i', '2'],
      env(11_000, 'gpu-lost:after=10s,gpu=2,error=lost'),
    );
    expect(isLost).toMatchObject({
      code: EXIT_GPU_LOST,
      stdout:
        'Unable to determine the device handle for GPU2: 0000:18:00.0: GPU is lost.  Reboot the system to recover this GPU\n',
    });
    // A healthy board named with -i answers as if nothing happened.
    const other = await runNow(
      ['--query-gpu=index', '--format=csv,noheader', '-i', '4'],
      env(11_000, 'gpu-lost:after=10s,gpu=2'),
    );
    expect(other).toMatchObject({ code: 0, stdout: '4\n' });
    // -L prints the lost board in the lower-case form of the list.
    const list = await runNow(['-L'], env(11_000, 'gpu-lost:after=10s,gpu=2'));
    expect(list.stdout.split('\n')[2]).toBe(
      'Unable to determine the device handle for gpu 0000:18:00.0: Unknown Error',
    );
    expect(list.stdout.split('\n')[3]).toMatch(/^GPU 3: NVIDIA H100 80GB HBM3 \(UUID: GPU-/);
    // A loop goes on: the line each tick in place of the row, the other GPUs' rows around it.
    const stream = await runSimulated(
      ['--query-gpu=index', '--format=csv,noheader', '-l', '1', '-i', '0,1'],
      env(8500),
      { nowMs: NOW, maxBlocks: 4 },
    );
    expect(stream.blocks).toEqual([
      '0\n1\n',
      '0\n1\n',
      'Unable to determine the device handle for GPU0: 0000:0A:00.0: Unknown Error\n1\n',
      'Unable to determine the device handle for GPU0: 0000:0A:00.0: Unknown Error\n1\n',
    ]);
    const recovered = await runNow(['-L'], env(40_000, 'gpu-lost:after=10s,for=20s'));
    expect(recovered.code).toBe(0);
  });

  it('gpu-lost: the process list and pmon lose the lost GPU’s processes, not the others’', async () => {
    const env = sim(11_000, { GPULSE_SIM_SCENARIO: 'gpu-lost:after=10s,gpu=2' });
    const apps = await runNow(
      ['--query-compute-apps=gpu_bus_id,pid', '--format=csv,noheader'],
      env,
    );
    expect(apps.code).toBe(EXIT_UNKNOWN_ERROR);
    const lines = apps.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(8);
    expect(lines[2]).toBe(
      'Unable to determine the device handle for GPU2: 0000:18:00.0: Unknown Error',
    );
    expect(lines.filter((l) => l.startsWith('00000000:18:00.0'))).toEqual([]);
    expect(lines[3]).toMatch(/^00000000:69:00\.0, \d+$/);
    const pmon = await runNow(['pmon', '-c', '2'], env);
    const [first, second] = pmon.blocks;
    expect(first?.split('\n').slice(0, 3)).toEqual([
      'Unable to determine the device handle for GPU2: 0000:18:00.0: Unknown Error',
      expect.stringMatching(/^# gpu +pid +type/),
      expect.stringMatching(/^# Idx/),
    ]);
    const gpus = (block: string | undefined) =>
      (block ?? '')
        .split('\n')
        .filter((l) => /^ +\d/.test(l))
        .map((l) => Number(l.trim().split(/ +/)[0]));
    expect(gpus(first)).toEqual([0, 1, 3, 4, 5, 6, 7]);
    expect(gpus(second)).toEqual([0, 1, 3, 4, 5, 6, 7]);
  });

  it('gpu-lost: -q -x has the line where the lost <gpu> was and still counts it attached', async () => {
    const env = sim(11_000, { GPULSE_SIM_SCENARIO: 'gpu-lost:after=10s,gpu=2' });
    const xml = await runNow(['-q', '-x'], env);
    expect(xml.code).toBe(EXIT_UNKNOWN_ERROR);
    const lines = xml.stdout.split('\n');
    const at = lines.indexOf(
      'Unable to determine the device handle for GPU2: 0000:18:00.0: Unknown Error',
    );
    expect(at).toBeGreaterThan(0);
    expect(lines[at + 1]).toBe('\t<gpu id="00000000:69:00.0">');
    expect(lines.filter((l) => l.startsWith('\t<gpu id=')).length).toBe(7);
    expect(xml.stdout).toContain('<attached_gpus>8</attached_gpus>');
    // The last GPU lost: its line comes before the end of the document.
    const last = await runNow(
      ['-q', '-x'],
      sim(11_000, { GPULSE_SIM_SCENARIO: 'gpu-lost:after=10s,gpu=7' }),
    );
    expect(last.stdout.trimEnd().split('\n').slice(-2)).toEqual([
      'Unable to determine the device handle for GPU7: 0000:E9:00.0: Unknown Error',
      '</nvidia_smi_log>',
    ]);
  });

  it('no-driver and no-devices fail every call with the real text and status', async () => {
    const driver = await runNow(
      ['--query-gpu=index', '--format=csv'],
      sim(0, { GPULSE_SIM_SCENARIO: 'no-driver' }),
    );
    expect(driver).toMatchObject({ code: EXIT_NO_DRIVER, stdout: NO_DRIVER_MESSAGE });
    expect(driver.stdout).toMatch(
      /^NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver\./,
    );
    const devices = await runNow(['-L'], sim(0, { GPULSE_SIM_SCENARIO: 'no-devices' }));
    expect(devices).toMatchObject({ code: EXIT_NO_DEVICES, stdout: 'No devices were found\n' });
  });

  it('applies failure scenarios to replayed captures too', async () => {
    const capture = join(fixturesDir(), 'xml/tesla-t4-processes__515.105.01__v11__telegraf.xml');
    const ok = await runNow(
      ['--query-gpu=name', '--format=csv,noheader'],
      sim(0, { GPULSE_SIM_CAPTURE: capture, GPULSE_SIM_SCENARIO: 'gpu-lost:after=10s' }),
    );
    expect(ok.stdout).toBe('Tesla T4\n');
    const lost = await runNow(
      ['--query-gpu=name', '--format=csv,noheader'],
      sim(20_000, { GPULSE_SIM_CAPTURE: capture, GPULSE_SIM_SCENARIO: 'gpu-lost:after=10s' }),
    );
    // A 515 driver names the bus alone, with a space (the shape of the 520-era reports).
    expect(lost).toMatchObject({
      code: EXIT_UNKNOWN_ERROR,
      stdout: 'Unable to determine the device handle for GPU 0000:00:1E.0: Unknown Error\n',
    });
  });

  it('hang: a one-shot call blocks until the hang ends, a loop goes silent meanwhile', async () => {
    const env = sim(12_000, { GPULSE_SIM_SCENARIO: 'hang:after=10s,for=5s' });
    const once = await runNow(['--query-gpu=timestamp', '--format=csv,noheader', '-i', '0'], env);
    expect(once.code).toBe(0);
    expect(once.stdout).toBe(`${csvTimestamp(NOW + 3000)}\n`);
    const loop = await runSimulated(
      ['--query-gpu=timestamp', '--format=csv,noheader', '-l', '1', '-i', '0'],
      sim(8000, { GPULSE_SIM_SCENARIO: 'hang:after=10s,for=5s' }),
      {
        nowMs: NOW,
        maxBlocks: 4,
      },
    );
    // Blocks at +0 s and +1 s, silence from +2 s to +6 s, then +7 s resumes.
    expect(loop.blocks).toEqual([0, 1000, 7000, 8000].map((d) => `${csvTimestamp(NOW + d)}\n`));
    const forever = await runSimulated(['-L'], sim(20_000, { GPULSE_SIM_SCENARIO: 'hang' }), {
      nowMs: NOW,
      untilMs: NOW + 3_600_000,
    });
    expect(forever).toMatchObject({ code: 0, stdout: '' });
  });
});

describe('processes', () => {
  it('reports GPULSE_SIM_PROCESSES exactly, and only their GPUs are busy', async () => {
    const env = sim(0, { GPULSE_SIM_PROCESSES: '4242:3:1234:/usr/bin/python3,777:3:100' });
    const apps = await runNow(
      ['--query-compute-apps=gpu_bus_id,pid,process_name,used_gpu_memory', '--format=csv,noheader'],
      env,
    );
    expect(apps.stdout).toBe(
      '00000000:69:00.0, 4242, /usr/bin/python3, 1234 MiB\n00000000:69:00.0, 777, python, 100 MiB\n',
    );
    const gpus = rows(
      (
        await runNow(
          [
            '--query-gpu=index,memory.used,utilization.gpu,clocks_event_reasons.gpu_idle',
            '--format=csv',
          ],
          env,
        )
      ).stdout,
    );
    expect(gpus[3]?.get('memory.used')).toBe(`${1234 + 100 + 20} MiB`);
    expect(gpus[3]?.get('clocks_event_reasons.gpu_idle')).toBe('Not Active');
    for (const g of gpus.filter((_, i) => i !== 3)) {
      expect(g.get('memory.used')).toBe('0 MiB');
      expect(g.get('utilization.gpu')).toBe('0 %');
      expect(g.get('clocks_event_reasons.gpu_idle')).toBe('Active');
    }
  });

  it('spreads GPULSE_SIM_PROCESS_COUNT=64 synthetic processes over the 8 GPUs', async () => {
    const run = await runNow(
      ['--query-compute-apps=gpu_uuid,pid', '--format=csv,noheader'],
      sim(0, { GPULSE_SIM_PROCESS_COUNT: '64' }),
    );
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(64);
    const perGpu = new Map<string, number>();
    for (const l of lines) {
      const uuid = l.split(', ')[0] ?? '';
      perGpu.set(uuid, (perGpu.get(uuid) ?? 0) + 1);
    }
    expect([...perGpu.values()]).toEqual([8, 8, 8, 8, 8, 8, 8, 8]);
    expect(new Set(lines.map((l) => l.split(', ')[1])).size).toBe(64);
  });
});
