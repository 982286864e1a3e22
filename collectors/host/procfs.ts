import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Cumulative CPU time of one CPU (or `all`) by mode, in kernel ticks (/proc/stat). */
export interface CpuTimes {
  readonly cpu: string;
  readonly ticks: Readonly<Record<CpuMode, number>>;
}

/** The modes /proc/stat reports, in its column order. */
export const CPU_MODES = [
  'user',
  'nice',
  'system',
  'idle',
  'iowait',
  'irq',
  'softirq',
  'steal',
] as const;

/** One CPU mode. */
export type CpuMode = (typeof CPU_MODES)[number];

/** Parses /proc/stat's cpu lines; `cpu` is `all` for the aggregate line. */
export function parseProcStat(text: string): CpuTimes[] {
  const out: CpuTimes[] = [];
  for (const line of text.split('\n')) {
    const m = /^cpu(\d*)\s+(.*)$/.exec(line);
    if (!m) continue;
    const values = (m[2] ?? '').trim().split(/\s+/).map(Number);
    if (values.length < 4 || values.some((v) => !Number.isFinite(v))) continue;
    const ticks = Object.fromEntries(CPU_MODES.map((mode, i) => [mode, values[i] ?? 0])) as Record<
      CpuMode,
      number
    >;
    out.push({ cpu: m[1] === '' ? 'all' : (m[1] ?? 'all'), ticks });
  }
  return out;
}

/** Busy share between two samples of the same CPU (0-1); undefined when no time passed. */
export function busyRatio(prev: CpuTimes, next: CpuTimes): number | undefined {
  let total = 0;
  let idle = 0;
  for (const mode of CPU_MODES) {
    const d = next.ticks[mode] - prev.ticks[mode];
    total += d;
    if (mode === 'idle' || mode === 'iowait') idle += d;
  }
  if (total <= 0) return undefined;
  return Math.min(1, Math.max(0, (total - idle) / total));
}

/** Memory figures from /proc/meminfo, in bytes. */
export interface MemInfo {
  readonly total?: number;
  readonly available?: number;
  readonly swapTotal?: number;
  readonly swapFree?: number;
}

/** Parses /proc/meminfo (values in kB). */
export function parseMeminfo(text: string): MemInfo {
  const kb = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?$/.exec(line.trim());
    if (m?.[1] && m[2]) kb.set(m[1], Number(m[2]) * 1024);
  }
  return {
    total: kb.get('MemTotal'),
    available: kb.get('MemAvailable'),
    swapTotal: kb.get('SwapTotal'),
    swapFree: kb.get('SwapFree'),
  };
}

/** Byte counters of one network interface. */
export interface NetDev {
  readonly iface: string;
  readonly rxBytes: number;
  readonly txBytes: number;
}

/** Parses /proc/net/dev. */
export function parseNetDev(text: string): NetDev[] {
  const out: NetDev[] = [];
  for (const line of text.split('\n').slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m?.[1]) continue;
    const cols = (m[2] ?? '').trim().split(/\s+/).map(Number);
    const rx = cols[0];
    const tx = cols[8];
    if (rx === undefined || tx === undefined || !Number.isFinite(rx) || !Number.isFinite(tx))
      continue;
    out.push({ iface: m[1], rxBytes: rx, txBytes: tx });
  }
  return out;
}

/** One temperature sensor reading. */
export interface Temperature {
  readonly sensor: string;
  readonly celsius: number;
}

async function readTrimmed(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/**
 * Temperatures from /sys/class/hwmon (name + label) and /sys/class/thermal (zone type).
 * Millidegree files; implausible readings (disconnected sensors report -40 °C or 255 °C) are dropped.
 */
export async function readTemperatures(sysRoot: string): Promise<Temperature[]> {
  const out: Temperature[] = [];
  const seen = new Set<string>();
  const add = (sensor: string, milli: string | undefined) => {
    const c = Number(milli) / 1000;
    if (milli === undefined || !Number.isFinite(c) || c <= -40 || c >= 255) return;
    let name = sensor.replace(/[^a-zA-Z0-9_.:-]/g, '_');
    for (let i = 2; seen.has(name); i++) name = `${sensor}_${i}`;
    seen.add(name);
    out.push({ sensor: name, celsius: c });
  };
  const hwmon = join(sysRoot, 'class', 'hwmon');
  for (const dir of await readdir(hwmon).catch(() => [] as string[])) {
    const base = join(hwmon, dir);
    const chip = (await readTrimmed(join(base, 'name'))) ?? dir;
    const files = await readdir(base).catch(() => [] as string[]);
    for (const f of files.filter((x) => /^temp\d+_input$/.test(x)).sort()) {
      const n = f.slice(0, -'_input'.length);
      const label = await readTrimmed(join(base, `${n}_label`));
      add(`${chip}:${label ?? n}`, await readTrimmed(join(base, f)));
    }
  }
  const thermal = join(sysRoot, 'class', 'thermal');
  for (const zone of (await readdir(thermal).catch(() => [] as string[]))
    .filter((z) => z.startsWith('thermal_zone'))
    .sort()) {
    const type = (await readTrimmed(join(thermal, zone, 'type'))) ?? zone;
    add(type, await readTrimmed(join(thermal, zone, 'temp')));
  }
  return out;
}
