import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { GpuReading } from '../../agent/core/facts.js';
import { declaredMetrics } from '../../agent/core/metric.js';
import type { CollectorState, Sample } from '../../agent/core/types.js';
import { renderSamples } from '../../exporters/prometheus/render.js';
import { allSeries } from '../../test/helpers/cli.js';
import type { DcgmGpuFact } from '../dcgm/dcgm-reading.js';
import '../../test/helpers/declare-all-metrics.js';
import {
  exporterFamilies,
  exporterGpuSamples,
  exporterHostSamples,
  exporterUuid,
  type ExporterGpu,
} from './compat.js';
import './nvidia-smi.js';
import { parseComputeAppsCsv, parseQueryGpuCsv } from './parse-csv.js';
import { readFixture as fixture } from './simulator/fixtures.js';

/** The nvidia-smi collector's stream gauge, as the collector declares it (found, not copied). */
const STREAM_UP = declaredMetrics().find((m) => m.name === 'gpulse_nvidia_smi_stream_up');

function smiState(over: Partial<CollectorState> = {}): CollectorState {
  return {
    collector: 'nvidia-smi',
    status: 'ok',
    updatedAt: 1_800_000_000_500,
    lastSuccessAt: 1_800_000_000_500,
    durationMs: 12,
    output: { samples: [] },
    errors: new Map(),
    health: [],
    ...over,
  };
}

function appsStream(up: boolean): Sample[] {
  if (!STREAM_UP) throw new Error('gpulse_nvidia_smi_stream_up is no longer declared');
  return [{ desc: STREAM_UP, labels: { stream: 'compute-apps' }, value: up ? 1 : 0 }];
}

/** Series of a rendered exposition as `name{sorted labels}` → value. */
function seriesOf(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const names = new Set(
    text
      .split('\n')
      .filter((l) => l.startsWith('# TYPE '))
      .map((l) => l.split(' ')[2] ?? ''),
  );
  for (const name of names) {
    for (const s of allSeries(text, name)) {
      const labels = Object.entries(s.labels)
        .filter(([, v]) => v !== '')
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => `${k}="${v}"`)
        .join(',');
      out.set(`${name}{${labels}}`, s.value);
    }
  }
  return out;
}

function helpOf(text: string): Map<string, string> {
  return new Map(
    text
      .split('\n')
      .filter((l) => l.startsWith('# HELP '))
      .map((l) => {
        const [, , name, ...help] = l.split(' ');
        return [name ?? '', help.join(' ')];
      }),
  );
}

