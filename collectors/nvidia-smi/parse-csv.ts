/**
 * Pure parsers of `nvidia-smi --query-gpu` / `--query-compute-apps` CSV and `--help-query-gpu`.
 *
 * No CSV library: nvidia-smi's CSV is not RFC 4180. It never quotes, it separates cells with
 * ", " (comma *and* space), and cells may contain bare commas ("0,i,3110" in a process command
 * line) or quotes. An RFC parser would split inside those cells and treat a stray quote as the
 * start of a quoted field; splitting on ", " is what nvidia-smi's own format promises.
 */
import {
  THROTTLE_REASONS,
  type ComputeMode,
  type FabricState,
  type GpuProcess,
  type GpuReading,
  type RecoveryAction,
  type ThrottleReason,
} from '../../agent/core/facts.js';
import { parseDeviceHandleError, type PlacedHandleError } from './lost-gpu.js';
import {
  decodeThrottleMask,
  definedOnly,
  gpuIdentity,
  parseBool,
  parseInteger,
  parseEnum,
  parseMask,
  parseNumber,
  parsePstate,
  parseText,
  toBytes,
  toCelsius,
  toHertz,
  toRatio,
  toSeconds,
  toWatts,
} from './values.js';

const REASON_COLUMNS = THROTTLE_REASONS.filter((r) => r !== 'display_clock_setting');
const COUNTER_REASONS = [
  'sw_power_cap',
  'sync_boost',
  'sw_thermal_slowdown',
  'hw_thermal_slowdown',
  'hw_power_brake_slowdown',
] as const satisfies readonly ThrottleReason[];

const COMPUTE_MODES: ReadonlyMap<string, ComputeMode> = new Map([
  ['default', 'default'],
  ['exclusive thread', 'exclusive_thread'],
  ['prohibited', 'prohibited'],
  ['exclusive process', 'exclusive_process'],
]);

// The driver's wording of the actions is not pinned down by any capture of a failing GPU (all say
// "None"): the short and the long NVML spellings are both accepted.
const RECOVERY_ACTIONS: ReadonlyMap<string, RecoveryAction> = new Map([
  ['none', 'none'],
  ['reset', 'gpu_reset'],
  ['gpu reset', 'gpu_reset'],
  ['reboot', 'node_reboot'],
  ['node reboot', 'node_reboot'],
  ['drain p2p', 'drain_p2p'],
  ['drain and reset', 'drain_and_reset'],
]);

const FABRIC_STATES: ReadonlyMap<string, FabricState> = new Map([
  ['not supported', 'not_supported'],
  ['not started', 'not_started'],
  ['in progress', 'in_progress'],
  ['completed', 'completed'],
]);

/**
 * The `--query-gpu` fields gpulse asks for, new names before their legacy aliases. Every name
 * appears in at least one captured `--help-query-gpu`; `selectQueryFields` keeps those the
 * installed driver knows, because one unknown name makes nvidia-smi refuse the whole query.
 */
export const QUERY_GPU_FIELDS: readonly string[] = [
  'timestamp',
  'index',
  'uuid',
  'name',
  'pci.bus_id',
  'driver_version',
  'serial',
  'vbios_version',
  'compute_cap',
  'utilization.gpu',
  'utilization.memory',
  'utilization.encoder',
  'utilization.decoder',
  'memory.total',
  'memory.used',
  'memory.free',
  'memory.reserved',
  'temperature.gpu',
  'temperature.memory',
  'power.draw',
  'power.draw.average',
  'power.draw.instant',
  'power.limit',
  'enforced.power.limit',
  'power.default_limit',
  'clocks.current.graphics',
  'clocks.current.sm',
  'clocks.current.memory',
  'clocks.current.video',
  'clocks.max.graphics',
  'clocks.max.sm',
  'clocks.max.memory',
  'fan.speed',
  'pstate',
  'clocks_event_reasons.supported',
  'clocks_event_reasons.active',
  ...REASON_COLUMNS.map((r) => `clocks_event_reasons.${r}`),
  'clocks_throttle_reasons.supported',
  'clocks_throttle_reasons.active',
  ...REASON_COLUMNS.map((r) => `clocks_throttle_reasons.${r}`),
  ...COUNTER_REASONS.map((r) => `clocks_event_reasons_counters.${r}`),
  'pcie.link.gen.gpucurrent',
  'pcie.link.gen.current',
  'pcie.link.gen.max',
  'pcie.link.width.current',
  'pcie.link.width.max',
  'persistence_mode',
  'mig.mode.current',
  'ecc.mode.current',
  'ecc.errors.corrected.volatile.total',
  'ecc.errors.corrected.aggregate.total',
  'ecc.errors.uncorrected.volatile.total',
  'ecc.errors.uncorrected.aggregate.total',
  'retired_pages.single_bit_ecc.count',
  'retired_pages.double_bit.count',
  'retired_pages.pending',
  'remapped_rows.correctable',
  'remapped_rows.uncorrectable',
  'remapped_rows.pending',
  'remapped_rows.failure',
  'compute_mode',
  'gpu_recovery_action',
  'fabric.state',
];

