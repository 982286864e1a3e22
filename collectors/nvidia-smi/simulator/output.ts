import { headerText, type QueryField } from './fields.js';

/** `--format=` options. */
export interface CsvFormat {
  readonly header: boolean;
  readonly units: boolean;
}

/** Removes the field's unit from a cell, as `nounits` does (`81559 MiB` → `81559`). */
export function stripUnit(cell: string, unit: string | undefined): string {
  if (unit === undefined) return cell;
  const suffix = ` ${unit}`;
  return cell.endsWith(suffix) ? cell.slice(0, -suffix.length) : cell;
}

/** The header line of a query (`name, memory.used [MiB]`); units stay even with `nounits`. */
export function headerLine(fields: readonly QueryField[]): string {
  return fields.map(headerText).join(', ');
}

/** One row: the cells of the requested fields, joined as nvidia-smi joins them. */
export function rowLine(
  fields: readonly QueryField[],
  cells: ReadonlyMap<string, string>,
  format: CsvFormat,
): string {
  return fields
    .map((f) => {
      const cell = cells.get(f.name) ?? '[N/A]';
      return format.units ? cell : stripUnit(cell, f.unit);
    })
    .join(', ');
}

/** Local time as the `timestamp` field prints it: `2026/07/14 08:12:38.696`. */
export function csvTimestamp(ms: number): string {
  const d = new Date(ms);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return (
    `${d.getFullYear()}/${p2(d.getMonth() + 1)}/${p2(d.getDate())} ` +
    `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}.` +
    String(d.getMilliseconds()).padStart(3, '0')
  );
}
