/**
 * Parser of one `tegrastats` output line, every format seen from L4T 28 (JetPack 3) to JetPack 6.
 *
 * Written by hand: tegrastats has no machine-readable mode and no parser library exists for it
 * (jetson-stats and the exporters each carry their own regular expressions). The line is a
 * sequence of fields separated by spaces, some of which contain spaces themselves
 * (`RAM 1501/3956MB (lfb 332x4MB)`), so it is scanned field by field with anchored patterns.
 * Units: tegrastats prints MB/kB computed from /proc/meminfo kibibytes (so MiB/KiB), clocks in
 * MHz, power in mW (a bare number on L4T 28/32), temperatures in °C.
 */

/** One CPU core: `N%@MHz`, `N%`, or `off` (core offline, e.g. the Denver cores of a TX2). */
export interface CpuCore {
  readonly core: number;
  readonly online: boolean;
  readonly utilizationRatio?: number;
  readonly frequencyHz?: number;
}

/** An engine with a load and/or a clock (`GR3D_FREQ 28%@76`, `EMC_FREQ 4%@1600`, `NVDEC 716`). */
export interface EngineReading {
  /** Name without the `_FREQ` suffix: `GR3D`, `EMC`, `VIC`, `NVDEC`, `APE` ... */
  readonly name: string;
  /** False when printed as `off` (clock gated). */
  readonly active: boolean;
  readonly utilizationRatio?: number;
  /** The clock, or the highest of the per-GPC clocks of `N%@[f,f]`. */
  readonly frequencyHz?: number;
  /** Per-GPC clocks when printed as an array (`GR3D_FREQ 0%@[0,0]`, JetPack 5+). */
  readonly frequenciesHz?: readonly number[];
}

/** A power rail (INA3221 channel): instantaneous and average power. */
export interface RailReading {
  readonly rail: string;
  readonly currentWatts: number;
  readonly averageWatts: number;
}

/** A thermal zone: `GPU@41.5C`; `celsius` is absent when the sensor reads -256 (offline). */
export interface TemperatureReading {
  readonly sensor: string;
  readonly celsius?: number;
}

/** A memory pool: `RAM used/totalMB (lfb NxSizeMB)`, `SWAP used/totalMB (cached NMB)`, `IRAM ...kB`. */
export interface MemoryPool {
  readonly usedBytes: number;
  readonly totalBytes: number;
  /** Size of the largest free block (`lfb`). */
  readonly largestFreeBlockBytes?: number;
  /** How many free blocks of that size there are (`lfb 332x4MB` → 332). */
  readonly largestFreeBlocks?: number;
  /** Swap cached in RAM (`SWAP ... (cached NMB)`). */
  readonly cachedBytes?: number;
}

/** Everything one tegrastats line says; absent fields were not printed. */
export interface TegrastatsReading {
  /** The `MM-DD-YYYY HH:MM:SS` prefix of JetPack 5+ (local time), as printed. */
  readonly timestamp?: string;
  readonly ram?: MemoryPool;
  readonly swap?: MemoryPool;
  readonly iram?: MemoryPool;
  readonly cpus: readonly CpuCore[];
  /** `GR3D_FREQ`: the GPU's load and clock. */
  readonly gpu?: EngineReading;
  /** `EMC_FREQ`: external memory controller load (share of memory bandwidth) and clock. */
  readonly emc?: EngineReading;
  /** Other engines (VIC, NVDEC, NVENC, NVJPG, APE, NVDLA, OFA, GR3D2 ...). */
  readonly engines: readonly EngineReading[];
  /** `MTS fg N% bg N%` (TX2 on L4T 28): foreground/background load of the Denver cores' MTS. */
  readonly mts?: { readonly foregroundRatio: number; readonly backgroundRatio: number };
  readonly temperatures: readonly TemperatureReading[];
  readonly rails: readonly RailReading[];
  /** Fields this parser does not know, as printed (newer releases add fields). */
  readonly unknown: readonly string[];
}

const MIB = 1024 * 1024;
const KIB = 1024;
const MHZ = 1e6;