describe('nvidia_gpu_exporter names against the exporter’s own output for the same capture', () => {
  // nvidia_gpu_exporter's integration test output for its H100 capture, and gpulse reading the
  // same capture's CSV (fixtures/nvidia-gpu-exporter/, fixtures/csv/: one capture, see SOURCES.md).
  const peer = fixture(
    'nvidia-gpu-exporter/nvidia-gpu-exporter-output__h100-80gb-hbm3__590.48.01__load.prom',
  );
  const [reading] = parseQueryGpuCsv(
    fixture('csv/linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01__load__query-gpu-all-fields.csv'),
  );
  const processes = parseComputeAppsCsv(
    fixture('csv/linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01__load__query-compute-apps.csv'),
  );
  if (!reading) throw new Error('the H100 capture did not parse');
  const gpu: ExporterGpu = { reading };
  const ours = renderSamples(
    [
      ...exporterGpuSamples(gpu, 1),
      ...exporterHostSamples({
        gpus: [gpu],
        nvidiaSmi: smiState({
          output: { samples: [], facts: { gpus: [reading], gpuProcesses: processes } },
          health: appsStream(true),
        }),
        xids: [],
      }),
    ],
    'prometheus',
  );
  const theirs = seriesOf(peer);
  const mine = seriesOf(ours);

  it('serves every series it has with the exporter’s name, labels and value (units as it serves them)', () => {
    const compared: string[] = [];
    for (const [key, value] of mine) {
      // The peer's run left out the two timing series (they change on every run).
      if (/^nvidia_smi_last_collect_(success_timestamp|duration)_seconds/.test(key)) continue;
      if (key.startsWith('nvidia_smi_gpu_info')) continue;
      expect(theirs.has(key), `${key} is not in nvidia_gpu_exporter's output`).toBe(true);
      const want = theirs.get(key) ?? NaN;
      expect(Math.abs(value - want), `${key}: ${value} vs ${want}`).toBeLessThanOrEqual(
        1e-9 * Math.max(1, Math.abs(want)),
      );
      compared.push(key);
    }
    expect(compared.length).toBeGreaterThanOrEqual(65);
    // A few by hand, so a wrong unit is obvious in the failure.
    const uuid = '00000000-0000-0000-0000-000000000000';
    expect(mine.get(`nvidia_smi_memory_used_bytes{uuid="${uuid}"}`)).toBe(19818 * 1048576);
    expect(mine.get(`nvidia_smi_clocks_current_graphics_clock_hz{uuid="${uuid}"}`)).toBe(1.98e9);
    expect(mine.get(`nvidia_smi_utilization_memory_ratio{uuid="${uuid}"}`)).toBe(0.11);
    expect(mine.get(`nvidia_smi_power_draw_watts{uuid="${uuid}"}`)).toBe(631.95);
    expect(mine.get(`nvidia_smi_clocks_event_reasons_active{uuid="${uuid}"}`)).toBe(0);
    expect(
      mine.get(
        `nvidia_smi_compute_app_used_memory_bytes{pid="11345",process_name="./gpu_burn",uuid="${uuid}"}`,
      ),
    ).toBe(15690 * 1048576);
    expect(mine.get('nvidia_smi_command_exit_code{}')).toBe(0);
  });

  it('labels nvidia_smi_gpu_info as the exporter does, for the identity gpulse reads', () => {
    const [info] = allSeries(ours, 'nvidia_smi_gpu_info');
    const [want] = allSeries(peer, 'nvidia_smi_gpu_info');
    expect(info?.labels).toEqual({
      compute_cap: '9.0',
      // From `nvidia-smi -q -x`, which this CSV capture does not include.
      cuda_version: '',
      driver_version: '590.48.01',
      index: '0',
      name: 'NVIDIA H100 80GB HBM3',
      pci_bus_id: '00000000:00:09.0',
      serial: '0000000000000',
      uuid: '00000000-0000-0000-0000-000000000000',
      vbios_version: '96.00.A5.00.01',
    });
    const { cuda_version: _cuda, ...read } = info?.labels ?? {};
    expect(want?.labels).toMatchObject(read);
    // Labels gpulse does not read: Windows driver models ([N/A] on Linux) and the sub-device id.
    expect(Object.keys(want?.labels ?? {}).filter((k) => !(k in (info?.labels ?? {})))).toEqual([
      'driver_model_current',
      'driver_model_pending',
      'pci_sub_device_id',
    ]);
  });

  it('uses the exporter’s help text for the fields it names after nvidia-smi’s header', () => {
    const theirHelp = helpOf(peer);
    const different = [...helpOf(ours)].filter(
      ([name, help]) =>
        theirHelp.has(name) && theirHelp.get(name) !== help && name !== 'nvidia_smi_gpu_info',
    );
    expect(different).toEqual([]);
  });

  it('leaves out only fields gpulse does not read (listed, so a lost one shows here)', () => {
    const ourNames = new Set([...mine.keys()].map((k) => k.split('{')[0]));
    const missing = [...new Set([...theirs.keys()].map((k) => k.split('{')[0]))]
      .filter((name) => name !== undefined && !ourNames.has(name))
      .sort();
    expect(missing).toEqual(NOT_READ_ON_H100);
  });
});

/**
 * Fields of the H100 capture nvidia_gpu_exporter serves and gpulse does not read (nvidia-smi
 * fields no dashboard or alert of gpulse needs: inventory, per-location ECC detail, modes).
 */
