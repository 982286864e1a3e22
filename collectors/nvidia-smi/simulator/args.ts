import type { CsvFormat } from './output.js';

/** What one invocation asks for. */
export type SmiCommand =
  | { readonly kind: 'help' }
  | { readonly kind: 'version' }
  | { readonly kind: 'help-query-gpu' }
  | { readonly kind: 'help-query-compute-apps' }
  | { readonly kind: 'list' }
  | { readonly kind: 'summary' }
  | { readonly kind: 'query-text' }
  | { readonly kind: 'query-xml' }
  /** `nvidia-smi pmon`: per-process utilization, one sample per delay. */
  | { readonly kind: 'pmon' }
  | { readonly kind: 'query-gpu'; readonly fields: readonly string[]; readonly format: CsvFormat }
  | {
      readonly kind: 'query-compute-apps';
      readonly fields: readonly string[];
      readonly format: CsvFormat;
    };

/** A parsed command line. */
export interface SmiInvocation {
  readonly command: SmiCommand;
  /** `-i`: indexes, UUIDs or PCI bus ids; undefined: all GPUs. */
  readonly ids: readonly string[] | undefined;
  /** `-l` / `-lms`: repeat every this many ms; undefined: once. */
  readonly loopMs: number | undefined;
  /** pmon `-c`: stop after this many samples; undefined: until killed. */
  readonly count?: number;
}

/** A command line nvidia-smi rejects; `message` is what it prints (stdout), exit code 2. */
export class SmiUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SmiUsageError';
  }
}

/** nvidia-smi's answer to options that do not go together (seen in telegraf#6573). */
export const INVALID_COMBINATION =
  "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n";

/** nvidia-smi's answer to an option it does not know (seen in private-gpt#1480). */
export function unknownOption(option: string): string {
  return `ERROR: Option ${option} is not recognized. Please run 'nvidia-smi -h'.\n`;
}

function parseFormat(value: string): CsvFormat {
  const parts = value.split(',').map((p) => p.trim());
  if (!parts.includes('csv')) throw new SmiUsageError(INVALID_COMBINATION);
  for (const p of parts) {
    if (p !== 'csv' && p !== 'noheader' && p !== 'nounits')
      throw new SmiUsageError(INVALID_COMBINATION);
  }
  return { header: !parts.includes('noheader'), units: !parts.includes('nounits') };
}

function positiveNumber(value: string | undefined, option: string): number {
  const n = Number(value);
  if (value === undefined || value === '' || !Number.isFinite(n) || n <= 0) {
    throw new SmiUsageError(unknownOption(value ?? option));
  }
  return n;
}

// Options that take a value, by every spelling; `--opt=value` and `--opt value` both work.
const VALUE_OPTIONS: Readonly<Record<string, string>> = {
  '-i': 'id',
  '--id': 'id',
  '-l': 'loop',
  '--loop': 'loop',
  '-lms': 'loop-ms',
  '--loop-ms': 'loop-ms',
  '--query-gpu': 'query-gpu',
  '--query-compute-apps': 'query-compute-apps',
  '--format': 'format',
  '-f': 'filename',
  '--filename': 'filename',
};

const FLAG_OPTIONS: Readonly<Record<string, string>> = {
  '-h': 'help',
  '--help': 'help',
  '--version': 'version',
  '-L': 'list',
  '--list-gpus': 'list',
  '-q': 'query',
  '--query': 'query',
  '-x': 'xml',
  '--xml-format': 'xml',
  '--help-query-gpu': 'help-query-gpu',
  '--help-query-compute-apps': 'help-query-compute-apps',
};

/**
 * `nvidia-smi pmon [-i ids] [-d seconds] [-c count] [-s u]`: the delay is whole seconds 1-10
 * (default 1), only the utilization group (`-s u`, the default) is simulated.
 */
