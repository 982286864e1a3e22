import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { collectorHarness } from '../../test/helpers/collector-harness.js';
import { nvidiaSmiConfigSchema } from './config.js';
import { createNvidiaSmiCollector } from './nvidia-smi.js';

const harness = collectorHarness('nvsmi');
const { dir } = harness;

const HELP = readFileSync(
  join(
    import.meta.dirname,
    'fixtures',
    'text',
    'help-query-gpu__recent-driver__nvidia-gpu-exporter.txt',
  ),
  'utf8',
);

// One CSV line for GPU i in the order the collector asked for.
const ROW = `
function row(i, util) {
  const v = { 'timestamp': '2026/01/01 00:00:00.000', 'index': String(i), 'uuid': 'GPU-' + i, 'name': 'Test GPU',
    'pci.bus_id': '00000000:0' + i + ':00.0', 'driver_version': '550.1', 'utilization.gpu': String(util),
    'memory.total': '81559', 'memory.used': '1024', 'memory.free': '80535', 'temperature.gpu': '41',
    'power.draw': '70.5', 'clocks.current.sm': '1980', 'fan.speed': '[N/A]', 'pstate': 'P0',
    'clocks_throttle_reasons.active': '0x0000000000000004', 'clocks_throttle_reasons.sw_power_cap': 'Active' };
  return fields.map((f) => v[f] ?? '[N/A]').join(', ');
}`;

/**
 * Writes a stand-in nvidia-smi: `body` is JavaScript run with `args` (argv), `fields` (the
 * --query-gpu list), `fs` and `row` (see ROW) in scope. Real processes, so exits, hangs and
 * garbage are real too.
 */
function standIn(name: string, body: string): string {
  return harness.standIn(
    name,
    `const args = process.argv.slice(2);
const q = args.find((a) => a.startsWith('--query-gpu='));
const fields = q ? q.slice(12).split(',') : [];
const help = ${JSON.stringify(HELP)};
if (args[0] === '--help-query-gpu') { process.stdout.write(help); process.exit(0); }
const fs = require('node:fs');
${ROW}
${body}
`,
  );
}

/**
 * A stand-in whose --query-gpu stream runs `tick` (JavaScript, the tick number `n` from 1 in
 * scope) every 100 ms; its other streams print nothing.
 */
function tickingStandIn(name: string, tick: string): string {
  return standIn(
    name,
    `if (fields.length) {
  let n = 0;
  setInterval(() => {
    n++;
    ${tick}
  }, 100);
} else { setInterval(() => {}, 1000); }`,
  );
}

const A100_XML = join(
  import.meta.dirname,
  'fixtures',
  'xml',
  'a100-sxm4-80gb-mig-enabled__535.54.03__v12__telegraf.xml',
);
const A100_UUID = 'GPU-513536b6-7d19-9063-b049-1e69664bb298';
// The `-q -x` answer of most A100 stand-ins: the capture, as one document with its newline.
const PRINT_A100_XML = `  const doc = fs.readFileSync(${JSON.stringify(A100_XML)}, 'utf8');
  process.stdout.write(doc.endsWith('\\n') ? doc : doc + '\\n');`;

/**
 * A stand-in for the A100 of the MIG capture: CSV rows of GPU 1 at 3 % under the capture's UUID,
 * `xml` (JavaScript with `fs` in scope) answering `-q -x`, and `rest` (an `else …` chain) the
 * other calls.
 */
function a100StandIn(
  name: string,
  xml: string,
  rest = 'else { setInterval(() => {}, 1000); }',
): string {
  return standIn(
    name,
    `if (fields.length) {
  setInterval(() => console.log(row(1, 3).replace('GPU-1', '${A100_UUID}')), 100);
} else if (args[0] === '-q' && args[1] === '-x') {
${xml}
  setInterval(() => {}, 1000);
} ${rest}`,
  );
}

// A lost GPU's reading is its identity as last seen and no values: neither stale nor zero.
const NO_VALUES = { clocksHz: {}, maxClocksHz: {}, throttle: {}, throttleSeconds: {} };

