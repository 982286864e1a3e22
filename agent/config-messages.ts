// Words for configuration problems: zod's own messages ("Invalid input") name neither what was
// expected nor what was given, and an unknown key deserves the spelling it was probably meant to
// have. Pure functions over the issue, the raw input and the schema, so tests pin exact strings.
import { closest, distance } from 'fastest-levenshtein';
import { z } from 'zod';

type Raw = Record<string, unknown>;
type Path = readonly PropertyKey[];

/** Where each setting came from: "gpulse.yaml", "GPULSE_MODELS", "--listen", "preset edge". */
export class Provenance {
  private readonly sources = new Map<string, string>();

  /** Records that `path` (and everything below it, unless recorded apart) came from `source`. */
  set(path: Path, source: string): void {
    this.sources.set(key(path), source);
  }

  /** Records every node of a parsed file (mapping keys and list items) as coming from `source`. */
  setTree(value: unknown, source: string, path: PropertyKey[] = []): void {
    if (path.length > 0) this.set(path, source);
    if (Array.isArray(value)) value.forEach((v, i) => this.setTree(v, source, [...path, i]));
    else if (isRecord(value))
      for (const [k, v] of Object.entries(value)) this.setTree(v, source, [...path, k]);
  }

  /** The source of the deepest recorded node on `path`; `defaults` when none is. */
  of(path: Path): string {
    for (let n = path.length; n > 0; n--) {
      const source = this.sources.get(key(path.slice(0, n)));
      if (source !== undefined) return source;
    }
    return 'defaults';
  }
}

function key(path: Path): string {
  return path.map(String).join('.');
}

function isRecord(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The raw value at `path`; a JSON string on the way is read as JSON, as the schema does for
 * GPULSE_MODELS, so a problem inside a model list from the environment still shows its value.
 */
export function valueAt(raw: unknown, path: Path): unknown {
  let node = raw;
  for (const k of path) {
    if (typeof node === 'string') {
      try {
        node = JSON.parse(node) as unknown;
      } catch {
        return undefined;
      }
    }
    if (Array.isArray(node) && typeof k === 'number') node = node[k];
    else if (isRecord(node)) node = node[String(k)];
    else return undefined;
  }
  return node;
}

/** A value as a message quotes it: strings in quotes, short JSON for the rest. */
export function showValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value (null)';
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    return JSON.stringify(value);
  if (Array.isArray(value)) return `a list (${shorten(JSON.stringify(value))})`;
  return `a mapping (${shorten(JSON.stringify(value))})`;
}

function shorten(text: string): string {
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

const TYPE_WORDS: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping of settings',
  record: 'a mapping',
};

function typeWord(expected: string): string {
  return TYPE_WORDS[expected] ?? `a ${expected}`;
}

function orList(items: readonly string[]): string {
  const unique = [...new Set(items)];
  if (unique.length <= 1) return unique[0] ?? '';
  if (unique.length === 2) return `${unique[0]} or ${unique[1]}`;
  return `one of ${unique.join(', ')}`;
}

function valueWords(values: readonly unknown[]): string[] {
  // `0 | 1 | "0" | "1"` is the same choice to whoever writes YAML or an environment variable.
  return [...new Set(values.map((v) => String(v)))];
}

/** zod's own wording, which says neither what was expected nor what was given. */
function isZodDefault(message: string): boolean {
  return /^(Invalid|Too (small|big)|Unrecognized key)/.test(message);
}

/** What an issue inside one branch of a union expects, or undefined for a deeper mismatch. */
function branchExpectation(issues: readonly z.core.$ZodIssue[]): string[] | undefined {
  const out: string[] = [];
  for (const i of issues) {
    if (i.path.length > 0) return undefined;
    if (i.code === 'invalid_type') out.push(typeWord(i.expected));
    else if (i.code === 'invalid_value') out.push(...valueWords(i.values));
    else return undefined;
  }
  return out;
}

/** "expected …" for an issue, from its code; undefined where zod's message is already specific. */
function expectation(issue: z.core.$ZodIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      return `expected ${typeWord(issue.expected)}`;
    case 'invalid_value': {
      const values = valueWords(issue.values);
      return values.length === 1 ? `expected ${values[0]}` : `expected ${orList(values)}`;
    }
    case 'invalid_union': {
      const branches = issue.errors.map(branchExpectation);
      if (branches.some((b) => b === undefined)) return undefined;
      return `expected ${orList(branches.flatMap((b) => b ?? []))}`;
    }
    case 'too_small': {
      const bound = `${issue.inclusive === false ? 'more than' : 'at least'} ${String(issue.minimum)}`;
      if (issue.origin === 'string') return `expected ${bound} characters`;
      if (issue.origin === 'array' || issue.origin === 'set') return `expected ${bound} items`;
      return `expected a value of ${bound}`;
    }
    case 'too_big': {
      const bound = `${issue.inclusive === false ? 'less than' : 'at most'} ${String(issue.maximum)}`;
      if (issue.origin === 'string') return `expected ${bound} characters`;
      if (issue.origin === 'array' || issue.origin === 'set') return `expected ${bound} items`;
      return `expected a value of ${bound}`;
    }
    case 'invalid_format':
      return issue.format === 'regex' && issue.pattern
        ? `expected text matching ${issue.pattern}`
        : `expected ${issue.format === 'url' ? 'a URL' : `a valid ${issue.format}`}`;
    case 'custom':
    case 'invalid_element':
    case 'invalid_key':
    case 'not_multiple_of':
    case 'unrecognized_keys':
      return undefined;
  }
}

