import {
  THROTTLE_REASON_BITS,
  THROTTLE_REASONS,
  type ClockDomain,
  type ThrottleReason,
} from '../../../agent/core/facts.js';
import { hash32, unitHash } from '../../simulation/load-curve.js';
import type {
  GpuSpec,
  GpuState,
  MigDeviceSpec,
  OperatingPoint,
  ProcessSpec,
  WorldConfig,
  WorldState,
} from '../../simulation/world.js';
import { worldAt } from '../../simulation/world.js';
import { energySinceStartJoules } from '../../simulation/energy.js';
import {
  isNotAvailable,
  parseCaptureSections,
  parseHelpFields,
  parseListMigProfiles,
  parseQTextMigDevices,
  parseQTextProcessPlacement,
  parseQTextTree,
  parseQueryCsv,
  qTextValue,
  type CsvTable,
  type QTextMigDevice,
} from './capture.js';
import type { QueryField } from './fields.js';
import { readFixture } from './fixtures.js';
import { csvTimestamp } from './output.js';
import {
  aliasesOf,
  xmlTemplate,
  type AppRow,
  type GpuRow,
  type Reading,
  type SmiSource,
} from './source.js';
import { ctime, formatReasonMask, writeXml, type GenGpu, type GenMigDevice } from './xml.js';
import { PROFILES, type ProfileDefinition } from './profile-table.js';

export { DEFAULT_PROFILE, PROFILES, type ProfileDefinition } from './profile-table.js';

/** Identity of one GPU of a profile. */
interface Identity {
  readonly busId: string;
  readonly uuid: string;
  readonly serial: string | undefined;
  readonly temperatureOffsetC: number;
  readonly powerOffsetW: number;
}

/** What the capture says about the GPU model, parsed once. */
export interface ProfileData {
  readonly name: string;
  readonly fields: readonly QueryField[];
  readonly appFields: readonly QueryField[];
  readonly idle: ReadonlyMap<string, string>;
  readonly load: ReadonlyMap<string, string>;
  readonly texts: {
    readonly version: string;
    readonly help: string;
    readonly helpQueryGpu: string;
    readonly helpQueryComputeApps: string;
  };
  readonly driverVersion: string;
  readonly cudaVersion: string;
  readonly brand: string | undefined;
  readonly architecture: string | undefined;
  readonly gpus: readonly GpuSpec[];
  /** Board serial per GPU (undefined or [N/A] where the model has none, as GeForce). */
  readonly serials: readonly (string | undefined)[];
  /** MIG device details the world does not model (engine counts, BAR1). */
  readonly migDetails: readonly QTextMigDevice[];
  /** The capture's load processes (pid, name, memory, MIG placement). */
  readonly captureProcesses: readonly ProcessSpec[];
  /** Windows WDDM: per-process memory is not reported. */
  readonly wddm: boolean;
  /** `-q` text of the idle and load states as label paths, for XML elements CSV lacks. */
  readonly qIdle: ReadonlyMap<string, string>;
  readonly qLoad: ReadonlyMap<string, string>;
}

/**
 * XML elements no `--query-gpu` field covers, filled from the capture's `-q` text (same
 * driver, same board): element path under `<gpu>` → label path in the text.
 */
