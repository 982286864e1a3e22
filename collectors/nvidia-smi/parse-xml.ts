/**
 * Pure parser of `nvidia-smi -q -x`.
 *
 * Schemas v9–v13 differ by renames and additions, not by meaning (clocks_throttle_reasons →
 * clocks_event_reasons, power_readings → gpu_power_readings, power_limit → requested_power_limit,
 * single_bit/double_bit ECC → sram_/dram_ counters), so each value is looked up under its newest
 * name first and then under the older ones; one code path instead of a table per version. The
 * DOCTYPE version is only reported, for the collector to warn about schemas never seen.
 */
import { createRequire } from 'node:module';
import type * as Fxp from 'fast-xml-parser';
import { CollectorError, errorMessage } from '../../agent/core/errors.js';
import {
  THROTTLE_REASONS,
  type EccCounters,
  type GpuProcess,
  type GpuReading,
  type MigDeviceReading,
  type ThrottleReason,
} from '../../agent/core/facts.js';
import { parseDeviceHandleError, type PlacedHandleError } from './lost-gpu.js';
import {
  definedOnly,
  gpuIdentity,
  parseBool,
  parseInteger,
  parseNumber,
  parsePstate,
  parseText,
  toBytes,
  toCelsius,
  toHertz,
  toJoules,
  toRatio,
  toSeconds,
  toWatts,
} from './values.js';

/** DTD versions (`nvsmi_device_vNN.dtd`) seen in captures; others parse the same way. */
export const KNOWN_SCHEMA_VERSIONS: readonly number[] = [9, 10, 11, 12, 13];

/** Schema assumed for documents without a DOCTYPE line. */
export const NEWEST_SCHEMA_VERSION = 13;

/** What one `nvidia-smi -q -x` document says. */
export interface NvidiaSmiXml {
  /** From the DOCTYPE, else NEWEST_SCHEMA_VERSION. */
  readonly schemaVersion: number;
  /** False when the document has no DOCTYPE and schemaVersion is an assumption. */
  readonly schemaDeclared: boolean;
  readonly driverVersion?: string;
  readonly cudaVersion?: string;
  /** As printed, local time of the host ("Fri Apr 10 10:23:01 2026"). */
  readonly timestamp?: string;
  readonly gpus: GpuReading[];
  readonly processes: GpuProcess[];
  /** GPUs nvidia-smi could not open: their handle error stood in place of their <gpu>. */
  readonly unreachable?: PlacedHandleError[];
}

type XmlNode = Readonly<Record<string, unknown>>;

