import { constants, createReadStream } from 'node:fs';
import { access, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Option, type Command } from 'commander';
import { intArg } from '../../cli-options.js';
import { humanBytes, ProgressLine } from '../../progress-line.js';
import { parse as parseCsv, type CastingContext } from 'csv-parse';
import { errorMessage } from '../../core/errors.js';
import type { FeatureValue, ObservationRow } from './observations.js';
import { validateObservations } from './observations.js';
import { parseReferenceProfile, ProfileError, type ReferenceProfile } from './profile.js';
import { ProfileBuilder, ProfileBuildError } from './profile-builder.js';

/** Input formats `gpulse drift profile` reads. */
export type ProfileInputFormat = 'auto' | 'jsonl' | 'csv';

/** Options of `gpulse drift profile`. */
export interface ProfileCommandOptions {
  readonly input: string;
  readonly out: string;
  readonly format?: ProfileInputFormat;
  readonly bins?: number;
  readonly top?: number;
  readonly categorical?: readonly string[];
  readonly exclude?: readonly string[];
  readonly sampleRows?: number;
  readonly maxFeatures?: number;
  readonly model?: string;
}

/** Thrown for unreadable or malformed input, with the line where it went wrong. */
export class ProfileInputError extends Error {
  readonly code = 'GPULSE_DRIFT_INPUT';
}

const NUMBER_RE = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;
/** How pandas, numpy and spreadsheets write non-finite numbers. */
const NON_FINITE_RE = /^[-+]?(?:nan|inf|infinity)$/i;

/** Which reader an input file needs: by extension, else by its first character. */
async function detectFormat(path: string): Promise<'jsonl' | 'csv'> {
  const ext = extname(path).toLowerCase();
  if (ext === '.csv' || ext === '.tsv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson' || ext === '.json') return 'jsonl';
  const handle = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(512), 0, 512, 0);
    const head = buffer.subarray(0, bytesRead).toString('utf8').trimStart();
    return head.startsWith('{') ? 'jsonl' : 'csv';
  } finally {
    await handle.close();
  }
}

async function* jsonLines(
  path: string,
  input: Readable,
  maxFeatures: number,
): AsyncGenerator<ObservationRow> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new ProfileInputError(`${path}:${n}: not valid JSON (${errorMessage(err)})`);
    }
    const checked = validateObservations(value, { features: maxFeatures, valueLength: 65_536 });
    if (!checked.ok) throw new ProfileInputError(`${path}:${n}: ${checked.problems.join('; ')}`);
    yield* checked.rows;
  }
}

async function* csvRows(
  path: string,
  input: Readable,
  categorical: ReadonlySet<string>,
): AsyncGenerator<ObservationRow> {
  // Empty cells are nulls, numeric-looking cells numbers (except in --categorical columns).
  const cast = (value: string, context: CastingContext): FeatureValue | string => {
    if (context.header) return value;
    if (value === '') return null;
    const column = typeof context.column === 'string' ? context.column : '';
    if (categorical.has(column)) return value;
    const number = NUMBER_RE.test(value)
      ? Number(value)
      : NON_FINITE_RE.test(value)
        ? NaN
        : undefined;
    if (number === undefined) return value;
    if (!Number.isFinite(number)) {
      throw new ProfileInputError(
        `${path}: line ${context.lines}, column ${JSON.stringify(column)}: ${value} is not a finite number (beyond ±1.8e308, NaN or infinite); leave the cell empty for a missing value, or list the column in --categorical if it is text`,
      );
    }
    return number;
  };
  const parser = input.pipe(
    parseCsv({
      columns: true,
      bom: true,
      trim: true,
      skip_empty_lines: true,
      delimiter: extname(path).toLowerCase() === '.tsv' ? '\t' : ',',
      cast,
    }),
  );
  // pipe() does not forward read errors; without this a failing read would leave the loop waiting.
  input.on('error', (err) => parser.destroy(err));
  try {
    for await (const record of parser) yield record as ObservationRow;
  } catch (err) {
    if (err instanceof ProfileInputError) throw err;
    throw new ProfileInputError(`${path}: ${errorMessage(err)}`);
  }
}

/** How far `drift profile` has read its input. */
export interface ProfileReadProgress {
  readonly rows: number;
  readonly bytesRead: number;
  readonly bytesTotal: number;
}

/** Rows between progress reports: often enough for a terminal, rare enough to cost nothing. */
const PROGRESS_EVERY_ROWS = 2000;

/** Reads a JSON-lines or CSV file and builds its reference profile (streaming, bounded memory). */
export async function buildProfileFromFile(
  options: ProfileCommandOptions,
  onProgress?: (p: ProfileReadProgress) => void,
): Promise<ReferenceProfile> {
  await access(options.input, constants.R_OK);
  const bytesTotal = (await stat(options.input)).size;
  const format =
    options.format === undefined || options.format === 'auto'
      ? await detectFormat(options.input)
      : options.format;
  const maxFeatures = options.maxFeatures ?? 1000;
  const builder = new ProfileBuilder({
    bins: options.bins,
    topK: options.top,
    categorical: options.categorical,
    exclude: options.exclude,
    sampleRows: options.sampleRows,
    maxFeatures,
  });
  const input = createReadStream(options.input);
  const rows =
    format === 'csv'
      ? csvRows(options.input, input, new Set(options.categorical ?? []))
      : jsonLines(options.input, input, maxFeatures);
  let n = 0;
  for await (const row of rows) {
    builder.add(row);
    if (++n % PROGRESS_EVERY_ROWS === 0)
      onProgress?.({ rows: n, bytesRead: input.bytesRead, bytesTotal });
  }
  onProgress?.({ rows: n, bytesRead: bytesTotal, bytesTotal });
  // What is written must be what every reader accepts: checked against the profile schema.
  return parseReferenceProfile(builder.build({ model: options.model, source: options.input }));
}

