/**
 * Cell normalisation shared by the CSV and XML parsers: one place decides what "absent" means,
 * how units are stripped and how values become base units (bytes, hertz, watts, seconds, ratios).
 */
import {
  THROTTLE_REASONS,
  THROTTLE_REASON_BITS,
  type ThrottleReason,
} from '../../agent/core/facts.js';

/** Why nvidia-smi printed no value, as a short stable label. */
export type MissingReason =
  | 'not_available'
  | 'not_supported'
  | 'deprecated'
  | 'insufficient_permissions'
  | 'unknown_error'
  | 'gpu_requires_reset'
  | 'error';

// Keys are lower case without brackets: CSV brackets these words ("[N/A]") while XML and older
// drivers print them bare ("N/A"), and capitalisation has drifted between driver branches.
// Maps, not object literals, throughout: a cell reading "constructor" must not find a method.
const MISSING: ReadonlyMap<string, MissingReason> = new Map([
  ['', 'not_available'],
  ['-', 'not_available'],
  ['n/a', 'not_available'],
  ['not found', 'not_available'],
  ['not supported', 'not_supported'],
  ['function not found', 'not_supported'],
  ['requested functionality has been deprecated', 'deprecated'],
  ['insufficient permissions', 'insufficient_permissions'],
  ['unknown error', 'unknown_error'],
  ['gpu requires reset', 'gpu_requires_reset'],
  ['gpu is lost', 'error'],
  ['err!', 'error'],
]);

/** Why `raw` carries no value (`[N/A]`, `Not Supported`, `ERR!`...), or undefined for a real value. */
export function missingReason(raw: string | undefined): MissingReason | undefined {
  if (raw === undefined) return 'not_available';
  let text = raw.trim();
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1).trim();
  return MISSING.get(text.toLowerCase());
}

/** True when `raw` is one of nvidia-smi's "no value" spellings (or undefined). */
export function isMissing(raw: string | undefined): boolean {
  return missingReason(raw) !== undefined;
}

/** The trimmed text of a cell, or undefined when it is one of the "no value" spellings. */
export function parseText(raw: string | undefined): string | undefined {
  if (raw === undefined || isMissing(raw)) return undefined;
  return raw.trim();
}

/** A number with the unit nvidia-smi printed after it ("2566 MiB", "16x"), if any. */
export interface Quantity {
  readonly value: number;
  readonly unit?: string;
}

// No exponents, no "Infinity": nvidia-smi never prints them, so seeing one means garbage.
const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([A-Za-z%/µ]+)?$/;
const HEX = /^0x([0-9a-f]+)$/i;

/**
 * The GPU's UUID, or when the driver reports none (field not queried, "[GPU requires reset]")
 * its PCI bus id prefixed `pci:`, so it stays unique on the host yet never passes for a UUID.
 */
export function gpuIdentity(
  uuid: string | undefined,
  pciBusId: string | undefined,
): string | undefined {
  const text = parseText(uuid);
  if (text !== undefined) return text;
  const bus = parseText(pciBusId);
  return bus === undefined ? undefined : `pci:${bus}`;
}

/** Number and unit of a cell ("78.28 W" → 78.28 W, "0x1F" → 31); undefined when absent or malformed. */
export function parseQuantity(raw: string | undefined): Quantity | undefined {
  const text = parseText(raw);
  if (text === undefined) return undefined;
  const hex = HEX.exec(text);
  if (hex) {
    const mask = BigInt(text);
    return mask <= BigInt(Number.MAX_SAFE_INTEGER) ? { value: Number(mask) } : undefined;
  }
  // "0xZZ" would otherwise read as 0 with unit "xZZ".
  if (/^0x/i.test(text)) return undefined;
  const match = QUANTITY.exec(text);
  if (!match) return undefined;
  const value = Number(match[1]);
  return match[2] === undefined ? { value } : { value, unit: match[2] };
}

/** The number in a cell, any trailing unit dropped; hex accepted while it fits a double exactly. */
export function parseNumber(raw: string | undefined): number | undefined {
  return parseQuantity(raw)?.value;
}