const NOT_READ_ON_H100 = [
  'nvidia_smi_accounting_buffer_size',
  'nvidia_smi_accounting_mode',
  'nvidia_smi_c2c_mode',
  'nvidia_smi_clocks_event_reasons_supported',
  'nvidia_smi_display_active',
  'nvidia_smi_display_attached',
  'nvidia_smi_ecc_errors_corrected_aggregate_device_memory',
  'nvidia_smi_ecc_errors_corrected_aggregate_dram',
  'nvidia_smi_ecc_errors_corrected_aggregate_sram',
  'nvidia_smi_ecc_errors_corrected_volatile_device_memory',
  'nvidia_smi_ecc_errors_corrected_volatile_dram',
  'nvidia_smi_ecc_errors_corrected_volatile_sram',
  'nvidia_smi_ecc_errors_uncorrected_aggregate_device_memory',
  'nvidia_smi_ecc_errors_uncorrected_aggregate_dram',
  'nvidia_smi_ecc_errors_uncorrected_aggregate_sram',
  'nvidia_smi_ecc_errors_uncorrected_aggregate_sram_l2',
  'nvidia_smi_ecc_errors_uncorrected_aggregate_sram_mcu',
  'nvidia_smi_ecc_errors_uncorrected_aggregate_sram_other',
  'nvidia_smi_ecc_errors_uncorrected_aggregate_sram_parity',
  'nvidia_smi_ecc_errors_uncorrected_aggregate_sram_pcie',
  'nvidia_smi_ecc_errors_uncorrected_aggregate_sram_secded',
  'nvidia_smi_ecc_errors_uncorrected_aggregate_sram_sm',
  'nvidia_smi_ecc_errors_uncorrected_aggregate_sram_threshold_exceeded',
  'nvidia_smi_ecc_errors_uncorrected_volatile_device_memory',
  'nvidia_smi_ecc_errors_uncorrected_volatile_dram',
  'nvidia_smi_ecc_errors_uncorrected_volatile_sram',
  'nvidia_smi_ecc_errors_uncorrected_volatile_sram_parity',
  'nvidia_smi_ecc_errors_uncorrected_volatile_sram_secded',
  'nvidia_smi_ecc_mode_pending',
  'nvidia_smi_edpp_multiplier_ratio',
  'nvidia_smi_encoder_stats_average_fps',
  'nvidia_smi_encoder_stats_average_latency',
  'nvidia_smi_encoder_stats_session_count',
  'nvidia_smi_fabric_clique_id',
  'nvidia_smi_gsp_mode_current',
  'nvidia_smi_gsp_mode_default',
  'nvidia_smi_inforom_ecc',
  'nvidia_smi_inforom_oem',
  'nvidia_smi_mig_mode_pending',
  'nvidia_smi_pci_base_class',
  'nvidia_smi_pci_bus',
  'nvidia_smi_pci_device',
  'nvidia_smi_pci_device_id',
  'nvidia_smi_pci_domain',
  'nvidia_smi_pci_sub_class',
  'nvidia_smi_pci_sub_device_id',
  'nvidia_smi_pcie_link_gen_gpumax',
  'nvidia_smi_platform_gpu_fabric_guid',
  'nvidia_smi_platform_host_id',
  'nvidia_smi_platform_module_id',
  'nvidia_smi_platform_slot_number',
  'nvidia_smi_platform_tray_index',
  'nvidia_smi_power_draw_average_watts',
  'nvidia_smi_power_draw_instant_watts',
  'nvidia_smi_power_max_limit_watts',
  'nvidia_smi_power_min_limit_watts',
  'nvidia_smi_protected_memory_free_bytes',
  'nvidia_smi_protected_memory_total_bytes',
  'nvidia_smi_protected_memory_used_bytes',
  'nvidia_smi_remapped_rows_histogram_high',
  'nvidia_smi_remapped_rows_histogram_low',
  'nvidia_smi_remapped_rows_histogram_max',
  'nvidia_smi_remapped_rows_histogram_none',
  'nvidia_smi_remapped_rows_histogram_partial',
  'nvidia_smi_serial',
  'nvidia_smi_temperature_gpu_tlimit',
  'nvidia_smi_utilization_jpeg_ratio',
  'nvidia_smi_utilization_ofa_ratio',
];

const UUID = 'GPU-7073A66E-43ED-F55A-EA1F-3F95BD68D3FC';

