/**
 * Writes a tegrastats line by putting new values into a real captured line: field order,
 * spacing, units, the `NC` rails, the offline sensors and every field the simulation does not
 * move stay byte for byte what that board's tegrastats prints.
 */

/** What changes from one simulated line to the next. */
export interface LineValues {
  /** `MM-DD-YYYY HH:MM:SS`; replaces the prefix where the template has one (JetPack 5+). */
  readonly timestamp: string;
  readonly ramUsedMB: number;
  /** Free blocks of the largest free size (`lfb NxSizeMB`). */
  readonly ramLargestFreeBlocks: number;
  /** Load (%) and clock (MHz) of each online core, in order. */
  readonly cpus: readonly { readonly percent: number; readonly mhz: number }[];
  readonly emcPercent: number;
  readonly gpuPercent: number;
  readonly gpuMHz: number;
  /** New °C of a sensor given its captured °C; undefined keeps the captured text. */
  temperature(sensor: string, capturedC: number): number | undefined;
  /** New current/average mW of a rail; undefined keeps the captured text. */
  rail(name: string): { readonly currentMw: number; readonly averageMw: number } | undefined;
}

/** `MM-DD-YYYY HH:MM:SS` in local time, as JetPack 5+ tegrastats prefixes its lines. */
export function tegrastatsTimestamp(ms: number): string {
  const d = new Date(ms);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return (
    `${p2(d.getMonth() + 1)}-${p2(d.getDate())}-${d.getFullYear()} ` +
    `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`
  );
}

/** °C with at most as many decimals as the captured text had, trailing zeros dropped (`41.25`). */
export function formatCelsius(value: number, captured: string): string {
  const decimals = Math.min(3, captured.split('.')[1]?.length ?? 0);
  return String(Number(value.toFixed(decimals)));
}

const END = '(?=\\s|$)';

/** The template line with the values of `v` in place. */
export function renderLine(template: string, v: LineValues): string {
  let out = template.replace(/^\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}/, v.timestamp);
  out = out.replace(
    /RAM (\d+)\/(\d+)MB( ?\(lfb )(\d+)x/,
    (_m, _used: string, total: string, lfb: string) =>
      `RAM ${Math.round(v.ramUsedMB)}/${total}MB${lfb}${Math.max(0, Math.round(v.ramLargestFreeBlocks))}x`,
  );
  out = out.replace(/CPU \[([^\]]*)\]/, (_m, inner: string) => {
    let online = 0;
    const cores = inner.split(',').map((entry) => {
      if (entry === 'off') return entry;
      const cpu = v.cpus[online++];
      if (cpu === undefined) return entry;
      return entry.includes('@')
        ? `${Math.round(cpu.percent)}%@${Math.round(cpu.mhz)}`
        : `${Math.round(cpu.percent)}%`;
    });
    return `CPU [${cores.join(',')}]`;
  });
  out = out.replace(/EMC_FREQ (\d+)%/, `EMC_FREQ ${Math.round(v.emcPercent)}%`);
  out = out.replace(
    /GR3D_FREQ (\d+)%(?:@(\d+|\[[\d,]*\]))?/,
    (_m, _p: string, clock: string | undefined) => {
      const mhz = Math.round(v.gpuMHz);
      const at =
        clock === undefined
          ? ''
          : clock.startsWith('[')
            ? `@[${clock
                .slice(1, -1)
                .split(',')
                .map(() => mhz)
                .join(',')}]`
            : `@${mhz}`;
      return `GR3D_FREQ ${Math.round(v.gpuPercent)}%${at}`;
    },
  );
  out = out.replace(
    new RegExp(`([A-Za-z][A-Za-z0-9_]*)@(-?\\d+(?:\\.\\d+)?)C${END}`, 'g'),
    (m, sensor: string, celsius: string) => {
      const next = v.temperature(sensor, Number(celsius));
      return next === undefined ? m : `${sensor}@${formatCelsius(next, celsius)}C`;
    },
  );
  out = out.replace(
    new RegExp(`([A-Za-z][A-Za-z0-9_]*) (\\d+)(mW)?/(\\d+)(mW)?${END}`, 'g'),
    (m, name: string, _c: string, unit: string | undefined) => {
      const r = v.rail(name);
      if (r === undefined) return m;
      const u = unit ?? '';
      return `${name} ${Math.round(r.currentMw)}${u}/${Math.round(r.averageMw)}${u}`;
    },
  );
  return out;
}
