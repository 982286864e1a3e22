/**
 * The DCGM field catalogue, read from data files rather than written in code: dcgm-exporter's
 * own counters CSVs (field name, Prometheus type, help; commented-out lines are its optional
 * fields) joined with the field ids, dmon short names and units that `dcgmi` prints
 * (`fixtures/dcgm-fields.csv`, transcribed from DCGM's dcgm_fields.h/.cpp).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as CsvParse from 'csv-parse/sync';
import { collectorFixturesDir } from '../fixtures-dir.js';

let csvParse: typeof CsvParse.parse | undefined;

/** csv-parse, loaded when the catalogue is first read: a host without DCGM never needs it. */
function parse<T>(input: string, options: CsvParse.Options): T[] {
  csvParse ??= (createRequire(import.meta.url)('csv-parse/sync') as typeof CsvParse).parse;
  return csvParse(input, options) as T[];
}

/** Value type of a field as dcgmi formats it (doubles with 3 decimals, integers as is). */
export type DcgmValueType = 'double' | 'int64';

/** One DCGM field gpulse knows. */
export interface DcgmField {
  /** e.g. `DCGM_FI_PROF_SM_ACTIVE`. */
  readonly name: string;
  readonly id: number;
  /** dmon column header, e.g. `SMACT`. */
  readonly shortName: string;
  /** dmon unit line text, e.g. ` W`. */
  readonly unit: string;
  /** dmon column width before padding. */
  readonly width: number;
  readonly type: DcgmValueType;
  /** Prometheus type dcgm-exporter gives the field (gauge, counter, label). */
  readonly promType: 'gauge' | 'counter' | 'label';
  readonly help: string;
  /** Listed (uncommented) in dcgm-exporter's default-counters.csv. */
  readonly inDefaultCounters: boolean;
  /** Listed in any dcgm-exporter CSV, commented out or not. */
  readonly inExporterCsv: boolean;
}

/** Files the catalogue is read from, relative to `collectors/dcgm/fixtures`. */
export const CATALOGUE_FILES = {
  fields: 'dcgm-fields.csv',
  defaultCounters: 'dcgm-exporter__default-counters.csv',
  dcpCounters: 'dcgm-exporter__dcp-metrics-included.csv',
} as const;

/** The fixtures folder, found from this module both in sources and in `dist/`. */
export function dcgmFixturesDir(): string {
  return collectorFixturesDir('dcgm');
}

/** One row of a dcgm-exporter counters CSV. */
export interface ExporterCsvRow {
  readonly name: string;
  readonly promType: 'gauge' | 'counter' | 'label';
  readonly help: string;
  /** False for lines dcgm-exporter ships commented out (optional fields). */
  readonly enabled: boolean;
}

/**
 * Parses a dcgm-exporter counters CSV (`DCGM FIELD, Prometheus metric type, help message`).
 * Commented-out field lines (`# DCGM_FI_...`) are kept as optional fields.
 */
export function parseExporterCsv(text: string): ExporterCsvRow[] {
  const out: ExporterCsvRow[] = [];
  for (const raw of text.split('\n')) {
    const commented = /^#\s*(DCGM_(?:FI|EXP)_\w+\s*,.*)$/.exec(raw.trim());
    const line = commented?.[1] ?? raw;
    if (line.trim() === '' || line.trim().startsWith('#')) continue;
    const rows = parse<string[]>(line, { trim: true, relax_quotes: true });
    const [name, type, ...help] = rows[0] ?? [];
    if (!name || (type !== 'gauge' && type !== 'counter' && type !== 'label')) continue;
    // Help texts may contain commas; the CSV format has no quoting, so the rest is the help.
    out.push({ name, promType: type, help: help.join(', '), enabled: commented === null });
  }
  return out;
}

interface FieldRow {
  readonly field: string;
  readonly id: string;
  readonly short_name: string;
  readonly unit: string;
  readonly width: string;
  readonly type: string;
  readonly help: string;
}

/** Builds the catalogue from the texts of the three data files. */
export function buildCatalogue(
  fieldsCsv: string,
  defaultCountersCsv: string,
  dcpCountersCsv: string,
): DcgmField[] {
  const rows = parse<FieldRow>(fieldsCsv, {
    columns: true,
    comment: '#',
    comment_no_infix: true,
    skip_empty_lines: true,
  });
  const defaults = parseExporterCsv(defaultCountersCsv);
  const exporter = new Map<string, ExporterCsvRow>();
  for (const row of [...parseExporterCsv(dcpCountersCsv), ...defaults]) exporter.set(row.name, row);
  const enabledByDefault = new Set(defaults.filter((r) => r.enabled).map((r) => r.name));
  return rows.map((r) => {
    const id = Number(r.id);
    const width = Number(r.width);
    if (
      !Number.isInteger(id) ||
      !Number.isInteger(width) ||
      (r.type !== 'double' && r.type !== 'int64')
    ) {
      throw new Error(`dcgm-fields.csv: bad row for ${r.field}`);
    }
    const csv = exporter.get(r.field);
    return {
      name: r.field,
      id,
      shortName: r.short_name,
      unit: r.unit,
      width,
      type: r.type,
      promType: csv?.promType ?? 'gauge',
      help: csv?.help || r.help || r.field,
      inDefaultCounters: enabledByDefault.has(r.field),
      inExporterCsv: csv !== undefined,
    };
  });
}

let cached: DcgmField[] | undefined;

/** The catalogue, read once per process from `collectors/dcgm/fixtures`. */
export function dcgmCatalogue(): readonly DcgmField[] {
  if (!cached) {
    const dir = dcgmFixturesDir();
    const read = (file: string): string => readFileSync(join(dir, file), 'utf8');
    cached = buildCatalogue(
      read(CATALOGUE_FILES.fields),
      read(CATALOGUE_FILES.defaultCounters),
      read(CATALOGUE_FILES.dcpCounters),
    );
  }
  return cached;
}

/** Field by name. */
export function fieldByName(name: string): DcgmField | undefined {
  return dcgmCatalogue().find((f) => f.name === name);
}

/** Field by id. */
export function fieldById(id: number): DcgmField | undefined {
  return dcgmCatalogue().find((f) => f.id === id);
}

/** Profiling (DCP) fields need the profiling module and a datacenter GPU (Volta or newer). */
export function isProfilingField(field: DcgmField): boolean {
  return field.id >= 1001 && field.id <= 1099;
}