// Alternative spellings the driver accepts (and echoes back in the CSV header) → the name used
// here. Taken from the `"a" or "b"` lines of --help-query-gpu across driver branches.
const GPU_FIELD_ALIASES: ReadonlyMap<string, string> = new Map([
  ...['supported', 'active', ...REASON_COLUMNS].map(
    (r) => [`clocks_throttle_reasons.${r}`, `clocks_event_reasons.${r}`] as const,
  ),
  ['pcie.link.gen.current', 'pcie.link.gen.gpucurrent'],
  ['gpu_name', 'name'],
  ['gpu_serial', 'serial'],
  ['gpu_uuid', 'uuid'],
  ['gpu_bus_id', 'pci.bus_id'],
  ['gpu.power.draw.average', 'power.draw.average'],
  ['gpu.power.draw.instant', 'power.draw.instant'],
  ['gpu.power.requested_limit', 'power.limit'],
  ['gpu.power.current_limit', 'enforced.power.limit'],
  ['clocks.gr', 'clocks.current.graphics'],
  ['clocks.sm', 'clocks.current.sm'],
  ['clocks.mem', 'clocks.current.memory'],
  ['clocks.video', 'clocks.current.video'],
  ['clocks.max.gr', 'clocks.max.graphics'],
  ['clocks.max.mem', 'clocks.max.memory'],
  ['retired_pages.sbe', 'retired_pages.single_bit_ecc.count'],
  ['retired_pages.dbe', 'retired_pages.double_bit.count'],
  ['remapped_rows.sbe', 'remapped_rows.correctable'],
  ['remapped_rows.dbe', 'remapped_rows.uncorrectable'],
]);

/** The `--query-compute-apps` fields gpulse asks for. */
export const COMPUTE_APPS_FIELDS: readonly string[] = [
  'timestamp',
  'gpu_uuid',
  'pid',
  'process_name',
  'used_gpu_memory',
  'gpu_bus_id',
  'gpu_name',
];

// Here "name" is the process name, unlike in --query-gpu.
const COMPUTE_APPS_ALIASES: ReadonlyMap<string, string> = new Map([
  ['name', 'process_name'],
  ['used_memory', 'used_gpu_memory'],
]);

/** Why a CSV line produced no reading. */
export type RejectReason =
  /** The number of cells differs from the number of fields (truncated or garbage line). */
  | 'column_count'
  /** Neither a header line nor a field list says what the columns are. */
  | 'no_columns'
  /** The cells fit, but the row lacks what identifies it (GPU uuid/bus id and index, or pid). */
  | 'invalid_row';

/** A line that produced no reading: 1-based line number, its text and why. */
export interface RejectedRow {
  readonly line: number;
  readonly text: string;
  readonly reason: RejectReason;
}

/** Options of the text-level CSV parsers. */
export interface CsvParseOptions {
  /** Called once per rejected line; rejected lines are otherwise skipped silently. */
  readonly onReject?: (rejected: RejectedRow) => void;
  /** Called for each GPU nvidia-smi could not open (its line stands in place of its rows). */
  readonly onUnreachable?: (handle: PlacedHandleError) => void;
}

/** Every field name (aliases included) that `nvidia-smi --help-query-gpu` output lists. */
export function parseHelpQueryGpu(text: string): string[] {
  const names = new Set<string>();
  for (const line of text.split(/\r?\n/)) {
    // Whole-line lists only: prose such as `"Default" means ...` quotes values, not fields.
    const entry = line.trim();
    if (!/^"[^"]+"(?:\s+or\s+"[^"]+")*$/.test(entry)) continue;
    for (const name of entry.slice(1, -1).split(/"\s+or\s+"/)) names.add(name);
  }
  return [...names];
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\?]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

/**
 * The QUERY_GPU_FIELDS the driver knows, one name per concept (the new name when the driver
 * knows both), minus those matching an `exclude` glob (`*` = any characters) by either name.
 */
