import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { collectorHarness, sampleValue } from '../../test/helpers/collector-harness.js';
import { fieldByName } from './catalogue.js';
import { dcgmConfigSchema } from './config.js';
import { createDcgmCollector } from './dcgm.js';
import { dmonHeader, dmonRow, discoveryText } from './simulator/output.js';

const harness = collectorHarness('dcgm');

const GPUS = [
  {
    gpuId: 0,
    name: 'NVIDIA H100 80GB HBM3',
    pciBusId: '00000000:18:00.0',
    uuid: 'GPU-aaaaaaaa-0000-0000-0000-000000000000',
  },
  {
    gpuId: 1,
    name: 'NVIDIA H100 80GB HBM3',
    pciBusId: '00000000:2A:00.0',
    uuid: 'GPU-bbbbbbbb-0000-0000-0000-000000000000',
  },
];
const DISCOVERY = discoveryText(GPUS);
const FIELDS = [
  'DCGM_FI_DEV_GPU_UTIL',
  'DCGM_FI_DEV_FB_USED',
  'DCGM_FI_DEV_POWER_USAGE',
  'DCGM_FI_DEV_XID_ERRORS',
  'DCGM_FI_PROF_SM_ACTIVE',
  'DCGM_FI_PROF_PIPE_TENSOR_ACTIVE',
  'DCGM_FI_PROF_PCIE_RX_BYTES',
].map((n) => fieldByName(n)!);

/**
 * A stand-in dcgmi: `discovery -l` prints DISCOVERY; `dmon` runs `body` with `args`, `header`
 * and `row(gpu, values)` in scope. Real processes, so exits, hangs and garbage are real too.
 */
function standIn(
  name: string,
  body: string,
  discovery = `process.stdout.write(${JSON.stringify(DISCOVERY)});`,
): string {
  const rowFn = `function row(g, v) { return ${JSON.stringify(dmonRow('GPU 0', FIELDS, []))}.length && fmt(g, v); }
function fmt(g, v) { let s = ('GPU ' + g).padEnd(10); const w = ${JSON.stringify(FIELDS.map((f) => f.width + 6))};
  v.forEach((x, i) => { s += String(x).padEnd(w[i] + 2); }); return s + '\\n'; }`;
  return harness.standIn(
    name,
    `const args = process.argv.slice(2);
const header = ${JSON.stringify(dmonHeader(FIELDS))};
${rowFn}
if (args[0] === 'discovery') { ${discovery} }
else {
${body}
}
`,
  );
}

/**
 * A stand-in whose dmon prints the header, then runs `tick` (JavaScript, the tick number `k` from 1
 * in scope) every `ms` milliseconds.
 */
function tickingStandIn(name: string, ms: number, tick: string): string {
  return standIn(
    name,
    `process.stdout.write(header);
let k = 0;
setInterval(() => {
  k++;
  ${tick}
}, ${ms});`,
  );
}

function run(binary: string, extra: Record<string, unknown> = {}) {
  const config = dcgmConfigSchema.parse({
    binary,
    interval: 200,
    timeout: 3000,
    fields: FIELDS.map((f) => f.name),
    ...extra,
  });
  return harness.run(createDcgmCollector(config, { random: () => 0.5 }), { timeoutMs: 10_000 });
}