/** Writes a file atomically (temporary file, then rename), so a reader never sees half a profile. */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, text, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Where `drift profile` writes: results on stdout, problems on stderr, progress on a terminal. */
export interface ProfileCommandIo {
  readonly stdout: (t: string) => void;
  readonly stderr: (t: string) => void;
  /** The progress line (drawn only when stderr is a terminal). */
  readonly progress?: ProgressLine;
  readonly now?: () => number;
}

function rate(rows: number, ms: number): string {
  return `${Math.round((rows * 1000) / Math.max(1, ms)).toLocaleString('en-US')} rows/s`;
}

/** Runs `gpulse drift profile`; returns the exit code (0 written, 1 failed). */
export async function runProfileCommand(
  options: ProfileCommandOptions,
  io: ProfileCommandIo,
): Promise<number> {
  const now = io.now ?? Date.now;
  const started = now();
  try {
    const profile = await buildProfileFromFile(options, (p) => {
      const share =
        p.bytesTotal > 0 ? ` (${((100 * p.bytesRead) / p.bytesTotal).toFixed(1)}%)` : '';
      io.progress?.update(
        `reading ${options.input}: ${p.rows.toLocaleString('en-US')} rows, ${humanBytes(p.bytesRead)} of ${humanBytes(p.bytesTotal)}${share}, ${rate(p.rows, now() - started)}`,
      );
    });
    io.progress?.update(`writing ${options.out}`, true);
    const text = `${JSON.stringify(profile)}\n`;
    await writeAtomic(options.out, text);
    io.progress?.finish();
    const kinds = Object.values(profile.features);
    const numeric = kinds.filter((f) => f.kind === 'numeric').length;
    const ms = now() - started;
    io.stdout(
      `wrote ${options.out}: ${profile.rows} rows, ${kinds.length} features (${numeric} numeric, ${kinds.length - numeric} categorical), ${(Buffer.byteLength(text) / 1024).toFixed(1)} KiB, in ${(ms / 1000).toFixed(1)} s (${rate(profile.rows, ms)})\n`,
    );
    return 0;
  } catch (err) {
    io.progress?.finish();
    const known =
      err instanceof ProfileInputError ||
      err instanceof ProfileBuildError ||
      err instanceof ProfileError;
    const e = err as NodeJS.ErrnoException;
    const message =
      e.code === 'ENOENT'
        ? `cannot read ${e.path ?? options.input}: no such file`
        : errorMessage(err);
    io.stderr(`gpulse drift profile: ${message}\n`);
    if (!known && e.code !== 'ENOENT' && e.code !== 'EACCES') io.stderr(`${e.stack ?? ''}\n`);
    return 1;
  }
}

function list(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

/** Adds `gpulse drift profile` to the CLI. */
export function registerDriftCommand(program: Command): void {
  const drift = program.command('drift').description('model input drift: reference profiles');
  drift
    .command('profile')
    .description(
      'summarise reference data (JSON lines or CSV) into a compact drift profile for a model',
    )
    .requiredOption(
      '--input <FILE>',
      'reference rows: DATA.jsonl (one object per line) or DATA.csv',
    )
    .requiredOption('--out <FILE>', 'profile to write (JSON)')
    .addOption(
      new Option('--format <FORMAT>', 'auto: by extension, else by content')
        .choices(['auto', 'jsonl', 'csv'])
        .default('auto'),
    )
    .option('--bins <N>', 'quantile bins per numeric feature', intArg(2, 1024), 20)
    .option('--top <N>', 'categories kept per categorical feature', intArg(1, 1024), 32)
    .option('--categorical <LIST>', 'features to treat as categories (comma-separated)', list, [])
    .option('--exclude <LIST>', 'features to leave out, e.g. ids (comma-separated)', list, [])
    .option(
      '--sample-rows <N>',
      'values kept per feature for quantiles',
      intArg(1000, 10_000_000),
      100_000,
    )
    .option('--max-features <N>', 'most features accepted', intArg(1, 10_000), 1000)
    .option('--model <NAME>', 'model name recorded in the profile')
    .action(async (opts: Record<string, unknown>) => {
      const code = await runProfileCommand(
        {
          input: String(opts.input),
          out: String(opts.out),
          format: opts.format as ProfileInputFormat,
          bins: opts.bins as number,
          top: opts.top as number,
          categorical: opts.categorical as string[],
          exclude: opts.exclude as string[],
          sampleRows: opts.sampleRows as number,
          maxFeatures: opts.maxFeatures as number,
          model: typeof opts.model === 'string' ? opts.model : undefined,
        },
        {
          stdout: (t) => process.stdout.write(t),
          stderr: (t) => process.stderr.write(t),
          progress: new ProgressLine(process.stderr),
        },
      );
      // main.ts owns process.exit; an exit code lets it end normally with the right status.
      if (code !== 0) process.exitCode = code;
    });
}