const Q_TEXT_ELEMENTS: readonly (readonly [string, string])[] = [
  ['pdi', 'GPU PDI'],
  ['multigpu_board', 'MultiGPU Board'],
  ['board_id', 'Board ID'],
  ['board_part_number', 'Board Part Number'],
  ['gpu_part_number', 'GPU Part Number'],
  ['gpu_fru_part_number', 'FRU Part Number'],
  ['inforom_bbx_flush/latest_timestamp', 'Inforom BBX Object Flush/Latest Timestamp'],
  ['inforom_bbx_flush/latest_duration', 'Inforom BBX Object Flush/Latest Duration'],
  ['gpu_virtualization_mode/virtualization_mode', 'GPU Virtualization Mode/Virtualization Mode'],
  ['gpu_virtualization_mode/host_vgpu_mode', 'GPU Virtualization Mode/Host VGPU Mode'],
  [
    'gpu_virtualization_mode/vgpu_heterogeneous_mode',
    'GPU Virtualization Mode/vGPU Heterogeneous Mode',
  ],
  ['ibmnpu/relaxed_ordering_mode', 'IBMNPU/Relaxed Ordering Mode'],
  ['pci/pci_bridge_chip/bridge_chip_type', 'PCI/Bridge Chip/Type'],
  ['pci/pci_bridge_chip/bridge_chip_fw', 'PCI/Bridge Chip/Firmware'],
  ['pci/replay_counter', 'PCI/Replays Since Reset'],
  ['pci/replay_rollover_counter', 'PCI/Replay Number Rollovers'],
  ['pci/tx_util', 'PCI/Tx Throughput'],
  ['pci/rx_util', 'PCI/Rx Throughput'],
  ['pci/atomic_caps_outbound', 'PCI/Atomic Caps Outbound'],
  ['pci/atomic_caps_inbound', 'PCI/Atomic Caps Inbound'],
  ['sparse_operation_mode', 'Sparse Operation Mode'],
  ['bar1_memory_usage/total', 'BAR1 Memory Usage/Total'],
  ['bar1_memory_usage/used', 'BAR1 Memory Usage/Used'],
  ['bar1_memory_usage/free', 'BAR1 Memory Usage/Free'],
  ['fbc_stats/session_count', 'FBC Stats/Active Sessions'],
  ['fbc_stats/average_fps', 'FBC Stats/Average FPS'],
  ['fbc_stats/average_latency', 'FBC Stats/Average Latency'],
  ['ecc_errors/channel_repair_pending', 'ECC Errors/Channel Repair Pending'],
  ['ecc_errors/tpc_repair_pending', 'ECC Errors/TPC Repair Pending'],
  ['ecc_errors/unrepairable_memory', 'ECC Errors/Unrepairable Memory'],
  ['retired_pages/pending_blacklist', 'Retired Pages/Pending Page Blacklist'],
  ['temperature/gpu_temp_max_threshold', 'Temperature/GPU Shutdown Temp'],
  ['temperature/gpu_temp_slow_threshold', 'Temperature/GPU Slowdown Temp'],
  ['temperature/gpu_temp_max_gpu_threshold', 'Temperature/GPU Max Operating Temp'],
  ['temperature/gpu_target_temperature', 'Temperature/GPU Target Temperature'],
  ['gpu_memory_power_readings/average_power_draw', 'GPU Memory Power Readings/Average Power Draw'],
  [
    'gpu_memory_power_readings/instant_power_draw',
    'GPU Memory Power Readings/Instantaneous Power Draw',
  ],
  ['power_smoothing', 'Power Smoothing'],
  ['power_profiles/power_profile_requested_profiles', 'Workload Power Profiles/Requested Profiles'],
  ['power_profiles/power_profile_enforced_profiles', 'Workload Power Profiles/Enforced Profiles'],
  ['deferred_clocks/mem_clock', 'Deferred Clocks/Memory'],
  ['max_clocks/video_clock', 'Max Clocks/Video'],
  ['max_customer_boost_clocks/graphics_clock', 'Max Customer Boost Clocks/Graphics'],
  ['clock_policy/auto_boost', 'Clock Policy/Auto Boost'],
  ['clock_policy/auto_boost_default', 'Clock Policy/Auto Boost Default'],
  ['capabilities/egm', 'Capabilities/EGM'],
];

function rowMap(table: CsvTable, row = 0): Map<string, string> {
  const cells = table.rows[row] ?? [];
  return new Map(table.columns.map((c, i) => [c.name, cells[i] ?? ''] as const));
}

/** The number in a cell (`631.95 W` → 631.95); undefined for [N/A] and friends. */
export function cellNumber(cell: string | undefined): number | undefined {
  if (cell === undefined || isNotAvailable(cell)) return undefined;
  const m = /^-?\d+(\.\d+)?/.exec(cell);
  return m ? Number(m[0]) : undefined;
}

function need(cells: ReadonlyMap<string, string>, field: string): number {
  const n = cellNumber(cells.get(field));
  if (n === undefined) throw new Error(`profile capture lacks a number for ${field}`);
  return n;
}