function fixtureGpu(over: Partial<GpuReading> = {}): GpuReading {
  return {
    index: 2,
    uuid: UUID,
    name: 'NVIDIA H200',
    pciBusId: '00000000:83:00.0',
    driverVersion: '590.48.01',
    cudaVersion: '13.1',
    serial: '1654123456789',
    vbiosVersion: '96.00.A5.00.03',
    computeCapability: '9.0',
    utilizationRatio: 0.57,
    memoryUtilizationRatio: 0.21,
    memoryTotalBytes: 143771 * 1048576,
    memoryUsedBytes: 70000 * 1048576,
    memoryFreeBytes: 73220 * 1048576,
    memoryReservedBytes: 551 * 1048576,
    temperatureCelsius: 61,
    powerDrawWatts: 512.25,
    powerLimitWatts: 700,
    enforcedPowerLimitWatts: 700,
    clocksHz: { graphics: 1_980_000_000, memory: 3_201_000_000 },
    maxClocksHz: { graphics: 1_980_000_000 },
    fanSpeedRatio: 0.34,
    pstate: 0,
    throttle: { gpu_idle: false, sw_power_cap: true, hw_thermal_slowdown: true },
    throttleSeconds: { sw_power_cap: 12.5 },
    pcieLinkGen: 5,
    pcieLinkWidth: 16,
    persistenceMode: true,
    migEnabled: true,
    migDevices: [
      {
        gpuInstanceId: 2,
        computeInstanceId: 0,
        uuid: 'MIG-292B7EB0-0BEB-5ABE-04B8-475F1FF17B99',
        profile: '1c.3g.71gb',
        memoryTotalBytes: 71_000 * 1048576,
        memoryUsedBytes: 40_000 * 1048576,
        memoryFreeBytes: 31_000 * 1048576,
      },
      {
        gpuInstanceId: 2,
        computeInstanceId: 1,
        memoryTotalBytes: 71_000 * 1048576,
        memoryUsedBytes: 40_000 * 1048576,
      },
    ],
    ecc: { enabled: true, uncorrectedAggregate: 2 },
    remappedRowsFailure: false,
    ...over,
  };
}

function dcgmFact(fields: Record<string, number>): DcgmGpuFact {
  return { gpuId: 2, at: 0, reading: fixtureGpu(), fields };
}