function parsePmonArgs(argv: readonly string[]): SmiInvocation {
  let ids: string[] | undefined;
  let delay = 1;
  let count: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const value = argv[i + 1];
    switch (arg) {
      case '-i':
      case '--id':
        if (value === undefined) throw new SmiUsageError(INVALID_COMBINATION);
        ids = value.split(',').map((s) => s.trim());
        i++;
        break;
      case '-d':
      case '--delay':
        delay = positiveNumber(value, arg);
        if (!Number.isInteger(delay) || delay > 10) throw new SmiUsageError(INVALID_COMBINATION);
        i++;
        break;
      case '-c':
      case '--count':
        count = positiveNumber(value, arg);
        i++;
        break;
      case '-s':
      case '--select':
        if (value !== 'u') throw new SmiUsageError(unknownOption(value ?? arg));
        i++;
        break;
      default:
        throw new SmiUsageError(unknownOption(arg));
    }
  }
  return { command: { kind: 'pmon' }, ids, loopMs: delay * 1000, count };
}

/** Parses nvidia-smi's own command line (the subset the agent and people use). */
export function parseArgs(argv: readonly string[]): SmiInvocation {
  if (argv[0] === 'pmon') return parsePmonArgs(argv.slice(1));
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const key = eq >= 0 ? arg.slice(0, eq) : arg;
    const valueName = VALUE_OPTIONS[key];
    if (valueName !== undefined) {
      let value: string | undefined = eq >= 0 ? arg.slice(eq + 1) : argv[i + 1];
      if (eq < 0) {
        // `-l` alone loops every 5 s, as the man page says.
        if (valueName === 'loop' && (value === undefined || value.startsWith('-'))) value = '5';
        else i++;
      }
      if (value === undefined) throw new SmiUsageError(INVALID_COMBINATION);
      values.set(valueName, value);
      continue;
    }
    const flag = FLAG_OPTIONS[arg];
    if (flag === undefined) throw new SmiUsageError(unknownOption(arg));
    flags.add(flag);
  }
  if (values.has('filename')) throw new SmiUsageError(unknownOption('-f'));

  const idText = values.get('id');
  const ids = idText === undefined ? undefined : idText.split(',').map((s) => s.trim());
  const loopText = values.get('loop');
  const loopMsText = values.get('loop-ms');
  const loopMs =
    loopMsText !== undefined
      ? positiveNumber(loopMsText, '-lms')
      : loopText !== undefined
        ? positiveNumber(loopText, '-l') * 1000
        : undefined;
  const formatText = values.get('format');
  const queryGpu = values.get('query-gpu');
  const queryApps = values.get('query-compute-apps');
  const invocation = (command: SmiCommand): SmiInvocation => ({ command, ids, loopMs });
  const only = (...allowed: string[]): void => {
    for (const f of flags) if (!allowed.includes(f)) throw new SmiUsageError(INVALID_COMBINATION);
  };

  if (flags.has('help')) return invocation({ kind: 'help' });
  if (queryGpu !== undefined || queryApps !== undefined) {
    if ((queryGpu !== undefined && queryApps !== undefined) || formatText === undefined) {
      throw new SmiUsageError(INVALID_COMBINATION);
    }
    only();
    const format = parseFormat(formatText);
    const fields = (queryGpu ?? queryApps ?? '').split(',').map((f) => f.trim());
    return invocation(
      queryGpu !== undefined
        ? { kind: 'query-gpu', fields, format }
        : { kind: 'query-compute-apps', fields, format },
    );
  }
  if (formatText !== undefined) throw new SmiUsageError(INVALID_COMBINATION);
  // Commands that stand alone: the flag's name is the command's kind.
  for (const kind of ['help-query-gpu', 'help-query-compute-apps', 'version', 'list'] as const) {
    if (flags.has(kind)) {
      only(kind);
      return invocation({ kind });
    }
  }
  if (flags.has('query')) {
    only('query', 'xml');
    return invocation({ kind: flags.has('xml') ? 'query-xml' : 'query-text' });
  }
  if (flags.has('xml')) throw new SmiUsageError(INVALID_COMBINATION);
  return invocation({ kind: 'summary' });
}