// Rails named NC are unconnected INA3221 channels: always 0 and printed more than once.
const UNCONNECTED_RAIL = 'NC';
// -256 °C is what an offline thermal zone reads (the GPU sensor while the GPU is rail-gated).
const OFFLINE_BELOW_C = -200;

/** A field pattern: anchored at the scan position, ending at a space or the end of the line. */
interface FieldRule {
  readonly pattern: RegExp;
  readonly apply: (m: RegExpExecArray, out: Builder) => void;
}

interface Builder {
  timestamp?: string;
  ram?: MemoryPool;
  swap?: MemoryPool;
  iram?: MemoryPool;
  cpus: CpuCore[];
  gpu?: EngineReading;
  emc?: EngineReading;
  engines: EngineReading[];
  mts?: { foregroundRatio: number; backgroundRatio: number };
  temperatures: TemperatureReading[];
  rails: RailReading[];
  unknown: string[];
  known: number;
}

function num(text: string | undefined): number {
  return Number(text);
}

function percent(text: string | undefined): number | undefined {
  return text === undefined ? undefined : num(text) / 100;
}

function definedOnly<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}

function parseCpuList(inner: string): CpuCore[] {
  const cores: CpuCore[] = [];
  inner.split(',').forEach((raw, core) => {
    const text = raw.trim();
    if (text === 'off') {
      cores.push({ core, online: false });
      return;
    }
    const m = /^(\d+(?:\.\d+)?)%(?:@(\d+))?$/.exec(text);
    // A malformed entry still occupies its position so the core numbers stay right.
    if (!m) return;
    cores.push(
      definedOnly({
        core,
        online: true,
        utilizationRatio: percent(m[1]),
        frequencyHz: m[2] === undefined ? undefined : num(m[2]) * MHZ,
      }),
    );
  });
  return cores;
}

function engine(name: string, load: string | undefined, clock: string | undefined): EngineReading {
  const base = name.replace(/_FREQ$/i, '');
  let frequencyHz: number | undefined;
  let frequenciesHz: number[] | undefined;
  if (clock !== undefined && clock.startsWith('[')) {
    frequenciesHz = clock
      .slice(1, -1)
      .split(',')
      .filter((f) => f.trim() !== '')
      .map((f) => num(f) * MHZ);
    frequencyHz = frequenciesHz.length > 0 ? Math.max(...frequenciesHz) : undefined;
  } else if (clock !== undefined) {
    frequencyHz = num(clock) * MHZ;
  }
  return definedOnly({
    name: base,
    active: true,
    utilizationRatio: percent(load),
    frequencyHz,
    frequenciesHz,
  });
}

function addEngine(out: Builder, reading: EngineReading): void {
  const name = reading.name.toUpperCase();
  if (name === 'GR3D') out.gpu ??= reading;
  else if (name === 'EMC') out.emc ??= reading;
  else if (!out.engines.some((e) => e.name === reading.name)) out.engines.push(reading);
}

const END = '(?=\\s|$)';
const NAME = '([A-Za-z][A-Za-z0-9_]*)';

function rule(source: string, apply: FieldRule['apply']): FieldRule {
  return { pattern: new RegExp(`${source}${END}`, 'y'), apply };
}