describe('nvidia_gpu_exporter names for a fixture GPU', () => {
  it('renders these exact lines: names, the uuid label, units', () => {
    const text = renderSamples(
      exporterGpuSamples(
        {
          reading: fixtureGpu(),
          dcgm: dcgmFact({
            DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: 40_000_123,
            DCGM_FI_PROF_PCIE_TX_BYTES: 1.9e9,
            DCGM_FI_PROF_PCIE_RX_BYTES: 250_000,
          }),
        },
        4,
      ),
      'prometheus',
    );
    const u = 'uuid="7073a66e-43ed-f55a-ea1f-3f95bd68d3fc"';
    expect(text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))).toEqual([
      `nvidia_smi_gpu_info{compute_cap="9.0",cuda_version="13.1",driver_version="590.48.01",index="2",name="NVIDIA H200",pci_bus_id="00000000:83:00.0",serial="1654123456789",${u},vbios_version="96.00.A5.00.03"} 1`,
      `nvidia_smi_index{${u}} 2`,
      `nvidia_smi_count{${u}} 4`,
      `nvidia_smi_compute_cap{${u}} 9`,
      `nvidia_smi_utilization_gpu_ratio{${u}} 0.57`,
      `nvidia_smi_utilization_memory_ratio{${u}} 0.21`,
      `nvidia_smi_memory_total_bytes{${u}} 150754820096`,
      `nvidia_smi_memory_used_bytes{${u}} 73400320000`,
      `nvidia_smi_memory_free_bytes{${u}} 76776734720`,
      `nvidia_smi_memory_reserved_bytes{${u}} 577765376`,
      `nvidia_smi_temperature_gpu{${u}} 61`,
      `nvidia_smi_power_draw_watts{${u}} 512.25`,
      `nvidia_smi_power_limit_watts{${u}} 700`,
      `nvidia_smi_enforced_power_limit_watts{${u}} 700`,
      `nvidia_smi_clocks_current_graphics_clock_hz{${u}} 1980000000`,
      `nvidia_smi_clocks_current_memory_clock_hz{${u}} 3201000000`,
      `nvidia_smi_clocks_max_graphics_clock_hz{${u}} 1980000000`,
      `nvidia_smi_fan_speed_ratio{${u}} 0.34`,
      `nvidia_smi_pstate{${u}} 0`,
      // sw_power_cap (0x4) + hw_thermal_slowdown (0x40)
      `nvidia_smi_clocks_event_reasons_active{${u}} 68`,
      `nvidia_smi_clocks_event_reasons_gpu_idle{${u}} 0`,
      `nvidia_smi_clocks_event_reasons_sw_power_cap{${u}} 1`,
      `nvidia_smi_clocks_event_reasons_hw_thermal_slowdown{${u}} 1`,
      `nvidia_smi_clocks_event_reasons_counters_sw_power_cap_seconds{${u}} 12.5`,
      `nvidia_smi_pcie_link_gen_current{${u}} 5`,
      `nvidia_smi_pcie_link_gen_gpucurrent{${u}} 5`,
      `nvidia_smi_pcie_link_width_current{${u}} 16`,
      `nvidia_smi_persistence_mode{${u}} 1`,
      `nvidia_smi_mig_mode_current{${u}} 1`,
      `nvidia_smi_ecc_mode_current{${u}} 1`,
      `nvidia_smi_ecc_errors_uncorrected_aggregate_total{${u}} 2`,
      `nvidia_smi_remapped_rows_failure{${u}} 0`,
      // DCGM's energy counter is in mJ; its PCIe rates in bytes per second.
      `nvidia_smi_energy_joules_total{${u}} 40000.123`,
      `nvidia_smi_pcie_throughput_tx_bytes_per_second{${u}} 1900000000`,
      `nvidia_smi_pcie_throughput_rx_bytes_per_second{${u}} 250000`,
      `nvidia_smi_mig_info{compute_instance_id="0",gpu_instance_id="2",mig_uuid="292b7eb0-0beb-5abe-04b8-475f1ff17b99",profile="1c.3g.71gb",${u}} 1`,
      `nvidia_smi_mig_info{compute_instance_id="1",gpu_instance_id="2",mig_uuid="",profile="",${u}} 1`,
      // One memory series per GPU instance, its compute instances sharing it.
      `nvidia_smi_mig_memory_total_bytes{gpu_instance_id="2",${u}} 74448896000`,
      `nvidia_smi_mig_memory_used_bytes{gpu_instance_id="2",${u}} 41943040000`,
      `nvidia_smi_mig_memory_free_bytes{gpu_instance_id="2",${u}} 32505856000`,
    ]);
    expect(text).toContain('# TYPE nvidia_smi_energy_joules_total counter\n');
    expect(text).toContain('# HELP nvidia_smi_memory_used_bytes memory.used [MiB]\n');
  });

  it('prefers the reading’s energy to DCGM’s, and serves nothing from an absent DCGM', () => {
    const out = exporterGpuSamples({ reading: fixtureGpu({ energyJoules: 5 }) }, 1);
    expect(out.filter((s) => s.desc.name === 'nvidia_smi_energy_joules_total')).toEqual([
      expect.objectContaining({ value: 5 }),
    ]);
    expect(out.some((s) => s.desc.name.startsWith('nvidia_smi_pcie_throughput'))).toBe(false);
  });

  it.each([
    ['Default, None, Completed', 0, 0, 3],
    ['Exclusive_Process, Drain and Reset, In Progress', 3, 4, 2],
    // Both spellings of an action (no capture of a failing GPU pins the driver's wording).
    ['Prohibited, Reset, Not Started', 2, 1, 1],
    ['Exclusive_Thread, Node Reboot, Not Supported', 1, 2, 0],
    ['Default, Drain P2P, N/A', 0, 3, undefined],
    // A state no table knows is left out rather than guessed.
    ['[Not Supported], Replace GPU, [N/A]', undefined, undefined, undefined],
  ] as const)(
    'serves compute mode, recovery action and fabric state as NVML’s enum numbers, nothing for N/A: %s',
    (row, computeMode, recoveryAction, fabricState) => {
      const fields = ['index', 'uuid', 'compute_mode', 'gpu_recovery_action', 'fabric.state'];
      const [gpu] = parseQueryGpuCsv(`0, GPU-AB-01, ${row}`, fields);
      if (!gpu) throw new Error(`row not parsed: ${row}`);
      const states = exporterGpuSamples({ reading: gpu }, 1)
        .filter((s) =>
          /^nvidia_smi_(compute_mode|gpu_recovery_action|fabric_state)$/.test(s.desc.name),
        )
        .map((s) => `${s.desc.name} ${s.value}`);
      const expected = [
        ['nvidia_smi_compute_mode', computeMode],
        ['nvidia_smi_gpu_recovery_action', recoveryAction],
        ['nvidia_smi_fabric_state', fabricState],
      ] as const;
      expect(states).toEqual(
        expected.flatMap(([name, value]) => (value === undefined ? [] : [`${name} ${value}`])),
      );
    },
  );

  it('normalises GPU and MIG uuids as the exporter does', () => {
    expect(exporterUuid(' GPU-ABCD-01 ')).toBe('abcd-01');
    expect(exporterUuid('MIG-ABCD-02')).toBe('abcd-02');
    expect(exporterUuid('abcd-03')).toBe('abcd-03');
  });
});