export function selectQueryFields(known: readonly string[], exclude: readonly string[]): string[] {
  const knownSet = new Set(known);
  const patterns = exclude.map(globToRegExp);
  const excluded = (name: string): boolean => patterns.some((p) => p.test(name));
  const selected: string[] = [];
  for (const field of QUERY_GPU_FIELDS) {
    const concept = canonicalField(field, GPU_FIELD_ALIASES);
    if (!knownSet.has(field) || (field !== concept && knownSet.has(concept))) continue;
    if (excluded(field) || excluded(concept)) continue;
    selected.push(field);
  }
  return selected;
}

// Header cells carry the unit under the default format: "memory.used [MiB]".
function canonicalField(headerCell: string, aliases: ReadonlyMap<string, string>): string {
  const name = headerCell.replace(/\s*\[[^\]]*\]$/, '').trim();
  return aliases.get(name) ?? name;
}

/** Cells of one nvidia-smi CSV line (", "-separated, unquoted), for the streaming `*Row` parsers. */
export function splitCsvLine(line: string): string[] {
  const text = line.replace(/\r?\n?$/, '');
  // A trailing empty cell is ", " at the end; something upstream may have trimmed the space.
  return (text.endsWith(',') ? `${text} ` : text).split(', ');
}

/** Canonical field → raw cell; the first cell that has a value wins when aliases repeat a field. */
interface Row {
  get(field: string): string | undefined;
}

/** Canonical field → the columns that carry it, in order. */
type ColumnPlan = ReadonlyMap<string, readonly number[]>;

// A stream parses every line against the same field list: work out its columns once per list
// (header-cell units stripped, aliases resolved) instead of once per cell of every line.
const columnPlans = new WeakMap<
  ReadonlyMap<string, string>,
  WeakMap<readonly string[], ColumnPlan>
>();

function columnPlan(fields: readonly string[], aliases: ReadonlyMap<string, string>): ColumnPlan {
  let byFields = columnPlans.get(aliases);
  if (!byFields) columnPlans.set(aliases, (byFields = new WeakMap()));
  let plan = byFields.get(fields);
  if (!plan) {
    const columns = new Map<string, number[]>();
    fields.forEach((field, i) => {
      const name = canonicalField(field, aliases);
      const at = columns.get(name);
      if (at) at.push(i);
      else columns.set(name, [i]);
    });
    plan = columns;
    byFields.set(fields, plan);
  }
  return plan;
}

function toRow(cells: readonly string[], plan: ColumnPlan): Row {
  return {
    get(field) {
      const columns = plan.get(field);
      if (!columns) return undefined;
      let cell: string | undefined;
      // Indexed: this runs for every field of every line, often before V8 optimizes it, and an
      // unoptimized for-of allocates an iterator each time.
      for (let k = 0; k < columns.length; k++) {
        cell = cells[columns[k] ?? -1];
        if (parseText(cell) !== undefined) return cell;
      }
      return cell;
    },
  };
}

function throttleFlags(row: Row): Partial<Record<ThrottleReason, boolean>> {
  const active = parseMask(row.get('clocks_event_reasons.active'));
  const supported = parseMask(row.get('clocks_event_reasons.supported'));
  const fromMask = active === undefined ? {} : decodeThrottleMask(active, supported);
  const flags: Partial<Record<ThrottleReason, boolean>> = {};
  for (const reason of THROTTLE_REASONS) {
    const flag = parseBool(row.get(`clocks_event_reasons.${reason}`)) ?? fromMask[reason];
    if (flag !== undefined) flags[reason] = flag;
  }
  return flags;
}

function throttleCounters(row: Row): Partial<Record<ThrottleReason, number>> {
  const seconds: Partial<Record<ThrottleReason, number>> = {};
  for (const reason of COUNTER_REASONS) {
    const value = toSeconds(row.get(`clocks_event_reasons_counters.${reason}`));
    if (value !== undefined) seconds[reason] = value;
  }
  return seconds;
}

function eccCounters(row: Row): GpuReading['ecc'] {
  const ecc = definedOnly({
    enabled: parseBool(row.get('ecc.mode.current')),
    correctedVolatile: parseInteger(row.get('ecc.errors.corrected.volatile.total')),
    uncorrectedVolatile: parseInteger(row.get('ecc.errors.uncorrected.volatile.total')),
    correctedAggregate: parseInteger(row.get('ecc.errors.corrected.aggregate.total')),
    uncorrectedAggregate: parseInteger(row.get('ecc.errors.uncorrected.aggregate.total')),
  });
  return Object.keys(ecc).length > 0 ? ecc : undefined;
}