function operatingPoint(cells: ReadonlyMap<string, string>): OperatingPoint {
  const power = need(cells, 'power.draw');
  return {
    utilizationGpu: cellNumber(cells.get('utilization.gpu')),
    utilizationMemory: cellNumber(cells.get('utilization.memory')),
    temperatureC: need(cells, 'temperature.gpu'),
    memoryTemperatureC: cellNumber(cells.get('temperature.memory')),
    powerW: power,
    powerInstantW: cellNumber(cells.get('power.draw.instant')) ?? power,
    clocksMHz: {
      graphics: need(cells, 'clocks.current.graphics'),
      sm: need(cells, 'clocks.current.sm'),
      memory: need(cells, 'clocks.current.memory'),
      video: need(cells, 'clocks.current.video'),
    },
    pstate: Number((cells.get('pstate') ?? 'P0').replace(/^P/, '')),
  };
}

/** A UUID-shaped id that stays the same for a profile's GPU across runs and seeds. */
function stableUuid(prefix: string, ...parts: (string | number)[]): string {
  const hex = [0, 1, 2, 3]
    .map((k) =>
      hash32(...parts, k)
        .toString(16)
        .padStart(8, '0'),
    )
    .join('');
  return `${prefix}-${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

const COUNTER_FIELDS: readonly [string, ThrottleReason][] = [
  ['sw_power_cap', 'sw_power_cap'],
  ['sync_boost', 'sync_boost'],
  ['sw_thermal_slowdown', 'sw_thermal_slowdown'],
  ['hw_thermal_slowdown', 'hw_thermal_slowdown'],
  ['hw_power_brake_slowdown', 'hw_power_brake_slowdown'],
];

/** Temperature at which slowdown engages, from the -q text (absolute or T.Limit form). */
function slowdownTemp(qText: string, idle: ReadonlyMap<string, string>): number {
  const absolute = cellNumber(qTextValue(qText, 'GPU Slowdown Temp'));
  if (absolute !== undefined) return absolute;
  const tlimitSlowdown = cellNumber(qTextValue(qText, 'GPU Slowdown T.Limit Temp')) ?? 0;
  const tlimit = cellNumber(idle.get('temperature.gpu.tlimit'));
  const temp = need(idle, 'temperature.gpu');
  return tlimit === undefined ? 90 : temp + tlimit - tlimitSlowdown;
}

function identities(
  profile: string,
  def: ProfileDefinition,
  idle: ReadonlyMap<string, string>,
): Identity[] {
  const serial = idle.get('serial');
  const makeSerial = (i: number): string | undefined =>
    serial === undefined || isNotAvailable(serial)
      ? serial
      : String(1_650_000_000_000 + (hash32(profile, i, 'serial') % 10_000_000));
  if (def.identities === undefined) {
    return Array.from({ length: def.gpuCount }, (_, i) => ({
      busId: idle.get('pci.bus_id') ?? '00000000:01:00.0',
      uuid: stableUuid('GPU', profile, i),
      serial: makeSerial(i),
      temperatureOffsetC: 0,
      powerOffsetW: 0,
    }));
  }
  const table = parseQueryCsv(readFixture(def.identities));
  const temps = table.rows.map((_, r) => need(rowMap(table, r), 'temperature.gpu'));
  const powers = table.rows.map((_, r) => need(rowMap(table, r), 'power.draw.average'));
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const seen = new Set<string>();
  return Array.from({ length: def.gpuCount }, (_, i) => {
    const cells = rowMap(table, i % Math.max(1, table.rows.length));
    let busId = cells.get('pci.bus_id') ?? '00000000:01:00.0';
    // The VirtualClient sample repeats the first four bus ids for GPUs 4–7 (copy-paste in the
    // source); a real 8-GPU board has eight, so the repeats move to the second PCIe root.
    if (seen.has(busId)) {
      const bus = parseInt(busId.slice(9, 11), 16) + 0x80;
      busId = `${busId.slice(0, 9)}${bus.toString(16).toUpperCase().padStart(2, '0')}${busId.slice(11)}`;
    }
    seen.add(busId);
    return {
      busId,
      uuid: stableUuid('GPU', profile, i),
      serial: makeSerial(i),
      temperatureOffsetC: (temps[i] ?? 0) - mean(temps),
      powerOffsetW: (powers[i] ?? 0) - mean(powers),
    };
  });
}

const loaded = new Map<string, ProfileData>();

/** Reads a profile's capture and builds its GPUs (once per process; the data is immutable). */
export function loadProfile(name: string): ProfileData {
  let data = loaded.get(name);
  if (data === undefined) {
    data = readProfile(name);
    loaded.set(name, data);
  }
  return data;
}

function readProfile(name: string): ProfileData {
  const def = PROFILES[name];
  if (def === undefined) {
    throw new Error(`unknown profile "${name}" (known: ${Object.keys(PROFILES).join(', ')})`);
  }
  const sections = parseCaptureSections(readFixture(def.capture));
  const section = (title: string): string => {
    const body = sections.get(title);
    if (body === undefined) throw new Error(`capture ${def.capture} lacks "${title}"`);
    return body;
  };
  const idleTable = parseQueryCsv(section('idle :: query-gpu (csv, what the exporter parses)'));
  const loadTable = parseQueryCsv(section('load :: query-gpu (csv, what the exporter parses)'));
  const idle = rowMap(idleTable);
  const load = rowMap(loadTable);
  const helpQueryGpu = section('capabilities :: help-query-gpu');
  const helpApps = section('capabilities :: help-query-compute-apps');
  const entries = parseHelpFields(helpQueryGpu);
  const appEntries = parseHelpFields(helpApps);
  const fields = idleTable.columns.map((c) => ({
    name: c.name,
    unit: c.unit,
    aliases: aliasesOf(c.name, entries),
  }));
  const appsTable = parseQueryCsv(section('load :: query-compute-apps (per-process)'));
  const appFields = appsTable.columns.map((c) => ({
    name: c.name,
    unit: c.unit,
    aliases: aliasesOf(c.name, appEntries),
  }));
  const idleQ = section('idle :: query (-q)');
  const loadQ = section('load :: query (-q)');
  const version = section('capabilities :: version');
  const cudaVersion =
    /CUDA (?:UMD )?[Vv]ersion\s*: (\d[\d.]*)/.exec(version)?.[1] ??
    qTextValue(idleQ, 'CUDA Version') ??
    'N/A';

  const placement = parseQTextProcessPlacement(loadQ);
  const wddm = idle.get('driver_model.current') === 'WDDM';
  const captureProcesses = appsTable.rows.map((_, r): ProcessSpec => {
    const cells = rowMap(appsTable, r);
    const pid = Number(cells.get('pid'));
    const where = placement.get(pid);
    return {
      pid,
      gpuIndex: 0,
      usedMemoryMiB: cellNumber(cells.get('used_gpu_memory')),
      name: cells.get('process_name') ?? 'python',
      type: 'C',
      ...(where ?? {}),
    };
  });
  const loadProcMiB = captureProcesses.reduce((s, p) => s + (p.usedMemoryMiB ?? 0), 0);

  const migLoad = parseQTextMigDevices(loadQ);
  const migIdle = parseQTextMigDevices(idleQ);
  const migProfiles = parseListMigProfiles(section('capabilities :: list (-L)'));
  const idleUsed = need(idle, 'memory.used');
  const counters: Partial<Record<ThrottleReason, number>> = {};
  for (const [field, reason] of COUNTER_FIELDS) {
    const n = cellNumber(idle.get(`clocks_event_reasons_counters.${field}`));
    if (n !== undefined) counters[reason] = n;
  }
  const ids = identities(name, def, idle);
  const gpus = ids.map((id, index): GpuSpec => ({
    index,
    uuid: id.uuid,
    name: idle.get('name') ?? 'NVIDIA GPU',
    busId: id.busId,
    memoryTotalMiB: need(idle, 'memory.total'),
    memoryUsableMiB: idleUsed + need(idle, 'memory.free'),
    memoryIdleUsedMiB: idleUsed,
    // What the loaded GPU used beyond its processes (CUDA contexts; on WDDM everything).
    memoryContextMiB: Math.max(0, need(load, 'memory.used') - idleUsed - loadProcMiB),
    powerLimitW: need(idle, 'enforced.power.limit'),
    idle: operatingPoint(idle),
    load: operatingPoint(load),
    slowdownTempC: slowdownTemp(idleQ, idle),
    throttleCountersUs: counters,
    migDevices: migLoad.map((m): MigDeviceSpec => ({
      index: m.index,
      gpuInstanceId: m.gpuInstanceId,
      computeInstanceId: m.computeInstanceId,
      uuid: stableUuid('MIG', name, index, m.index),
      profile: migProfiles.get(m.index) ?? '',
      multiprocessorCount: m.attributes['Multiprocessor count'] ?? 0,
      memoryTotalMiB: m.fbTotalMiB,
      idleUsedMiB: migIdle.find((x) => x.index === m.index)?.fbUsedMiB ?? 0,
      // What the loaded instance used beyond its processes' own numbers (contexts).
      contextMiB: Math.max(
        0,
        m.fbUsedMiB -
          (migIdle.find((x) => x.index === m.index)?.fbUsedMiB ?? 0) -
          captureProcesses
            .filter((p) => p.gpuInstanceId === m.gpuInstanceId)
            .reduce((sum, p) => sum + (p.usedMemoryMiB ?? 0), 0),
      ),
    })),
    temperatureOffsetC: id.temperatureOffsetC,
    powerOffsetW: id.powerOffsetW,
  }));
  return {
    name,
    fields,
    appFields,
    idle,
    load,
    texts: {
      version: version + '\n',
      help: section('capabilities :: help (-h)') + '\n',
      helpQueryGpu: helpQueryGpu + '\n',
      helpQueryComputeApps: helpApps + '\n',
    },
    driverVersion: idle.get('driver_version') ?? 'N/A',
    cudaVersion,
    brand: qTextValue(idleQ, 'Product Brand'),
    architecture: qTextValue(idleQ, 'Product Architecture'),
    gpus,
    serials: ids.map((id) => id.serial),
    migDetails: migLoad,
    captureProcesses,
    wddm,
    qIdle: parseQTextTree(idleQ),
    qLoad: parseQTextTree(loadQ),
  };
}

/**
 * Processes a profile shows when the environment names none: the capture's own load
 * processes on a one-GPU profile; on a multi-GPU box one training rank (`python`) per GPU.
 */
export function defaultProcesses(profile: ProfileData): ProcessSpec[] {
  if (profile.gpus.length === 1) return [...profile.captureProcesses];
  return profile.gpus.map((gpu) => ({
    pid: 4100 + gpu.index * 37,
    gpuIndex: gpu.index,
    usedMemoryMiB: Math.round(
      gpu.memoryUsableMiB * (0.45 + 0.2 * unitHash(profile.name, 'rank', gpu.index)),
    ),
    name: 'python',
    type: 'C' as const,
  }));
}

const PREFIXES = ['clocks_event_reasons', 'clocks_throttle_reasons'];

function fmtW(w: number): string {
  return `${w.toFixed(2)} W`;
}

/** The printed cells of one simulated GPU at an instant, in the capture's exact formats. */
export function renderGpuCells(
  profile: ProfileData,
  gpu: GpuState,
  nowMs: number,
  gpuCount: number,
  serial: string | undefined,
): Map<string, string> {
  const cells = new Map<string, string>();
  // Fields the world does not model follow the capture: idle value, or the load value while a
  // process is running (encoder sessions, PCIe link generation, P-state on GeForce).
  for (const [field, idleCell] of profile.idle) {
    const loadCell = profile.load.get(field) ?? idleCell;
    cells.set(field, gpu.busy ? loadCell : idleCell);
  }
  const set = (field: string, value: string | undefined): void => {
    if (value !== undefined && cells.has(field)) cells.set(field, value);
  };
  const numeric = (field: string): boolean => cellNumber(profile.idle.get(field)) !== undefined;
  const spec = gpu.spec;
  set('timestamp', csvTimestamp(nowMs));
  set('count', String(gpuCount));
  set('index', String(spec.index));
  set('uuid', spec.uuid);
  set('serial', serial);
  set('pci.bus_id', spec.busId);
  set('pci.domain', `0x${spec.busId.slice(4, 8)}`);
  set('pci.bus', `0x${spec.busId.slice(9, 11)}`);
  set('pci.device', `0x${spec.busId.slice(12, 14)}`);
  if (gpuCount > 1) set('platform.module_id', String(spec.index + 1));
  if (gpu.utilizationGpu !== undefined) set('utilization.gpu', `${gpu.utilizationGpu} %`);
  if (gpu.utilizationMemory !== undefined) set('utilization.memory', `${gpu.utilizationMemory} %`);
  set('memory.used', `${gpu.memoryUsedMiB} MiB`);
  set('memory.free', `${gpu.memoryFreeMiB} MiB`);
  set('temperature.gpu', String(gpu.temperatureC));
  if (gpu.memoryTemperatureC !== undefined && numeric('temperature.memory')) {
    set('temperature.memory', String(gpu.memoryTemperatureC));
  }
  const tIdle = cellNumber(profile.idle.get('temperature.gpu.tlimit'));
  const tLoad = cellNumber(profile.load.get('temperature.gpu.tlimit'));
  if (tIdle !== undefined && tLoad !== undefined) {
    // T.Limit is the margin to the slowdown point: it shrinks as the die heats.
    const span = spec.load.temperatureC - spec.idle.temperatureC;
    const slope = span === 0 ? 1 : (tIdle - tLoad) / span;
    set(
      'temperature.gpu.tlimit',
      String(Math.round(tIdle - (gpu.temperatureC - spec.idle.temperatureC) * slope)),
    );
  }
  // Where the driver has no averaged reading (power.draw.average [N/A], driver 610 on
  // Turing), power.draw is the instantaneous one: both captures print the same number.
  const averaged = numeric('power.draw.average') || !profile.idle.has('power.draw.average');
  if (numeric('power.draw')) {
    set('power.draw', fmtW(averaged ? gpu.powerDrawW : gpu.powerInstantW));
  }
  if (numeric('power.draw.average')) set('power.draw.average', fmtW(gpu.powerDrawW));
  if (numeric('power.draw.instant')) set('power.draw.instant', fmtW(gpu.powerInstantW));
  const domains: readonly ClockDomain[] = ['graphics', 'sm', 'memory', 'video'];
  for (const d of domains) set(`clocks.current.${d}`, `${gpu.clocksMHz[d]} MHz`);
  set('pstate', `P${gpu.pstate}`);
  let mask = 0;
  for (const reason of THROTTLE_REASONS)
    if (gpu.throttle[reason]) mask += THROTTLE_REASON_BITS[reason];
  for (const prefix of PREFIXES) {
    set(`${prefix}.active`, formatReasonMask(mask));
    for (const reason of THROTTLE_REASONS) {
      const field = `${prefix}.${reason}`;
      const template = profile.idle.get(field);
      if (template === 'Active' || template === 'Not Active') {
        set(field, gpu.throttle[reason] ? 'Active' : 'Not Active');
      }
    }
  }
  for (const [field, reason] of COUNTER_FIELDS) {
    const us = gpu.throttleCountersUs[reason];
    if (us !== undefined) set(`clocks_event_reasons_counters.${field}`, `${Math.round(us)} us`);
  }
  return cells;
}

/** A profile as a running nvidia-smi sees it: the world plus the capture's formats. */
export class ProfileSource implements SmiSource {
  readonly gpuFields: readonly QueryField[];
  readonly appFields: readonly QueryField[];

  constructor(
    private readonly profile: ProfileData,
    private readonly world: WorldConfig,
  ) {
    this.gpuFields = profile.fields;
    this.appFields = profile.appFields;
  }

  version(): string {
    return this.profile.texts.version;
  }

  help(): string {
    return this.profile.texts.help;
  }

  helpQueryGpu(): string {
    return this.profile.texts.helpQueryGpu;
  }

  helpQueryComputeApps(): string {
    return this.profile.texts.helpQueryComputeApps;
  }

  /** The world state behind a reading (for tests and the XML writer). */
  state(nowMs: number): WorldState {
    return worldAt(this.world, nowMs);
  }

  /** Joules each GPU has drawn since the simulation started (DCGM's energy counter). */
  energySinceStartJoules(nowMs: number): number[] {
    return energySinceStartJoules(this.world, nowMs);
  }

  read(nowMs: number): Reading {
    const state = this.state(nowMs);
    const count = this.profile.gpus.length;
    const gpus = state.gpus.map((g): GpuRow => {
      const cells = renderGpuCells(
        this.profile,
        g,
        nowMs,
        count,
        this.profile.serials[g.spec.index],
      );
      const migLines = g.spec.migDevices.map(
        (m) =>
          `  MIG ${m.profile.padEnd(11)} Device ${String(m.index).padStart(2)}: (UUID: ${m.uuid})`,
      );
      return {
        index: g.spec.index,
        uuid: g.spec.uuid,
        busId: g.spec.busId,
        name: g.spec.name,
        cells,
        listLines: [`GPU ${g.spec.index}: ${g.spec.name} (UUID: ${g.spec.uuid})`, ...migLines],
        migUuids: g.spec.migDevices.map((m) => m.uuid),
      };
    });
    const stamp = csvTimestamp(nowMs);
    const apps: AppRow[] = [];
    for (const g of state.gpus) {
      const row = gpus[g.spec.index];
      for (const p of g.processes) {
        if (p.type === 'G') continue;
        apps.push({
          gpuIndex: g.spec.index,
          cells: new Map([
            ['timestamp', stamp],
            ['gpu_name', g.spec.name],
            ['gpu_bus_id', g.spec.busId],
            ['gpu_serial', row?.cells.get('serial') ?? '[N/A]'],
            ['gpu_uuid', g.spec.uuid],
            ['pid', String(p.pid)],
            ['process_name', p.name],
            [
              'used_gpu_memory',
              this.profile.wddm || p.usedMemoryMiB === undefined
                ? '[N/A]'
                : `${p.usedMemoryMiB} MiB`,
            ],
          ]),
        });
      }
    }
    return { failure: state.failure, gpus, apps };
  }

  xml(reading: Reading, selected: readonly number[], nowMs: number): string {
    const state = this.state(nowMs);
    const genGpus = state.gpus
      .filter((g) => selected.includes(g.spec.index))
      .map((g): GenGpu => {
        const cells = reading.gpus[g.spec.index]?.cells ?? new Map<string, string>();
        const extras: Record<string, string> = {};
        const q = g.busy ? this.profile.qLoad : this.profile.qIdle;
        for (const [element, label] of Q_TEXT_ELEMENTS) {
          const value = q.get(label);
          if (value !== undefined) extras[element] = value;
        }
        extras.minor_number = String(g.spec.index);
        // The PDI is per board; the capture has one board, the other boards get their own.
        if (this.profile.gpus.length > 1 && extras.pdi !== undefined) {
          extras.pdi = `0x${[1, 2].map((k) => hash32(this.profile.name, g.spec.index, 'pdi', k).toString(16).padStart(8, '0')).join('')}`;
        }
        if (this.profile.brand) extras.product_brand = this.profile.brand;
        if (this.profile.architecture) extras.product_architecture = this.profile.architecture;
        const moduleId = cells.get('platform.module_id');
        if (moduleId !== undefined) extras['platformInfo/module_id'] = moduleId;
        extras.gsp_firmware_version = this.profile.driverVersion;
        const migDevices = g.migDevices.map((m): GenMigDevice => {
          const details = this.profile.migDetails.find((d) => d.index === m.spec.index);
          return {
            index: m.spec.index,
            gpuInstanceId: m.spec.gpuInstanceId,
            computeInstanceId: m.spec.computeInstanceId,
            attributes: details?.attributes ?? {},
            sramUncorrectable: details?.sramUncorrectable ?? '0',
            memoryTotalMiB: m.spec.memoryTotalMiB,
            memoryUsedMiB: m.memoryUsedMiB,
            bar1TotalMiB: details?.bar1TotalMiB ?? 0,
          };
        });
        return {
          cells,
          extras,
          migDevices,
          processes: g.processes.map((p) => ({
            gpuInstanceId: p.gpuInstanceId === undefined ? 'N/A' : String(p.gpuInstanceId),
            computeInstanceId:
              p.computeInstanceId === undefined ? 'N/A' : String(p.computeInstanceId),
            pid: p.pid,
            type: p.type,
            name: p.name,
            usedMemory:
              this.profile.wddm || p.usedMemoryMiB === undefined ? 'N/A' : `${p.usedMemoryMiB} MiB`,
          })),
        };
      });
    return writeXml(xmlTemplate(this.profile.driverVersion), {
      timestamp: ctime(nowMs),
      driverVersion: this.profile.driverVersion,
      cudaVersion: this.profile.cudaVersion,
      attachedGpus: this.profile.gpus.length,
      gpus: genGpus,
    });
  }
}