describe('nvidia_gpu_exporter health, processes and Xids', () => {
  const gpu: ExporterGpu = { reading: fixtureGpu() };
  const value = (samples: readonly Sample[], name: string, labels: Record<string, string> = {}) =>
    samples.find(
      (s) => s.desc.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    )?.value;

  it('while nvidia-smi works: success, exit 0, failed runs of the GPU query only', () => {
    const out = exporterHostSamples({
      gpus: [gpu],
      nvidiaSmi: smiState({
        errors: new Map([
          ['hang', 2],
          ['gpu_lost', 1],
          ['parse_error', 3],
          // The extra streams' errors: the exporter does not count the process list's failures.
          ['compute-apps_parse_error', 7],
          ['compute-apps_hang', 1],
          ['xml_parse_error', 4],
          ['pmon_garbage_output', 5],
        ]),
      }),
      xids: [],
    });
    expect(value(out, 'nvidia_smi_failed_scrapes_total')).toBe(6);
    expect(value(out, 'nvidia_smi_last_collect_success')).toBe(1);
    expect(value(out, 'nvidia_smi_command_exit_code')).toBe(0);
    expect(value(out, 'nvidia_smi_last_collect_success_timestamp_seconds')).toBe(1_800_000_000);
    expect(value(out, 'nvidia_smi_last_collect_duration_seconds')).toBe(0.012);
    // No compute-apps stream (processes: off): no per-process series at all, as the exporter
    // without --collect.compute-apps.
    expect(value(out, 'nvidia_smi_compute_apps_last_collect_success')).toBeUndefined();
    expect(value(out, 'nvidia_smi_compute_apps')).toBeUndefined();
  });

  it.each([
    ['gpu_lost', 15],
    ['driver_not_loaded', 9],
    ['exit_42', 42],
    ['hang', -1],
    ['killed', -1],
    ['garbage_output', -1],
    ['binary_not_found', -1],
  ])(
    'a failed nvidia-smi (%s) reads exit code %i and success 0, never a reassuring 0',
    (reason, code) => {
      const out = exporterHostSamples({
        gpus: [],
        nvidiaSmi: smiState({ status: 'error', reason, errors: new Map([[reason, 1]]) }),
        xids: [],
      });
      expect(value(out, 'nvidia_smi_command_exit_code')).toBe(code);
      expect(value(out, 'nvidia_smi_last_collect_success')).toBe(0);
      expect(value(out, 'nvidia_smi_failed_scrapes_total')).toBe(1);
      // The last success stays visible, as the exporter's timestamp does.
      expect(value(out, 'nvidia_smi_last_collect_success_timestamp_seconds')).toBe(1_800_000_000);
    },
  );

  it('before the first run: no exit code or duration, success 0', () => {
    const out = exporterHostSamples({
      gpus: [],
      nvidiaSmi: smiState({ status: 'starting', lastSuccessAt: undefined, durationMs: undefined }),
      xids: [],
    });
    expect(out.map((s) => [s.desc.name, s.value])).toEqual([
      ['nvidia_smi_failed_scrapes_total', 0],
      ['nvidia_smi_last_collect_success', 0],
    ]);
  });

  it('nvidia-smi turned off: no collection series at all', () => {
    expect(exporterHostSamples({ gpus: [gpu], xids: [] })).toEqual([]);
  });

  it('lists processes with a zero-filled count per GPU while the process list is read', () => {
    const other = fixtureGpu({ uuid: 'GPU-0000AAAA', index: 3 });
    const out = exporterHostSamples({
      gpus: [gpu, { reading: other }],
      nvidiaSmi: smiState({
        health: appsStream(true),
        output: {
          samples: [],
          facts: {
            gpuProcesses: [
              { pid: 4100, gpuUuid: UUID, processName: 'python', usedMemoryBytes: 1048576 },
              // The same process in a second MIG instance of the GPU: one series, memory summed.
              { pid: 4100, gpuUuid: UUID, processName: 'python', usedMemoryBytes: 2097152 },
              // Windows WDDM: no memory figure.
              { pid: 4200, gpuUuid: UUID, processName: 'render.exe' },
            ],
          },
        },
      }),
      xids: [],
    });
    const u = '7073a66e-43ed-f55a-ea1f-3f95bd68d3fc';
    const pick = (name: string) =>
      out.filter((s) => s.desc.name === name).map((s) => ({ ...s.labels, value: s.value }));
    expect(pick('nvidia_smi_compute_apps_last_collect_success')).toEqual([{ value: 1 }]);
    expect(pick('nvidia_smi_compute_app_info')).toEqual([
      { pid: '4100', process_name: 'python', uuid: u, value: 1 },
      { pid: '4200', process_name: 'render.exe', uuid: u, value: 1 },
    ]);
    expect(pick('nvidia_smi_compute_app_used_memory_bytes')).toEqual([
      { pid: '4100', process_name: 'python', uuid: u, value: 3145728 },
    ]);
    expect(pick('nvidia_smi_compute_apps')).toEqual([
      { uuid: u, value: 2 },
      { uuid: '0000aaaa', value: 0 },
    ]);
  });

  it('while the process list cannot be read: its success gauge reads 0 and no count stands for "none"', () => {
    const out = exporterHostSamples({
      gpus: [gpu],
      nvidiaSmi: smiState({ health: appsStream(false) }),
      xids: [],
    });
    expect(value(out, 'nvidia_smi_compute_apps_last_collect_success')).toBe(0);
    expect(value(out, 'nvidia_smi_compute_apps')).toBeUndefined();
  });

  it('counts Xids per GPU and code with the time of the latest', () => {
    const out = exporterHostSamples({
      gpus: [],
      xids: [
        { uuid: UUID, xid: 79, count: 2, lastAt: 1_800_000_123_456 },
        // A bus id the agent never saw a GPU at: counted, without a GPU (as the kernel logged it).
        { uuid: '', xid: 13, count: 1 },
      ],
    });
    expect(value(out, 'nvidia_smi_xid_errors_total', { xid: '79' })).toBe(2);
    expect(
      out.find((s) => s.desc.name === 'nvidia_smi_xid_errors_total' && s.labels.xid === '79')
        ?.labels.uuid,
    ).toBe('7073a66e-43ed-f55a-ea1f-3f95bd68d3fc');
    expect(value(out, 'nvidia_smi_xid_last_timestamp_seconds', { xid: '79' })).toBe(
      1_800_000_123.456,
    );
    expect(value(out, 'nvidia_smi_xid_errors_total', { xid: '13' })).toBe(1);
    expect(value(out, 'nvidia_smi_xid_last_timestamp_seconds', { xid: '13' })).toBeUndefined();
  });
});

describe('the README’s migration section', () => {
  it('names only series gpulse declares, under its own naming or the exporter’s', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const start = readme.indexOf('## Migrating from nvidia_gpu_exporter');
    expect(start).toBeGreaterThan(0);
    const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
    const names = [...section.matchAll(/\b((?:nvidia_smi|gpulse)_[a-z0-9_]+)[`{[]/g)]
      .map((m) => m[1]!)
      .filter((n) => !n.endsWith('_'));
    const known = new Set([...exporterFamilies(), ...declaredMetrics()].map((d) => d.name));
    expect(names.length).toBeGreaterThan(30);
    // The two it names as what gpulse cannot serve (no per-GPU-instance activity source).
    expect(names.filter((n) => !known.has(n))).toEqual([
      'nvidia_smi_mig_sm_activity_ratio',
      'nvidia_smi_mig_tensor_activity_ratio',
    ]);
  });
});