/** A non-negative integer without unit (index, pid, counts); undefined for anything else. */
export function parseInteger(raw: string | undefined): number | undefined {
  const text = parseText(raw);
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** A 64-bit bit mask ("0x0000000000000004" or decimal) as a bigint, so no bit is lost. */
export function parseMask(raw: string | undefined): bigint | undefined {
  const text = parseText(raw);
  if (text === undefined || !(HEX.test(text) || /^\d+$/.test(text))) return undefined;
  return BigInt(text);
}

const BOOLEANS: ReadonlyMap<string, boolean> = new Map([
  ['enabled', true],
  ['disabled', false],
  ['active', true],
  ['not active', false],
  ['yes', true],
  ['no', false],
  ['on', true],
  ['off', false],
  ['true', true],
  ['false', false],
]);

/** Enabled/Disabled, Active/Not Active, Yes/No, On/Off (any case) → boolean; else undefined. */
export function parseBool(raw: string | undefined): boolean | undefined {
  const text = parseText(raw);
  return text === undefined ? undefined : BOOLEANS.get(text.toLowerCase());
}

/**
 * A state nvidia-smi prints as words (any case, spaces or underscores) → its name in `table`;
 * undefined for a bracketed "no value" cell or a word the table does not know. Looked up before
 * the "no value" spellings because `fabric.state` has a real state spelled "Not Supported".
 */
export function parseEnum<T extends string>(
  raw: string | undefined,
  table: ReadonlyMap<string, T>,
): T | undefined {
  const text = raw?.trim();
  if (text === undefined || text.startsWith('[')) return undefined;
  return table.get(text.toLowerCase().replace(/[\s_]+/g, ' '));
}

/** Performance state "P0" … "P15" → 0 … 15; "P32"/"Unknown" → undefined. */
export function parsePstate(raw: string | undefined): number | undefined {
  const match = /^P(\d{1,2})$/i.exec(parseText(raw) ?? '');
  if (!match) return undefined;
  const state = Number(match[1]);
  return state <= 15 ? state : undefined;
}

/**
 * Scales a quantity to a base unit. A bare number is taken in `defaultUnit`, the unit nvidia-smi
 * uses for that field under `nounits`; an unexpected unit yields undefined rather than a number
 * off by a factor of a thousand.
 */
function scaled(
  raw: string | undefined,
  factors: ReadonlyMap<string, number>,
  defaultUnit: string | undefined,
  divide = false,
): number | undefined {
  const quantity = parseQuantity(raw);
  if (quantity === undefined) return undefined;
  const unit = quantity.unit ?? defaultUnit;
  const factor = unit === undefined ? undefined : factors.get(unit);
  if (factor === undefined) return undefined;
  return divide ? quantity.value / factor : quantity.value * factor;
}

const units = (factors: Record<string, number>): ReadonlyMap<string, number> =>
  new Map(Object.entries(factors));
const BYTES = units({ B: 1, KiB: 1024, MiB: 1048576, GiB: 1073741824, TiB: 1099511627776 });
const RATIO = units({ '%': 100 });
const HERTZ = units({ Hz: 1, kHz: 1e3, MHz: 1e6, GHz: 1e9 });
// Divisors, not factors: 212553937 / 1e6 is exact to the last digit, 212553937 * 1e-6 is not.
const SECONDS = units({ ns: 1e9, us: 1e6, µs: 1e6, ms: 1e3, s: 1 });
const WATTS = units({ mW: 1e-3, W: 1, kW: 1e3 });
const CELSIUS = units({ C: 1 });
const JOULES = units({ mJ: 1e-3, J: 1, kJ: 1e3 });

/** Memory size in bytes; bare numbers are MiB, as nvidia-smi reports all memory. */
export function toBytes(raw: string | undefined): number | undefined {
  return scaled(raw, BYTES, 'MiB');
}

/** Percentage ("38 %" or bare 38) as a 0–1 ratio. */
export function toRatio(raw: string | undefined): number | undefined {
  return scaled(raw, RATIO, '%', true);
}

/** Clock frequency in hertz; bare numbers are MHz. */
export function toHertz(raw: string | undefined): number | undefined {
  return scaled(raw, HERTZ, 'MHz');
}

/** Duration in seconds; bare numbers are microseconds (clocks_event_reasons_counters.*). */
export function toSeconds(raw: string | undefined): number | undefined {
  return scaled(raw, SECONDS, 'us', true);
}

/** Power in watts; bare numbers are W. */
export function toWatts(raw: string | undefined): number | undefined {
  return scaled(raw, WATTS, 'W');
}

/** Temperature in degrees Celsius; bare numbers are C. */
export function toCelsius(raw: string | undefined): number | undefined {
  return scaled(raw, CELSIUS, 'C');
}

/** Energy in joules; a unit is required because drivers have printed both J and mJ. */
export function toJoules(raw: string | undefined): number | undefined {
  return scaled(raw, JOULES, undefined);
}

/**
 * Decodes NVML's clocks event reasons mask into one flag per reason. Reasons outside `supported`
 * (when known) stay absent: a clear bit there means "cannot tell", not "not throttling".
 */
export function decodeThrottleMask(
  active: bigint,
  supported?: bigint,
): Partial<Record<ThrottleReason, boolean>> {
  const flags: Partial<Record<ThrottleReason, boolean>> = {};
  for (const reason of THROTTLE_REASONS) {
    const bit = BigInt(THROTTLE_REASON_BITS[reason]);
    if (supported !== undefined && (supported & bit) === 0n) continue;
    flags[reason] = (active & bit) !== 0n;
  }
  return flags;
}

/** A copy of `record` without the keys whose value is undefined, so readings list only what was reported. */
export function definedOnly<T extends object>(record: T): T {
  // Runs on every parsed row: one object out, without the entry arrays of Object.entries.
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(record)) {
    const value = (record as Record<string, unknown>)[key];
    if (value !== undefined) out[key] = value;
  }
  return out as T;
}
