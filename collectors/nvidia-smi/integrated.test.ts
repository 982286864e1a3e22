// nvidia-smi on a Jetson (JetPack 6) lists "Orin (nvgpu)" with nearly every value N/A: the
// collector must not crash, must not turn N/A into zeros, and must leave the GPU to tegrastats.
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { collectorHarness } from '../../test/helpers/collector-harness.js';
import { JETSON_DEVICES } from '../simulation/jetson.js';
import { gpuReadingSamples } from '../gpu-series.js';
import { nvidiaSmiConfigSchema } from './config.js';
import { createNvidiaSmiCollector } from './nvidia-smi.js';
import { parseQueryGpuRow } from './parse-csv.js';
import { JetsonSmiSource } from './simulator/jetson.js';

const harness = collectorHarness('nvsmi-jetson');
const { dir } = harness;

const orin = JETSON_DEVICES['jetson-orin']!;
const source = new JetsonSmiSource({ ...orin, nvidiaSmiCapture: orin.nvidiaSmiCapture! });
const JETSON_CELLS = Object.fromEntries(source.read(Date.UTC(2026, 0, 1)).gpus[0]!.cells);
const HELP = source.helpQueryGpu();

describe('a Jetson row of --query-gpu', () => {
  const fields = source.gpuFields.map((f) => f.name);
  const cells = fields.map((f) => JETSON_CELLS[f] ?? '[N/A]');
  const reading = parseQueryGpuRow(cells, fields)!;

  it('parses to the GPU with its identity and no values at all', () => {
    expect(reading).toMatchObject({
      index: 0,
      uuid: source.gpuUuid,
      name: 'Orin (nvgpu)',
      driverVersion: '540.4.0',
      pciBusId: '00000000:00:00.0',
    });
    for (const key of [
      'utilizationRatio',
      'memoryTotalBytes',
      'memoryUsedBytes',
      'temperatureCelsius',
      'powerDrawWatts',
      'pstate',
      'fanSpeedRatio',
      'ecc',
    ] as const) {
      expect(reading[key]).toBeUndefined();
    }
    expect(reading.clocksHz).toEqual({});
    expect(reading.throttle).toEqual({});
  });

  it('gives only the info and up series: N/A is never exported as a zero', () => {
    const samples = gpuReadingSamples([reading]);
    expect(samples.map((s) => [s.desc.name, s.value])).toEqual([
      ['gpulse_gpu_info', 1],
      ['gpulse_gpu_up', 1],
    ]);
  });
});

/** A stand-in nvidia-smi answering like the Jetson one (`extraRow`: a discrete GPU beside it). */
function standIn(name: string, extraRow: boolean): string {
  const script = harness.standIn(
    `${name}.js`,
    `const args = process.argv.slice(2);
if (args[0] === '--help-query-gpu') { process.stdout.write(${JSON.stringify(HELP)}); process.exit(0); }
const q = args.find((a) => a.startsWith('--query-gpu='));
const fields = q ? q.slice(12).split(',') : [];
const jetson = ${JSON.stringify(JETSON_CELLS)};
const discrete = { ...jetson, index: '1', name: 'NVIDIA T4', uuid: 'GPU-dddddddd-0000-0000-0000-000000000001',
  'pci.bus_id': '00000000:01:00.0', 'utilization.gpu': '37', 'temperature.gpu': '44', 'memory.total': '15360',
  'memory.used': '1024', 'memory.free': '14336' };
if (fields.length) {
  setInterval(() => {
    console.log(fields.map((f) => jetson[f] ?? '[N/A]').join(', '));
    if (${extraRow}) console.log(fields.map((f) => discrete[f] ?? '[N/A]').join(', '));
  }, 100);
} else if (args.some((a) => a.startsWith('--query-compute-apps='))) {
  // A process on the Jetson GPU (were nvidia-smi to list one): it must not be reported.
  const apps = args.find((a) => a.startsWith('--query-compute-apps=')).slice(21).split(',');
  const proc = { gpu_uuid: jetson.uuid, gpu_bus_id: '00000000:00:00.0', pid: '4242', process_name: 'python3', used_gpu_memory: '512' };
  setInterval(() => console.log(apps.map((f) => proc[f] ?? '[N/A]').join(', ')), 100);
} else { setInterval(() => {}, 1000); }
`,
  );
  // The pid is written before Node starts (exec keeps it): a stream stopped while its Node is
  // still booting on a loaded machine is counted too.
  const path = join(dir, name);
  const pids = join(dir, `${name}.pids`);
  writeFileSync(path, `#!/bin/sh\necho $$ >> '${pids}'\nexec '${script}' "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

function run(binary: string) {
  const config = nvidiaSmiConfigSchema.parse({ binary, interval: 200, xmlInterval: 1000 });
  return harness.run(createNvidiaSmiCollector(config, { random: () => 0.5 }));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('nvidia-smi collector on a Jetson', () => {
  it('stands down for good when the only GPU is the integrated one, stopping its streams', async () => {
    const bin = standIn('jetson-only', false);
    const { until, state } = run(bin);
    const s = await until((st) => st.status === 'no_data');
    expect(s.reason).toBe('integrated_gpu');
    expect(s.message).toMatch(/Orin \(nvgpu\).*tegrastats/);
    expect(s.output.samples).toEqual([]);
    // Every stream it started (query-gpu, compute-apps, -q -x) is gone and none comes back: the
    // stand-down has stopped them all (their stream_up series go when the last stop returns; a
    // stopped stream never restarts) and their processes have exited.
    const pidsOf = () =>
      readFileSync(join(dir, 'jetson-only.pids'), 'utf8').trim().split('\n').map(Number);
    await until(
      (st) =>
        st.health.every((h) => h.desc.name !== 'gpulse_nvidia_smi_stream_up') &&
        pidsOf().length >= 4 &&
        pidsOf().filter(alive).length === 0,
    );
    const pids = pidsOf();
    expect(pids.length).toBe(4);
    expect(pids.filter(alive)).toEqual([]);
    const later = state();
    expect(later.status).toBe('no_data');
    expect(later.health.filter((h) => h.desc.name === 'gpulse_nvidia_smi_stream_up')).toEqual([]);
  });

  it('beside a discrete GPU reports only the discrete one, and none of the Jetson GPU\u2019s processes', async () => {
    const bin = standIn('mixed', true);
    const { until, records } = run(bin);
    const s = await until((st) => st.status === 'ok' && (st.output.facts?.gpus?.length ?? 0) > 0);
    expect(s.output.facts?.gpus?.map((g) => g.name)).toEqual(['NVIDIA T4']);
    expect(s.output.facts?.gpuProcesses).toEqual([]);
    const uuids = new Set(s.output.samples.map((x) => x.labels.uuid));
    expect([...uuids]).toEqual(['GPU-dddddddd-0000-0000-0000-000000000001']);
    expect(records.filter((r) => String(r.msg).includes('left to the tegrastats'))).toHaveLength(1);
    expect(existsSync(join(dir, 'mixed.pids'))).toBe(true);
  });
});