/** A flag file the stand-in can test and remove, there from the start. */
function flagFile(name: string): string {
  const flag = join(dir, name);
  writeFileSync(flag, '');
  return flag;
}

function run(binary: string, extra: Record<string, unknown> = {}, procRoot?: string) {
  const config = nvidiaSmiConfigSchema.parse({
    binary,
    interval: 200,
    xmlInterval: 0,
    timeout: 2000,
    // The stand-ins below print CSV whatever they are asked; pmon has its own test.
    pmon: 'off',
    ...extra,
  });
  return harness.run(createNvidiaSmiCollector(config, { random: () => 0.5, procRoot }));
}

describe('nvidia-smi collector', () => {
  it('asks only for fields the driver knows and turns the stream into GPU series and facts', async () => {
    const bin = tickingStandIn('ok', 'console.log(row(0, n)); console.log(row(1, 50));');
    const { until } = run(bin);
    const s = await until((st) => st.status === 'ok');
    const gpus = s.output.facts?.gpus ?? [];
    expect(gpus.map((g) => g.uuid)).toEqual(['GPU-0', 'GPU-1']);
    expect(gpus[1]).toMatchObject({
      index: 1,
      name: 'Test GPU',
      utilizationRatio: 0.5,
      memoryTotalBytes: 81559 * 1048576,
      memoryUsedBytes: 1024 * 1048576,
      temperatureCelsius: 41,
      powerDrawWatts: 70.5,
      pstate: 0,
    });
    expect(gpus[1]?.clocksHz.sm).toBe(1980e6);
    expect(gpus[1]?.fanSpeedRatio).toBeUndefined();
    expect(gpus[1]?.throttle.sw_power_cap).toBe(true);
    expect(gpus[1]?.throttle.gpu_idle).toBe(false);
    const names = new Set(s.output.samples.map((x) => x.desc.name));
    expect(names.has('gpulse_gpu_utilization_ratio')).toBe(true);
    expect(names.has('gpulse_gpu_fan_speed_ratio')).toBe(false);
    // The old driver's help lists only clocks_throttle_reasons.*: no field it does not know is asked for.
    const temp = s.output.samples.find(
      (x) => x.desc.name === 'gpulse_gpu_temperature_celsius' && x.labels.gpu === '0',
    );
    expect(temp?.value).toBe(41);
  });

  it.each([
    [
      9,
      "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
      'no_data',
      'driver_not_loaded',
    ],
    [
      12,
      "NVIDIA-SMI couldn't find libnvidia-ml.so library in your system.",
      'no_data',
      'library_not_found',
    ],
    [
      15,
      'Failed to initialize NVML: GPU access blocked by the operating system',
      'error',
      'gpu_lost',
    ],
    [255, 'Unknown Error', 'error', 'unknown_error'],
    [42, '', 'error', 'exit_42'],
  ] as const)(
    "exit code %i is reported as %s/%s with the tool's own words",
    async (code, text, status, reason) => {
      const bin = standIn(
        `exit${code}`,
        `console.log(${JSON.stringify(text)}); process.exit(${code});`,
      );
      const { until } = run(bin);
      const s = await until((st) => st.status === status && st.reason === reason);
      if (text) expect(s.message).toContain(text.slice(0, 20));
      expect(s.message).toContain(`exit ${code}`);
      expect(s.output.samples).toEqual([]);
    },
  );

  it('keeps the healthy GPUs of a block with a lost GPU and reports that one as lost', async () => {
    // Three ticks of three GPUs, then GPU 1's row becomes the line recent drivers print instead.
    const bin = tickingStandIn(
      'lost-one',
      `console.log(row(0, 10));
    if (n <= 3) console.log(row(1, 20));
    else console.log('Unable to determine the device handle for GPU1: 0000:01:00.0: Unknown Error');
    console.log(row(2, 30));`,
    );
    const { until } = run(bin);
    const s = await until((st) => (st.output.facts?.lostGpus ?? []).length > 0);
    expect(s.status).toBe('ok');
    expect(s.output.facts?.gpus?.map((g) => [g.uuid, g.utilizationRatio])).toEqual([
      ['GPU-0', 0.1],
      ['GPU-2', 0.3],
    ]);
    const lost = s.output.facts?.lostGpus ?? [];
    expect(lost.map((l) => l.reason)).toEqual(['Unknown Error']);
    expect(lost[0]?.reading).toEqual({
      index: 1,
      uuid: 'GPU-1',
      name: 'Test GPU',
      pciBusId: '00000000:01:00.0',
      driverVersion: '550.1',
      ...NO_VALUES,
    });
    const series = (name: string) =>
      s.output.samples
        .filter((x) => x.desc.name === name)
        .map((x) => [x.labels.gpu, x.labels.uuid, x.value]);
    // The lost GPU has no series of its own here (GPU health gives its up 0 and info).
    expect(series('gpulse_gpu_up')).toEqual([
      ['0', 'GPU-0', 1],
      ['2', 'GPU-2', 1],
    ]);
    expect(series('gpulse_gpu_utilization_ratio')).toEqual([
      ['0', 'GPU-0', 0.1],
      ['2', 'GPU-2', 0.3],
    ]);
  });

  it('a GPU that vanishes without a word is lost after two blocks; one that comes back is up', async () => {
    const flag = join(dir, 'gpu1-back');
    const bin = tickingStandIn(
      'vanish',
      `console.log(row(0, 10));
    if (n <= 3 || fs.existsSync(${JSON.stringify(flag)})) console.log(row(1, 20));`,
    );
    const { until } = run(bin);
    const s = await until((st) => (st.output.facts?.lostGpus ?? []).length > 0);
    expect(s.output.facts?.lostGpus?.map((l) => [l.reading.uuid, l.reason])).toEqual([
      ['GPU-1', 'no longer listed by nvidia-smi'],
    ]);
    writeFileSync(flag, '');
    const back = await until(
      (st) => (st.output.facts?.lostGpus ?? []).length === 0 && st.output.facts?.gpus?.length === 2,
    );
    expect(back.status).toBe('ok');
  });

  it('a one-shot end after the lost GPU’s line is no failure: the GPU is lost, not the collector', async () => {
    // A single-GPU host whose GPU fell off the bus before gpulse started: no row, no UUID known.
    const bin = standIn(
      'lost-only',
      `if (fields.length) {
  console.log('Unable to determine the device handle for GPU0000:3B:00.0: GPU is lost.  Reboot the system to recover this GPU');
  process.exit(15);
}`,
    );
    const { until } = run(bin);
    const s = await until((st) => (st.output.facts?.lostGpus ?? []).length > 0);
    expect(s.status).toBe('ok');
    expect(s.output.facts?.gpus).toEqual([]);
    expect(s.output.facts?.lostGpus?.map((l) => [l.reading, l.reason])).toEqual([
      [
        {
          index: 0,
          uuid: '',
          pciBusId: '00000000:3B:00.0',
          ...NO_VALUES,
        },
        'GPU is lost.  Reboot the system to recover this GPU',
      ],
    ]);
    expect(s.output.samples).toEqual([]);
    await until((st) => (st.errors.get('query-gpu_gpu_lost') ?? 0) >= 1);
  });

  it('in required mode a missing driver is an error, not "no data"', async () => {
    const bin = standIn('req9', 'process.exit(9);');
    const { until } = run(bin, { mode: 'required' });
    await until((st) => st.status === 'error' && st.reason === 'driver_not_loaded');
  });

  it('says clearly when the binary does not exist', async () => {
    const { until, records } = run(join(dir, 'no-such-nvidia-smi'));
    const s = await until((st) => st.status === 'no_data');
    expect(s.reason).toBe('binary_not_found');
    expect(s.message).toMatch(/^no NVIDIA GPU found: .*GPULSE_NVIDIA_SMI.*gpulse simulate/);
    expect(records.filter((r) => String(r.msg).startsWith('no NVIDIA GPU found'))).toHaveLength(1);
  });

  it('kills a stream that hangs, counts the restart, and recovers', async () => {
    const flag = flagFile('hang-once');
    const bin = standIn(
      'hang',
      `if (fields.length) {
  const hangNow = fs.existsSync(${JSON.stringify(flag)});
  if (hangNow) fs.rmSync(${JSON.stringify(flag)});
  console.log(row(0, 1));
  if (!hangNow) setInterval(() => console.log(row(0, 2)), 100); else setInterval(() => {}, 1000);
} else { setInterval(() => {}, 1000); }`,
    );
    const { until } = run(bin, { stallIntervals: 3 });
    const hung = await until((st) => st.reason === 'hang');
    expect(hung.status).toBe('error');
    expect(hung.message).toMatch(/printed nothing for 3 intervals and was killed/);
    const back = await until(
      (st) => st.status === 'ok' && (st.output.facts?.gpus?.[0]?.utilizationRatio ?? 0) === 0.02,
    );
    const restarts = back.health.find(
      (h) => h.desc.name === 'gpulse_nvidia_smi_restarts_total' && h.labels.stream === 'query-gpu',
    );
    expect(restarts?.value).toBeGreaterThanOrEqual(1);
    expect(back.errors.get('hang')).toBeGreaterThanOrEqual(1);
  });

  it('survives garbage and truncated rows, counting them, and keeps good rows', async () => {
    const bin = standIn(
      'garbage',
      `if (fields.length) {
  setInterval(() => { console.log('\\u0000\\u0001garbage, ###'); console.log(row(0, 7).slice(0, 20)); console.log(row(0, 7)); }, 100);
} else { setInterval(() => {}, 1000); }`,
    );
    const { until } = run(bin);
    const s = await until((st) => st.status === 'ok' && (st.errors.get('parse_error') ?? 0) >= 4);
    expect(s.output.facts?.gpus?.[0]?.utilizationRatio).toBe(0.07);
    const rejected = s.health.find((h) => h.desc.name === 'gpulse_nvidia_smi_rejected_lines_total');
    expect(rejected?.value).toBeGreaterThanOrEqual(4);
  });

  it('reports the processes of the compute-apps stream and forgets them when it goes quiet', async () => {
    const flag = flagFile('procs-on');
    const bin = standIn(
      'apps',
      `if (fields.length) { setInterval(() => console.log(row(0, 1)), 100); }
else if (args.some((a) => a.startsWith('--query-compute-apps='))) {
  setInterval(() => {
    if (fs.existsSync(${JSON.stringify(flag)})) {
      console.log('2026/01/01 00:00:00.000, GPU-0, 4242, python train.py, 2048, 00000000:00:00.0, Test GPU');
      console.log('2026/01/01 00:00:00.000, GPU-0, 4343, /usr/bin/name, with comma, 10, 00000000:00:00.0, Test GPU');
      console.log('garbage');
    }
  }, 100);
} else { setInterval(() => {}, 1000); }`,
    );
    const { until } = run(bin);
    const s = await until(
      (st) =>
        (st.output.facts?.gpuProcesses?.length ?? 0) === 2 &&
        (st.errors.get('compute-apps_parse_error') ?? 0) > 0,
    );
    // A process line that does not parse is the process list's error, not a failed GPU reading.
    expect(s.errors.get('parse_error')).toBeUndefined();
    expect(s.output.facts?.gpuProcesses).toEqual([
      {
        pid: 4242,
        gpuUuid: 'GPU-0',
        gpuIndex: 0,
        processName: 'python train.py',
        usedMemoryBytes: 2048 * 1048576,
      },
      {
        pid: 4343,
        gpuUuid: 'GPU-0',
        gpuIndex: 0,
        processName: '/usr/bin/name, with comma',
        usedMemoryBytes: 10 * 1048576,
      },
    ]);
    rmSync(flag);
    await until((st) => st.status === 'ok' && (st.output.facts?.gpuProcesses?.length ?? -1) === 0);
  });

  it('ticks of the process list read back to back (a starved agent) are not merged into one', async () => {
    const bin = standIn(
      'apps-burst',
      `const line = '2026/01/01 00:00:00.000, GPU-0, 4242, python, 2048, 00000000:00:00.0, Test GPU\\n';
if (fields.length) { setInterval(() => console.log(row(0, 1)), 100); }
else if (args.some((a) => a.startsWith('--query-compute-apps='))) {
  setInterval(() => process.stdout.write(line + line + line), 100);
} else { setInterval(() => {}, 1000); }`,
    );
    const { until, store } = run(bin);
    await until((st) => (st.output.facts?.gpuProcesses?.length ?? 0) > 0);
    // Every snapshot from here on (not a sample of them), until twenty more went by.
    const seen = new Set<number>();
    let snapshots = 0;
    const off = store.onChange((s) => {
      snapshots++;
      seen.add(s.collectors.get('nvidia-smi')?.output.facts?.gpuProcesses?.length ?? 0);
    });
    await expect
      .poll(() => snapshots, { timeout: 10_000, interval: 20 })
      .toBeGreaterThanOrEqual(20);
    off();
    // Never the same process twice (a starved stand-in may also look silent: 0).
    expect(Math.max(...seen)).toBe(1);
  });

  it('streams pmon per-process utilization and attributes both process lists to containers', async () => {
    const id = 'b29faf21b7eff959f64b4192c34d5d67a707fe8561e9eaa608cb27693fba4242';
    const proc = join(dir, 'proc');
    mkdirSync(join(proc, '4242'), { recursive: true });
    writeFileSync(join(proc, '4242', 'cgroup'), `4:memory:/docker/${id}\n0::/docker/${id}\n`);
    mkdirSync(join(proc, '4243'), { recursive: true });
    writeFileSync(join(proc, '4243', 'cgroup'), '0::/user.slice/user-1000.slice/session-2.scope\n');
    const bin = standIn(
      'pmon',
      `if (args[0] === 'pmon') {
  if (args.join(' ') !== 'pmon -d 1') { console.error('unexpected ' + args.join(' ')); process.exit(2); }
  console.log('# gpu         pid   type     sm    mem    enc    dec    jpg    ofa    command ');
  console.log('# Idx           #    C/G      %      %      %      %      %      %    name ');
  setInterval(() => {
    console.log('    0       4242     C     73     21      -      -      -      -    python         ');
    console.log('    0       4243     C      -      -      -      -      -      -    python         ');
  }, 100);
} else if (fields.length) { setInterval(() => console.log(row(0, 80)), 100); }
else if (args.some((a) => a.startsWith('--query-compute-apps='))) {
  setInterval(() => console.log('2026/01/01 00:00:00.000, GPU-0, 4242, python, 2048, 00000000:00:00.0, Test GPU'), 100);
} else { setInterval(() => {}, 1000); }`,
    );
    const { until } = run(bin, { pmon: 'on', interval: 1000 }, proc);
    const s = await until(
      (st) =>
        (st.output.facts?.gpuProcessUtilization?.length ?? 0) === 2 &&
        (st.output.facts?.gpuProcesses?.length ?? 0) === 1,
    );
    expect(s.output.facts?.gpuProcessUtilization).toEqual([
      {
        pid: 4242,
        gpuIndex: 0,
        processName: 'python',
        type: 'C',
        smRatio: 0.73,
        memoryRatio: 0.21,
        encoderRatio: undefined,
        decoderRatio: undefined,
        containerId: id,
        containerRuntime: 'docker',
      },
      {
        pid: 4243,
        gpuIndex: 0,
        processName: 'python',
        type: 'C',
        smRatio: 0,
        memoryRatio: 0,
        encoderRatio: undefined,
        decoderRatio: undefined,
      },
    ]);
    expect(s.output.facts?.gpuProcesses?.[0]).toMatchObject({
      pid: 4242,
      containerId: id,
      containerRuntime: 'docker',
    });
  });

  it('asks the driver again when it rejects the field list (driver changed under us)', async () => {
    const flag = flagFile('reject-once');
    const bin = standIn(
      'reject',
      `if (fields.length) {
  if (fs.existsSync(${JSON.stringify(flag)})) {
    fs.rmSync(${JSON.stringify(flag)});
    console.log('Field "' + fields[3] + '" is not a valid field to query.');
    process.exit(2);
  }
  setInterval(() => console.log(row(0, 3)), 100);
} else { setInterval(() => {}, 1000); }`,
    );
    const { until } = run(bin);
    const rejected = await until((st) => st.reason === 'invalid_argument');
    expect(rejected.message).toContain('is not a valid field to query');
    await until((st) => st.status === 'ok', 15_000);
  }, 20_000);

  it('fills MIG devices and retired pages from the -q -x stream', async () => {
    const bin = a100StandIn('xml', PRINT_A100_XML);
    const { until } = run(bin, { xmlInterval: 1000 });
    const s = await until((st) => (st.output.facts?.gpus?.[0]?.migDevices?.length ?? 0) === 4);
    const gpu = s.output.facts?.gpus?.[0];
    // CSV values win; the XML adds what the CSV lacks.
    expect(gpu).toMatchObject({
      index: 1,
      utilizationRatio: 0.03,
      migEnabled: true,
      cudaVersion: '12.2',
    });
    expect(gpu?.migDevices?.map((m) => m.gpuInstanceId)).toEqual([3, 4, 5, 6]);
    const mig = s.output.samples.filter((x) => x.desc.name === 'gpulse_mig_memory_total_bytes');
    expect(mig).toHaveLength(4);
    expect(mig[0]?.labels).toMatchObject({
      gpu: '1',
      uuid: A100_UUID,
    });
  });

  it('the info series waits for the CUDA version of -q -x: its first labels are its last', async () => {
    // -q -x answers a second after the CSV (it takes 0.4-0.6 s on real GPUs, more on a busy host).
    const bin = a100StandIn(
      'xml-late',
      `  setTimeout(() => process.stdout.write(fs.readFileSync(${JSON.stringify(A100_XML)}, 'utf8') + '\\n'), 1000);`,
      `else if (args[0] !== '-L') { setInterval(() => {}, 1000); }`,
    );
    // -L (asked once the MIG capture shows instances) exits at once: a one-shot call that hangs
    // would outlive this test, which has no agent to end its children.
    const { store, until } = run(bin, { xmlInterval: 1000 });
    const infos: string[] = [];
    let beforeInfo = 0;
    store.onChange((snap) => {
      const samples = snap.collectors.get('nvidia-smi')?.output.samples ?? [];
      const info = samples.find((x) => x.desc.name === 'gpulse_gpu_info');
      if (info) infos.push(info.labels.cuda_version ?? '?');
      else if (samples.some((x) => x.desc.name === 'gpulse_gpu_utilization_ratio')) beforeInfo++;
    });
    await until((st) => st.output.facts?.gpus?.[0]?.cudaVersion === '12.2');
    await until(() => infos.length >= 3);
    // Values flowed before the document came; the info series did not, then only with 12.2.
    expect(beforeInfo).toBeGreaterThan(0);
    expect(new Set(infos)).toEqual(new Set(['12.2']));
  });

  it('names MIG devices (profile, MIG UUID) from nvidia-smi -L once -q -x shows them', async () => {
    const uuid = A100_UUID;
    // The A100 capture's four 14-SM, 19968 MiB devices are 1g.20gb instances; -L as R535 prints it.
    const list = [
      `GPU 0: NVIDIA A100-SXM4-80GB (UUID: ${uuid})`,
      ...[0, 1, 2, 3].map(
        (i) =>
          `  MIG 1g.20gb     Device  ${i}: (UUID: MIG-4f8ba7c6-0000-0000-0000-00000000000${i})`,
      ),
    ].join('\n');
    const bin = a100StandIn(
      'xml-list',
      PRINT_A100_XML,
      `else if (args[0] === '-L') {
  console.log(${JSON.stringify(list)});
} else { setInterval(() => {}, 1000); }`,
    );
    const { until } = run(bin, { xmlInterval: 1000 });
    const s = await until(
      (st) => st.output.facts?.gpus?.[0]?.migDevices?.[3]?.profile !== undefined,
    );
    const info = s.output.samples.filter((x) => x.desc.name === 'gpulse_mig_info');
    expect(
      info.map((x) => [x.labels.gpu_instance_id, x.labels.profile, x.labels.mig_uuid]),
    ).toEqual(
      [3, 4, 5, 6].map((gi, i) => [
        String(gi),
        '1g.20gb',
        `MIG-4f8ba7c6-0000-0000-0000-00000000000${i}`,
      ]),
    );
  });
});