/** Unwraps defaults, optionals and pipes down to the schema that holds keys. */
function unwrap(schema: z.core.$ZodType): z.core.$ZodType {
  let s = schema;
  for (let depth = 0; depth < 20; depth++) {
    if (s instanceof z.ZodDefault || s instanceof z.ZodPrefault) s = s.unwrap();
    else if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap();
    else if (s instanceof z.ZodCatch || s instanceof z.ZodReadonly) s = s.unwrap();
    else if (s instanceof z.ZodPipe) s = s.out instanceof z.ZodTransform ? s.in : s.out;
    else return s;
  }
  return s;
}

/** The keys a schema accepts at `path` (an object's shape; list items by index). */
export function knownKeys(schema: z.core.$ZodType, path: Path): string[] {
  let s = unwrap(schema);
  for (const k of path) {
    if (s instanceof z.ZodObject) {
      const next = (s.shape as Record<string, z.core.$ZodType>)[String(k)];
      if (next === undefined) return [];
      s = unwrap(next);
    } else if (s instanceof z.ZodArray) s = unwrap(s.element);
    else if (s instanceof z.ZodRecord) s = unwrap(s.valueType);
    else return [];
  }
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

/** Every key path the schema knows, for "it lives under collectors.nvidia-smi" hints. */
function allKeyPaths(schema: z.core.$ZodType, prefix: string[] = []): string[][] {
  const s = unwrap(schema);
  if (s instanceof z.ZodObject) {
    return Object.entries(s.shape as Record<string, z.core.$ZodType>).flatMap(([k, v]) => [
      [...prefix, k],
      ...allKeyPaths(v, [...prefix, k]),
    ]);
  }
  if (s instanceof z.ZodArray) return allKeyPaths(s.element, [...prefix, '<n>']);
  return [];
}

/** The known key a misspelt one most likely meant, if any is close enough to say so. */
export function didYouMean(unknown: string, known: readonly string[]): string | undefined {
  if (known.length === 0) return undefined;
  const lower = unknown.toLowerCase();
  const exact = known.find((k) => k.toLowerCase() === lower);
  if (exact !== undefined) return exact;
  const best = closest(
    lower,
    known.map((k) => k.toLowerCase()),
  );
  // One edit in four characters: "bianry" finds "binary", "url" does not become "qos".
  if (distance(lower, best) > Math.max(1, Math.floor(unknown.length / 4) + 1)) return undefined;
  return known.find((k) => k.toLowerCase() === best);
}

function unknownKeyHint(
  schema: z.core.$ZodType,
  parent: Path,
  name: string,
  known: readonly string[],
): string {
  const near = didYouMean(name, known);
  if (near !== undefined) return `did you mean ${near}?`;
  const here = key([...parent, name]);
  const elsewhere = allKeyPaths(schema).filter(
    (p) => p[p.length - 1] === name && key(p) !== here && !p.includes('<n>'),
  );
  if (elsewhere.length > 0 && elsewhere.length <= 3) {
    return `it goes under ${elsewhere.map((p) => p.slice(0, -1).join('.') || 'the top level').join(' or ')}`;
  }
  const level = parent.length === 0 ? 'the top level' : key(parent);
  return `the settings of ${level} are ${known.join(', ')} (docs/configuration.md)`;
}

/** Everything a problem message needs besides the issue. */
export interface IssueContext {
  /** The merged raw input (file, environment and flags), before validation. */
  readonly raw: Raw;
  readonly provenance: Provenance;
  readonly schema: z.core.$ZodType;
}

/**
 * One line per problem: `path: what was expected, got what (from where)`; an unknown key names
 * the key it probably meant.
 */
export function describeIssue(issue: z.core.$ZodIssue, ctx: IssueContext): string[] {
  const path = key(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(ctx.schema, issue.path);
    return issue.keys.map((k) => {
      const where = ctx.provenance.of([...issue.path, k]);
      const hint = unknownKeyHint(ctx.schema, issue.path, k, known);
      return `${path === '' ? '' : `${path}.`}${k}: unknown setting (in ${where}); ${hint}`;
    });
  }
  const given = valueAt(ctx.raw, issue.path);
  const from = `(from ${ctx.provenance.of(issue.path)})`;
  if (given === undefined && issue.code !== 'custom') {
    const wanted = expectation(issue);
    return [`${path}: missing; ${wanted ?? issue.message} ${from}`];
  }
  const specific = !isZodDefault(issue.message);
  const what = specific ? issue.message : (expectation(issue) ?? issue.message);
  const got = /\bgot\b/.test(what) ? '' : `, got ${showValue(given)}`;
  return [`${path || '(top level)'}: ${what}${got} ${from}`];
}