// Order matters: the specific fields first, then the generic engine/temperature/rail shapes.
const RULES: readonly FieldRule[] = [
  rule('(\\d{2}-\\d{2}-\\d{4} \\d{2}:\\d{2}:\\d{2})', (m, out) => {
    out.timestamp = m[1];
  }),
  rule('RAM (\\d+)/(\\d+)MB(?: ?\\(lfb (?:(\\d+)x)?(\\d+)MB\\))?', (m, out) => {
    out.ram = definedOnly({
      usedBytes: num(m[1]) * MIB,
      totalBytes: num(m[2]) * MIB,
      largestFreeBlocks: m[3] === undefined ? undefined : num(m[3]),
      largestFreeBlockBytes: m[4] === undefined ? undefined : num(m[4]) * MIB,
    });
  }),
  rule('SWAP (\\d+)/(\\d+)MB(?: ?\\(cached (\\d+)MB\\))?', (m, out) => {
    out.swap = definedOnly({
      usedBytes: num(m[1]) * MIB,
      totalBytes: num(m[2]) * MIB,
      cachedBytes: m[3] === undefined ? undefined : num(m[3]) * MIB,
    });
  }),
  rule('IRAM (\\d+)/(\\d+)kB(?: ?\\(lfb (\\d+)kB\\))?', (m, out) => {
    out.iram = definedOnly({
      usedBytes: num(m[1]) * KIB,
      totalBytes: num(m[2]) * KIB,
      largestFreeBlockBytes: m[3] === undefined ? undefined : num(m[3]) * KIB,
    });
  }),
  rule('CPU \\[([^\\]]*)\\]', (m, out) => {
    out.cpus = parseCpuList(m[1] ?? '');
  }),
  rule('MTS fg (\\d+)% bg (\\d+)%', (m, out) => {
    out.mts = { foregroundRatio: num(m[1]) / 100, backgroundRatio: num(m[2]) / 100 };
  }),
  // `GR3D_FREQ 28%@76`, `GR3D_FREQ 0%@[0,0]`, `GR3D_FREQ 0%`, `EMC_FREQ 4%@1600`, `VIC_FREQ 0%@140`.
  rule(`${NAME} (\\d+(?:\\.\\d+)?)%(?:@(\\d+|\\[[\\d,]*\\]))?`, (m, out) => {
    addEngine(out, engine(m[1] ?? '', m[2], m[3]));
  }),
  // `NAME@41.5C`, `CV0@-256C`, `tj@44.343C`.
  rule(`${NAME}@(-?\\d+(?:\\.\\d+)?)C`, (m, out) => {
    const sensor = m[1] ?? '';
    if (out.temperatures.some((t) => t.sensor === sensor)) return;
    const celsius = num(m[2]);
    out.temperatures.push(celsius <= OFFLINE_BELOW_C ? { sensor } : { sensor, celsius });
  }),
  // `POM_5V_IN 4122/3107` (L4T 28/32, mW without unit) or `VDD_GPU_SOC 2340mW/2340mW`.
  rule(`${NAME} (\\d+)(?:mW)?/(\\d+)(?:mW)?`, (m, out) => {
    const rail = m[1] ?? '';
    if (rail === UNCONNECTED_RAIL || out.rails.some((r) => r.rail === rail)) return;
    out.rails.push({ rail, currentWatts: num(m[2]) / 1000, averageWatts: num(m[3]) / 1000 });
  }),
  // Clock only: `NVDEC 716`, `APE 25`, `VIC_FREQ 729`.
  rule(`${NAME} (\\d+)`, (m, out) => {
    addEngine(out, engine(m[1] ?? '', undefined, m[2]));
  }),
  // Clock gated: `NVENC off`.
  rule(`${NAME} off`, (m, out) => {
    addEngine(out, { name: (m[1] ?? '').replace(/_FREQ$/i, ''), active: false });
  }),
];

/**
 * Parses one line of tegrastats output. Unknown fields are kept in `unknown` and the rest still
 * parses; undefined when no field at all is recognised (garbage, an error message, an empty line).
 */
export function parseTegrastatsLine(line: string): TegrastatsReading | undefined {
  const text = line.replace(/\r$/, '');
  const out: Builder = {
    cpus: [],
    engines: [],
    temperatures: [],
    rails: [],
    unknown: [],
    known: 0,
  };
  let pos = 0;
  while (pos < text.length) {
    if (text[pos] === ' ' || text[pos] === '\t') {
      pos++;
      continue;
    }
    let matched = false;
    for (const r of RULES) {
      r.pattern.lastIndex = pos;
      const m = r.pattern.exec(text);
      if (!m) continue;
      r.apply(m, out);
      out.known++;
      pos = r.pattern.lastIndex;
      matched = true;
      break;
    }
    if (!matched) {
      const end = text.slice(pos).search(/\s/);
      const word = end === -1 ? text.slice(pos) : text.slice(pos, pos + end);
      out.unknown.push(word);
      pos += word.length;
    }
  }
  if (out.known === 0) return undefined;
  const { known: _known, ...reading } = out;
  return definedOnly(reading);
}