function isNode(value: unknown): value is XmlNode {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function at(parent: unknown, path: readonly string[]): unknown {
  let current = parent;
  for (const key of path) current = isNode(current) ? current[key] : undefined;
  return current;
}

/** The element at `path` under `parent`, when it is an element with children. */
function node(parent: unknown, ...path: string[]): XmlNode | undefined {
  const value = at(parent, path);
  return isNode(value) ? value : undefined;
}

/** A leaf's text; undefined for a subtree or a repeated element. */
function asText(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The text of the leaf element at `path`, when it is one. */
function text(parent: unknown, ...path: string[]): string | undefined {
  return asText(at(parent, path));
}

/** A repeated element as a list: fast-xml-parser gives an object for one, an array for several. */
function list(value: unknown): unknown[] {
  if (Array.isArray(value)) return value as unknown[];
  return value === undefined ? [] : [value];
}

let xml:
  { readonly parser: Fxp.XMLParser; readonly validator: typeof Fxp.XMLValidator } | undefined;

/**
 * The XML parser, loaded at the first document: hosts that never read `-q -x` (the edge preset
 * turns it off; a Jetson's nvidia-smi stands down) keep its ~1.5 MB of heap free.
 */
function xmlParser(): NonNullable<typeof xml> {
  if (xml === undefined) {
    const fxp = createRequire(import.meta.url)('fast-xml-parser') as typeof Fxp;
    xml = {
      parser: new fxp.XMLParser({
        ignoreAttributes: false,
        attributeNamePrefix: '@_',
        // Keep "0x0000" and "00001580:00:00.0" as written; values.ts decides what is a number.
        parseTagValue: false,
        parseAttributeValue: false,
      }),
      validator: fxp.XMLValidator,
    };
  }
  return xml;
}

function parseDocument(text: string): unknown {
  const { parser, validator } = xmlParser();
  const valid = validator.validate(text);
  if (valid !== true) {
    throw new CollectorError(
      'parse_error',
      `nvidia-smi XML is not well-formed at line ${valid.err.line}: ${valid.err.msg}`,
    );
  }
  try {
    return parser.parse(text);
  } catch (err) {
    throw new CollectorError('parse_error', `nvidia-smi XML: ${errorMessage(err)}`, { cause: err });
  }
}

// Element suffix → reason; a Map so that a stray <..._constructor> finds nothing.
const REASON_NAMES: ReadonlyMap<string, ThrottleReason> = new Map([
  ...THROTTLE_REASONS.map((r) => [r, r] as const),
  ['display_clocks_setting', 'display_clock_setting'],
  ['sw_therm_slowdown', 'sw_thermal_slowdown'],
  ['hw_therm_slowdown', 'hw_thermal_slowdown'],
  ['hw_power_brake', 'hw_power_brake_slowdown'],
]);

/** Children of `section` named `<prefix><reason>`, keyed by reason, values converted by `parse`. */
function perReason<T>(
  section: XmlNode | undefined,
  prefix: RegExp,
  parse: (raw: string | undefined) => T | undefined,
): Partial<Record<ThrottleReason, T>> {
  const result: Partial<Record<ThrottleReason, T>> = {};
  for (const [key, raw] of Object.entries(section ?? {})) {
    const reason = REASON_NAMES.get(key.replace(prefix, ''));
    const value = parse(asText(raw));
    if (reason !== undefined && value !== undefined) result[reason] = value;
  }
  return result;
}

function sum(values: readonly (number | undefined)[]): number | undefined {
  const numbers = values.filter((v) => v !== undefined);
  return numbers.length === 0 ? undefined : numbers.reduce((a, b) => a + b, 0);
}

function countsWhere(section: XmlNode, keep: (name: string) => boolean): number | undefined {
  return sum(
    Object.entries(section)
      .filter(([name]) => keep(name))
      .map(([, raw]) => parseInteger(asText(raw))),
  );
}

/**
 * Corrected/uncorrected totals of one `volatile` or `aggregate` block. Old schemas (≤ v10) split
 * single_bit/double_bit by location and print their own `total`: taken as is, since it is the
 * driver's sum and what `ecc.errors.*.total` reports in CSV; the locations are summed only when
 * `total` is absent. v11+ list sram_/dram_ counters without a total: corrected = every
 * `*_correctable`, uncorrected = every `*_uncorrectable*` (v13 splits SRAM into parity and
 * SECDED); flags such as sram_threshold_exceeded are not counts and are left out.
 */
function eccTotals(section: XmlNode | undefined): { corrected?: number; uncorrected?: number } {
  if (section === undefined) return {};
  const single = node(section, 'single_bit');
  const double = node(section, 'double_bit');
  if (single !== undefined || double !== undefined) {
    const total = (bits: XmlNode | undefined): number | undefined =>
      bits === undefined
        ? undefined
        : (parseInteger(text(bits, 'total')) ?? countsWhere(bits, (name) => name !== 'total'));
    return { corrected: total(single), uncorrected: total(double) };
  }
  return {
    corrected: countsWhere(section, (name) => /(^|_)correctable$/.test(name)),
    uncorrected: countsWhere(section, (name) => /(^|_)uncorrectable(_|$)/.test(name)),
  };
}

function eccCounters(gpu: XmlNode): EccCounters | undefined {
  const volatile = eccTotals(node(gpu, 'ecc_errors', 'volatile'));
  const aggregate = eccTotals(node(gpu, 'ecc_errors', 'aggregate'));
  const ecc = definedOnly({
    enabled: parseBool(text(gpu, 'ecc_mode', 'current_ecc')),
    correctedVolatile: volatile.corrected,
    uncorrectedVolatile: volatile.uncorrected,
    correctedAggregate: aggregate.corrected,
    uncorrectedAggregate: aggregate.uncorrected,
  });
  return Object.keys(ecc).length > 0 ? ecc : undefined;
}

function migDevices(gpu: XmlNode): MigDeviceReading[] | undefined {
  const entries = list(node(gpu, 'mig_devices')?.['mig_device']);
  if (entries.length === 0) return undefined;
  const devices: MigDeviceReading[] = [];
  for (const device of entries) {
    const gpuInstanceId = parseInteger(text(device, 'gpu_instance_id'));
    const computeInstanceId = parseInteger(text(device, 'compute_instance_id'));
    if (gpuInstanceId === undefined || computeInstanceId === undefined) continue;
    devices.push(
      definedOnly<MigDeviceReading>({
        index: parseInteger(text(device, 'index')),
        gpuInstanceId,
        computeInstanceId,
        uuid: parseText(text(device, 'uuid')),
        multiprocessorCount: parseInteger(
          text(device, 'device_attributes', 'shared', 'multiprocessor_count'),
        ),
        memoryTotalBytes: toBytes(text(device, 'fb_memory_usage', 'total')),
        memoryUsedBytes: toBytes(text(device, 'fb_memory_usage', 'used')),
        memoryFreeBytes: toBytes(text(device, 'fb_memory_usage', 'free')),
      }),
    );
  }
  return devices;
}

function processes(gpu: XmlNode, gpuUuid: string, gpuIndex: number): GpuProcess[] {
  const result: GpuProcess[] = [];
  for (const info of list(node(gpu, 'processes')?.['process_info'])) {
    const pid = parseInteger(text(info, 'pid'));
    if (pid === undefined) continue;
    result.push(
      definedOnly<GpuProcess>({
        pid,
        gpuUuid,
        gpuIndex,
        processName: parseText(text(info, 'process_name')) ?? '',
        usedMemoryBytes: toBytes(text(info, 'used_memory')),
        type: parseText(text(info, 'type')),
        gpuInstanceId: parseInteger(text(info, 'gpu_instance_id')),
        computeInstanceId: parseInteger(text(info, 'compute_instance_id')),
      }),
    );
  }
  return result;
}

function clocks(section: XmlNode | undefined): GpuReading['clocksHz'] {
  return definedOnly({
    graphics: toHertz(text(section, 'graphics_clock')),
    sm: toHertz(text(section, 'sm_clock')),
    memory: toHertz(text(section, 'mem_clock')),
    video: toHertz(text(section, 'video_clock')),
  });
}

interface LogInfo {
  readonly driverVersion?: string;
  readonly cudaVersion?: string;
}

function parseGpu(
  gpu: XmlNode,
  position: number,
  log: LogInfo,
): { reading: GpuReading; processes: GpuProcess[] } | undefined {
  const busId = parseText(text(gpu, 'pci', 'pci_bus_id')) ?? parseText(text(gpu, '@_id'));
  const uuid = gpuIdentity(text(gpu, 'uuid'), busId);
  if (uuid === undefined) return undefined;
  // nvidia-smi lists GPUs in NVML index order, the `index` of --query-gpu; minor_number is
  // /dev/nvidiaN, which differs on some hosts (the K80 fixture: minor numbers 1, 2, 3, 0).
  const index = position;
  const minorNumber = parseInteger(text(gpu, 'minor_number'));
  const power = node(gpu, 'gpu_power_readings') ?? node(gpu, 'power_readings');
  const link = node(gpu, 'pci', 'pci_gpu_link_info');
  const retired = node(gpu, 'retired_pages');
  const remapped = node(gpu, 'remapped_rows');
  const reading = definedOnly<GpuReading>({
    index,
    minorNumber,
    uuid,
    name: parseText(text(gpu, 'product_name')),
    pciBusId: busId,
    driverVersion: log.driverVersion,
    cudaVersion: log.cudaVersion,
    serial: parseText(text(gpu, 'serial')),
    vbiosVersion: parseText(text(gpu, 'vbios_version')),
    utilizationRatio: toRatio(text(gpu, 'utilization', 'gpu_util')),
    memoryUtilizationRatio: toRatio(text(gpu, 'utilization', 'memory_util')),
    encoderUtilizationRatio: toRatio(text(gpu, 'utilization', 'encoder_util')),
    decoderUtilizationRatio: toRatio(text(gpu, 'utilization', 'decoder_util')),
    memoryTotalBytes: toBytes(text(gpu, 'fb_memory_usage', 'total')),
    memoryUsedBytes: toBytes(text(gpu, 'fb_memory_usage', 'used')),
    memoryFreeBytes: toBytes(text(gpu, 'fb_memory_usage', 'free')),
    memoryReservedBytes: toBytes(text(gpu, 'fb_memory_usage', 'reserved')),
    temperatureCelsius: toCelsius(text(gpu, 'temperature', 'gpu_temp')),
    memoryTemperatureCelsius: toCelsius(text(gpu, 'temperature', 'memory_temp')),
    // Drivers from 535 on print average_/instant_power_draw instead of power_draw; the average is
    // what power_draw meant (and what CSV power.draw still reports).
    powerDrawWatts:
      toWatts(text(power, 'power_draw')) ??
      toWatts(text(power, 'average_power_draw')) ??
      toWatts(text(power, 'instant_power_draw')),
    powerLimitWatts:
      toWatts(text(power, 'requested_power_limit')) ?? toWatts(text(power, 'power_limit')),
    enforcedPowerLimitWatts:
      toWatts(text(power, 'current_power_limit')) ?? toWatts(text(power, 'enforced_power_limit')),
    energyJoules:
      toJoules(text(gpu, 'total_energy_consumption')) ??
      toJoules(text(power, 'total_energy_consumption')),
    clocksHz: clocks(node(gpu, 'clocks')),
    maxClocksHz: clocks(node(gpu, 'max_clocks')),
    fanSpeedRatio: toRatio(text(gpu, 'fan_speed')),
    pstate: parsePstate(text(gpu, 'performance_state')),
    throttle: perReason(
      node(gpu, 'clocks_event_reasons') ?? node(gpu, 'clocks_throttle_reasons'),
      /^clocks_(event|throttle)_reason_/,
      parseBool,
    ),
    throttleSeconds: perReason(
      node(gpu, 'clocks_event_reasons_counters'),
      /^clocks_event_reasons_counters_/,
      toSeconds,
    ),
    pcieLinkGen: parseInteger(text(link, 'pcie_gen', 'current_link_gen')),
    pcieLinkGenMax: parseInteger(text(link, 'pcie_gen', 'max_link_gen')),
    pcieLinkWidth: parseNumber(text(link, 'link_widths', 'current_link_width')),
    pcieLinkWidthMax: parseNumber(text(link, 'link_widths', 'max_link_width')),
    persistenceMode: parseBool(text(gpu, 'persistence_mode')),
    migEnabled: parseBool(text(gpu, 'mig_mode', 'current_mig')),
    migDevices: migDevices(gpu),
    ecc: eccCounters(gpu),
    retiredPagesSingleBit: parseInteger(
      text(retired, 'multiple_single_bit_retirement', 'retired_count'),
    ),
    retiredPagesDoubleBit: parseInteger(text(retired, 'double_bit_retirement', 'retired_count')),
    retiredPagesPending:
      parseBool(text(retired, 'pending_retirement')) ??
      parseBool(text(retired, 'pending_blacklist')),
    remappedRowsCorrectable: parseInteger(text(remapped, 'remapped_row_corr')),
    remappedRowsUncorrectable: parseInteger(text(remapped, 'remapped_row_unc')),
    remappedRowsPending: parseBool(text(remapped, 'remapped_row_pending')),
    remappedRowsFailure: parseBool(text(remapped, 'remapped_row_failure')),
  });
  return { reading, processes: processes(gpu, uuid, index) };
}

/**
 * GPUs and processes from one `nvidia-smi -q -x` document. GPUs without uuid or PCI bus id are
 * left out. A document that is not well-formed XML, or has no <nvidia_smi_log> root, throws
 * CollectorError('parse_error').
 */
export function parseNvidiaSmiXml(xml: string): NvidiaSmiXml {
  const { text: clean, unreachable, gpuPositions } = splitHandleErrors(xml);
  const document = parseDocument(clean);
  if (!isNode(document) || !('nvidia_smi_log' in document)) {
    throw new CollectorError('parse_error', 'nvidia-smi XML has no <nvidia_smi_log> element');
  }
  const root = document['nvidia_smi_log'];
  const declared = /nvsmi_device_v(\d+)\.dtd/.exec(xml);
  // Driver 610 appends "[Deprecated; ...]" to the CUDA version; keep the version number only.
  const cuda = parseText(text(root, 'cuda_version'));
  const log: LogInfo = {
    driverVersion: parseText(text(root, 'driver_version')),
    cudaVersion: cuda === undefined ? undefined : (/^\d+(\.\d+)*/.exec(cuda)?.[0] ?? cuda),
  };
  const gpus: GpuReading[] = [];
  const allProcesses: GpuProcess[] = [];
  list(node(root)?.['gpu']).forEach((gpu, k) => {
    const parsed = isNode(gpu) ? parseGpu(gpu, gpuPositions[k] ?? k, log) : undefined;
    if (parsed === undefined) return;
    gpus.push(parsed.reading);
    allProcesses.push(...parsed.processes);
  });
  return definedOnly<NvidiaSmiXml>({
    schemaVersion: declared ? Number(declared[1]) : NEWEST_SCHEMA_VERSION,
    schemaDeclared: declared !== null,
    ...log,
    timestamp: parseText(text(root, 'timestamp')),
    gpus,
    processes: allProcesses,
    ...(unreachable.length > 0 ? { unreachable } : {}),
  });
}

/**
 * Takes out the lines nvidia-smi prints in place of a GPU it cannot open (they would make the
 * document ill-formed) and counts positions past them: the GPUs after a lost one keep their
 * index, which is their position among all attached GPUs.
 */
function splitHandleErrors(xml: string): {
  text: string;
  unreachable: PlacedHandleError[];
  gpuPositions: number[];
} {
  if (!xml.includes('device handle')) return { text: xml, unreachable: [], gpuPositions: [] };
  const kept: string[] = [];
  const unreachable: PlacedHandleError[] = [];
  const gpuPositions: number[] = [];
  let position = 0;
  for (const line of xml.split('\n')) {
    const handle = parseDeviceHandleError(line);
    if (handle) {
      unreachable.push({ ...handle, position: position++ });
      continue;
    }
    if (/^\s*<gpu[\s>]/.test(line)) gpuPositions.push(position++);
    kept.push(line);
  }
  return { text: kept.join('\n'), unreachable, gpuPositions };
}