/**
 * One `--query-gpu` line (already split) as a reading, `fields` naming the columns in order.
 * `position` (the row's place in the output) stands in for a missing `index`. Undefined when the
 * cell count differs from the field count or the row cannot be identified.
 */
export function parseQueryGpuRow(
  cells: readonly string[],
  fields: readonly string[],
  position?: number,
): GpuReading | undefined {
  if (cells.length !== fields.length) return undefined;
  const row = toRow(cells, columnPlan(fields, GPU_FIELD_ALIASES));
  const uuid = gpuIdentity(row.get('uuid'), row.get('pci.bus_id'));
  const index = parseInteger(row.get('index')) ?? position;
  if (uuid === undefined || index === undefined) return undefined;
  const get = (field: string): string | undefined => row.get(field);
  return definedOnly<GpuReading>({
    index,
    uuid,
    name: parseText(get('name')),
    pciBusId: parseText(get('pci.bus_id')),
    driverVersion: parseText(get('driver_version')),
    serial: parseText(get('serial')),
    vbiosVersion: parseText(get('vbios_version')),
    computeCapability: parseText(get('compute_cap')),
    utilizationRatio: toRatio(get('utilization.gpu')),
    memoryUtilizationRatio: toRatio(get('utilization.memory')),
    encoderUtilizationRatio: toRatio(get('utilization.encoder')),
    decoderUtilizationRatio: toRatio(get('utilization.decoder')),
    memoryTotalBytes: toBytes(get('memory.total')),
    memoryUsedBytes: toBytes(get('memory.used')),
    memoryFreeBytes: toBytes(get('memory.free')),
    memoryReservedBytes: toBytes(get('memory.reserved')),
    temperatureCelsius: toCelsius(get('temperature.gpu')),
    memoryTemperatureCelsius: toCelsius(get('temperature.memory')),
    // power.draw is the averaged reading on drivers that print all three (RTX 4080 fixture:
    // draw 26.20 = average 26.20, instant 28.77), so the average is the like-for-like fallback.
    powerDrawWatts:
      toWatts(get('power.draw')) ??
      toWatts(get('power.draw.average')) ??
      toWatts(get('power.draw.instant')),
    powerLimitWatts: toWatts(get('power.limit')),
    enforcedPowerLimitWatts: toWatts(get('enforced.power.limit')),
    powerDefaultLimitWatts: toWatts(get('power.default_limit')),
    clocksHz: definedOnly({
      graphics: toHertz(get('clocks.current.graphics')),
      sm: toHertz(get('clocks.current.sm')),
      memory: toHertz(get('clocks.current.memory')),
      video: toHertz(get('clocks.current.video')),
    }),
    maxClocksHz: definedOnly({
      graphics: toHertz(get('clocks.max.graphics')),
      sm: toHertz(get('clocks.max.sm')),
      memory: toHertz(get('clocks.max.memory')),
    }),
    fanSpeedRatio: toRatio(get('fan.speed')),
    pstate: parsePstate(get('pstate')),
    throttle: throttleFlags(row),
    throttleSeconds: throttleCounters(row),
    pcieLinkGen: parseInteger(get('pcie.link.gen.gpucurrent')),
    pcieLinkGenMax: parseInteger(get('pcie.link.gen.max')),
    pcieLinkWidth: parseNumber(get('pcie.link.width.current')),
    pcieLinkWidthMax: parseNumber(get('pcie.link.width.max')),
    persistenceMode: parseBool(get('persistence_mode')),
    migEnabled: parseBool(get('mig.mode.current')),
    ecc: eccCounters(row),
    retiredPagesSingleBit: parseInteger(get('retired_pages.single_bit_ecc.count')),
    retiredPagesDoubleBit: parseInteger(get('retired_pages.double_bit.count')),
    retiredPagesPending: parseBool(get('retired_pages.pending')),
    remappedRowsCorrectable: parseInteger(get('remapped_rows.correctable')),
    remappedRowsUncorrectable: parseInteger(get('remapped_rows.uncorrectable')),
    remappedRowsPending: parseBool(get('remapped_rows.pending')),
    remappedRowsFailure: parseBool(get('remapped_rows.failure')),
    computeMode: parseEnum(get('compute_mode'), COMPUTE_MODES),
    recoveryAction: parseEnum(get('gpu_recovery_action'), RECOVERY_ACTIONS),
    fabricState: parseEnum(get('fabric.state'), FABRIC_STATES),
  });
}