describe('DCGM collector', () => {
  it('parses a dmon stream of two GPUs with N/A cells into readings and profiling series', async () => {
    const bin = tickingStandIn(
      'two-gpus',
      200,
      `process.stdout.write(row(0, [55, 40000, '350.125', 0, '0.910', '0.600', 1000000000]) + row(1, ['N/A', 1024, '70.000', 0, 'N/A', 'N/A', 'N/A']));
  if (k === 3) process.stdout.write(header);`,
    );
    const { until } = run(bin);
    const s = await until(
      (st) => st.status === 'ok' && (st.output.facts?.dcgmGpus?.length ?? 0) === 2,
    );
    const [g0, g1] = s.output.facts!.dcgmGpus!;
    expect(g0!.reading).toMatchObject({
      index: 0,
      uuid: GPUS[0]!.uuid,
      name: 'NVIDIA H100 80GB HBM3',
      pciBusId: '00000000:18:00.0',
      utilizationRatio: 0.55,
      memoryUsedBytes: 40000 * 1048576,
      powerDrawWatts: 350.125,
    });
    expect(g1!.reading.utilizationRatio).toBeUndefined();
    expect(g1!.fields).toEqual({
      DCGM_FI_DEV_FB_USED: 1024,
      DCGM_FI_DEV_POWER_USAGE: 70,
      DCGM_FI_DEV_XID_ERRORS: 0,
    });
    const l0 = { gpu: '0', uuid: GPUS[0]!.uuid };
    expect(sampleValue(s.output.samples, 'gpulse_gpu_sm_active_ratio', l0)).toBe(0.91);
    expect(sampleValue(s.output.samples, 'gpulse_gpu_tensor_active_ratio', l0)).toBe(0.6);
    // N/A: no series, not a zero.
    expect(
      sampleValue(s.output.samples, 'gpulse_gpu_sm_active_ratio', { gpu: '1' }),
    ).toBeUndefined();
    // 1 GB/s integrated over the samples: grows by ~0.2 GB per 200 ms tick.
    const later = await until(
      (st) =>
        (sampleValue(st.output.samples, 'gpulse_gpu_pcie_bytes_total', {
          ...l0,
          direction: 'rx',
        }) ?? 0) >= 4e8,
    );
    const bytes = sampleValue(later.output.samples, 'gpulse_gpu_pcie_bytes_total', {
      ...l0,
      direction: 'rx',
    })!;
    expect(bytes % 1e6).toBeCloseTo(0, -3);
    expect(
      sampleValue(later.output.samples, 'gpulse_gpu_pcie_bytes_total', {
        gpu: '1',
        direction: 'rx',
      }),
    ).toBeUndefined();
  });

  it('counts an Xid when the XID_ERRORS field changes, not the value it started with', async () => {
    const bin = tickingStandIn(
      'xid',
      150,
      `const xid = k < 3 ? 48 : k < 5 ? 0 : 79;
  process.stdout.write(row(0, [55, 1, '1.000', 31, '0.1', '0.1', 1]) + row(1, [55, 1, '1.000', xid, '0.1', '0.1', 1]));`,
    );
    const { until } = run(bin);
    const s = await until((st) => (st.output.facts?.xidErrors?.length ?? 0) >= 1);
    expect(s.output.facts!.xidErrors).toEqual([
      {
        seq: 1,
        source: 'dcgm',
        at: expect.any(Number),
        xid: 79,
        severity: 'critical',
        pciBusId: '0000:2a:00',
        gpuUuid: GPUS[1]!.uuid,
        gpuIndex: 1,
        text: 'GPU has fallen off the bus',
      },
    ]);
    expect(s.output.facts!.xidTotals).toEqual([
      expect.objectContaining({ source: 'dcgm', gpuIndex: 1, xid: 79, count: 1 }),
    ]);
  });

  it('serves NVLink error counters natively and says since when XID_ERRORS holds its value', async () => {
    const fields = [
      'DCGM_FI_DEV_XID_ERRORS',
      'DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL',
      'DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL',
      'DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL',
      'DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL',
    ].map((n) => fieldByName(n)!);
    const rowAt = (gpu: number, values: (number | undefined)[]) =>
      dmonRow(`GPU ${gpu}`, fields, values);
    // GPU 0 replays and recovers more and more; GPU 1 has no NVLink (N/A). GPU 0's Xid changes
    // from 0 to 74 (NVLink error) at the 4th tick.
    const ticks = [1, 2, 3, 4, 5, 6].map(
      (k) =>
        rowAt(0, [k < 4 ? 0 : 74, 0, 2, 10 * k, k]) +
        rowAt(1, [0, undefined, undefined, undefined, undefined]),
    );
    const bin = standIn(
      'nvlink',
      `process.stdout.write(${JSON.stringify(dmonHeader(fields))});
const ticks = ${JSON.stringify(ticks)};
let k = 0;
setInterval(() => { if (k < ticks.length) process.stdout.write(ticks[k++]); }, 150);`,
    );
    const { until } = run(bin, { fields: fields.map((f) => f.name) });
    const s = await until(
      (st) =>
        (st.output.facts?.dcgmGpus?.[0]?.fields.DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL ??
          0) >= 5,
    );
    const l0 = { gpu: '0', uuid: GPUS[0]!.uuid };
    const errors = (labels: Record<string, string>) =>
      sampleValue(s.output.samples, 'gpulse_gpu_nvlink_errors_total', labels);
    expect(errors({ ...l0, type: 'crc_flit' })).toBe(0);
    expect(errors({ ...l0, type: 'crc_data' })).toBe(2);
    expect(errors({ ...l0, type: 'replay' })).toBe(50);
    expect(errors({ ...l0, type: 'recovery' })).toBe(5);
    expect(
      s.output.samples.filter(
        (x) => x.desc.name === 'gpulse_gpu_nvlink_errors_total' && x.labels.gpu === '1',
      ),
    ).toEqual([]);
    const [g0, g1] = s.output.facts!.dcgmGpus!;
    // GPU 0 changed to 74 at its 4th tick: later than GPU 1, whose 0 holds since its first.
    expect(g0!.xidSince).toBeGreaterThan(g1!.xidSince!);
    expect(g0!.xidSince).toBeLessThanOrEqual(g0!.at);
    expect(g0!.fields.DCGM_FI_DEV_XID_ERRORS).toBe(74);
  });

  it('no host engine: "no data" once, with how to fix it, and no stream started', async () => {
    const tries = join(harness.dir, 'no-engine.tries');
    const bin = standIn(
      'no-engine',
      'process.exit(1);',
      `require('fs').appendFileSync(${JSON.stringify(tries)}, 'x');
process.stdout.write('Error: unable to establish a connection to the specified host: localhost\\nError: Unable to connect to host engine. Host engine connection invalid/disconnected.\\n'); process.exit(235);`,
    );
    const { until, records } = run(bin);
    const s = await until((st) => st.status === 'no_data');
    expect(s.reason).toBe('no_host_engine');
    expect(s.message).toMatch(/systemctl start nvidia-dcgm/);
    // Retried with backoff, but said once. A third try starts only after the second failed and
    // was handled, so once it is seen the retry has had every chance to log again.
    await expect
      .poll(() => readFileSync(tries, 'utf8').length, { timeout: 15_000, interval: 50 })
      .toBeGreaterThanOrEqual(3);
    expect(records.filter((r) => r.reason === 'no_host_engine')).toHaveLength(1);
  });

  it('dcgmi not installed: "no data" in auto mode, an error when required', async () => {
    const missing = join(harness.dir, 'no-such-dcgmi');
    const auto = run(missing);
    const a = await auto.until((st) => st.status === 'no_data');
    expect(a.reason).toBe('binary_not_found');
    expect(a.message).toMatch(/GPULSE_DCGMI/);
    const required = run(missing, { mode: 'required' });
    const r = await required.until((st) => st.status === 'error');
    expect(r.reason).toBe('binary_not_found');
  });

  it('drops profiling fields when the GPUs do not support them and keeps the device fields', async () => {
    const bin = standIn(
      'geforce',
      `const ids = args[args.indexOf('-e') + 1].split(',');
if (ids.some((i) => Number(i) > 1000)) {
  process.stdout.write('Error setting watches. Result: -36: Profiling is not supported for this group of GPUs or GPU\\n');
  process.exit(220);
}
// No header: columns are in the order asked for.
const byId = { 203: '42', 252: '1000', 155: '100.000', 230: '0' };
setInterval(() => process.stdout.write(('GPU 0').padEnd(10) + ids.map((i) => byId[i].padEnd(18)).join('') + '\\n'), 150);`,
    );
    const { until, records } = run(bin);
    const s = await until((st) => st.status === 'ok');
    expect(s.output.facts!.dcgmGpus![0]!.reading.utilizationRatio).toBe(0.42);
    expect(
      s.health.find(
        (h) => h.desc.name === 'gpulse_dcgm_watched_fields' && h.labels.kind === 'profiling',
      )?.value,
    ).toBe(0);
    expect(records.some((r) => /profiling .* is not supported/.test(String(r.msg)))).toBe(true);
  });

  it('a silent dmon is killed as hung and restarted; garbage lines are counted, not parsed', async () => {
    const bin = standIn(
      'hang',
      `process.stdout.write(header);
process.stdout.write('GPU 0     garbage\\n');
process.stdout.write(row(0, [1, 1, '1.000', 0, '0.1', '0.1', 1]));
setInterval(() => {}, 1000);`,
    );
    const { until } = run(bin, { stallIntervals: 2 });
    const s = await until((st) => st.reason === 'hang' && st.status === 'error', 15_000);
    expect(s.message).toMatch(/printed nothing for 2 intervals/);
    const back = await until(
      (st) =>
        (st.health.find((h) => h.desc.name === 'gpulse_dcgm_restarts_total')?.value ?? 0) >= 1,
      15_000,
    );
    expect(
      back.health.find((h) => h.desc.name === 'gpulse_dcgm_rejected_lines_total')?.value,
    ).toBeGreaterThanOrEqual(1);
    expect(back.errors.get('parse_error')).toBeGreaterThanOrEqual(1);
  });
});