/**
 * One `--query-compute-apps` line (already split) as a process. A process name holding ", "
 * splits into extra cells; they are joined back because it is the only free-text column.
 * Undefined when the cells still do not fit, or pid or GPU identity is missing.
 */
export function parseComputeAppsRow(
  cells: readonly string[],
  fields: readonly string[],
): GpuProcess | undefined {
  const plan = columnPlan(fields, COMPUTE_APPS_ALIASES);
  const nameAt = plan.get('process_name')?.[0] ?? -1;
  let fitted = cells;
  if (cells.length > fields.length && nameAt >= 0) {
    const extra = cells.length - fields.length;
    fitted = [
      ...cells.slice(0, nameAt),
      cells.slice(nameAt, nameAt + extra + 1).join(', '),
      ...cells.slice(nameAt + extra + 1),
    ];
  }
  if (fitted.length !== fields.length) return undefined;
  const row = toRow(fitted, plan);
  const pid = parseInteger(row.get('pid'));
  const gpuUuid = gpuIdentity(row.get('gpu_uuid'), row.get('gpu_bus_id'));
  if (pid === undefined || gpuUuid === undefined) return undefined;
  return definedOnly<GpuProcess>({
    pid,
    gpuUuid,
    // "[Insufficient Permissions]" hides the name but not the memory; keep the process.
    processName: parseText(row.get('process_name')) ?? '',
    // Windows WDDM: "[N/A]", the OS owns the memory.
    usedMemoryBytes: toBytes(row.get('used_gpu_memory')),
  });
}

const HEADER_CELL = /^[A-Za-z_][\w.]*(?: \[[^\]]*\])?$/;

function isHeader(cells: readonly string[], known: ReadonlySet<string>): boolean {
  return (
    cells.every((c) => HEADER_CELL.test(c)) && cells.some((c) => known.has(c.replace(/ \[.*$/, '')))
  );
}

function parseLines<T>(
  text: string,
  fields: readonly string[] | undefined,
  known: ReadonlySet<string>,
  parseRow: (
    cells: readonly string[],
    columns: readonly string[],
    position: number,
  ) => T | undefined,
  options: CsvParseOptions,
): T[] {
  const results: T[] = [];
  let columns = fields;
  let position = 0;
  text.split('\n').forEach((rawLine, i) => {
    const line = rawLine.replace(/\r$/, '');
    if (line.trim() === '' || /^no running processes found$/i.test(line.trim())) return;
    const handle = parseDeviceHandleError(line);
    if (handle) {
      // A lost GPU takes its row's place: the rows after it keep their positions.
      options.onUnreachable?.({ ...handle, position: position++ });
      return;
    }
    const cells = splitCsvLine(line);
    // A header may come first (--format=csv) or again after a restart of a streaming run.
    if (isHeader(cells, known)) {
      columns = cells;
      position = 0;
      return;
    }
    const reject = (reason: RejectReason): void =>
      options.onReject?.({ line: i + 1, text: line, reason });
    if (columns === undefined) return reject('no_columns');
    const parsed = parseRow(cells, columns, position++);
    if (parsed !== undefined) results.push(parsed);
    else reject(cells.length === columns.length ? 'invalid_row' : 'column_count');
  });
  return results;
}

const KNOWN_GPU_FIELDS: ReadonlySet<string> = new Set([
  ...QUERY_GPU_FIELDS,
  ...GPU_FIELD_ALIASES.keys(),
]);

/**
 * Readings from `--query-gpu` output in any `--format=csv` variant: a header line (names may
 * carry units) sets the columns; without one (`noheader`) `fields` must give them. Values may
 * carry units or not. Lines that do not fit are skipped and reported through `onReject`.
 */
export function parseQueryGpuCsv(
  text: string,
  fields?: readonly string[],
  options: CsvParseOptions = {},
): GpuReading[] {
  return parseLines(text, fields, KNOWN_GPU_FIELDS, parseQueryGpuRow, options);
}

const KNOWN_APPS_FIELDS: ReadonlySet<string> = new Set([
  ...COMPUTE_APPS_FIELDS,
  'gpu_serial',
  ...COMPUTE_APPS_ALIASES.keys(),
]);

/** Processes from `--query-compute-apps` output (header or `fields`); "No running processes found" → []. */
export function parseComputeAppsCsv(
  text: string,
  fields?: readonly string[],
  options: CsvParseOptions = {},
): GpuProcess[] {
  return parseLines(text, fields, KNOWN_APPS_FIELDS, parseComputeAppsRow, options);
}
