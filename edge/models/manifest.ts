import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { z } from 'zod';
import { GEAR_CDC_ALG, validateChunking } from './gear-cdc.js';
import { ReasonError } from './reason-error.js';

/** `_type` of a gpulse model manifest. */
export const MANIFEST_TYPE = 'gpulse.model-manifest';
/** Manifest format version this build writes (files name a chunk index); it also reads spec 1. */
export const MANIFEST_SPEC = 2;

/** Model names and versions become directory names: no slashes, no leading dot, bounded. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

/**
 * Endings the updater used for its work directories before they moved under a leading dot
 * (`versions/.partial-<v>`, `.old-<v>-<pid>`, which no valid name can take): a device upgraded from
 * such a build may still hold `versions/<v>.partial`, so no version may be named like that either.
 */
const RESERVED_SUFFIX_RE = /\.(partial|old-\d+)$/;

/** Why a model name or version is not allowed, or undefined when it is fine. */
export function nameProblem(name: string): string | undefined {
  if (!NAME_RE.test(name))
    return 'use letters, digits, . _ + - (no slash, not starting with . _ + -, at most 128 characters)';
  if (RESERVED_SUFFIX_RE.test(name))
    return "the endings .partial and .old-<number> are reserved for the updater's work directories";
  return undefined;
}

/** A zod string checked by nameProblem, `what` naming it in messages. */
function zName(what: string) {
  return z.string().superRefine((name, ctx) => {
    const why = nameProblem(name);
    if (why) ctx.addIssue({ code: 'custom', message: `${what} ${JSON.stringify(name)}: ${why}` });
  });
}
const SHA256_RE = /^[0-9a-f]{64}$/;

/** Why a relative file path from a manifest is unsafe, or undefined when it is fine. */
export function unsafePathReason(path: string): string | undefined {
  if (path.length === 0 || path.length > 1024) return 'empty or longer than 1024 characters';
  if (path.startsWith('/')) return 'absolute';
  if (path.includes('\\') || path.includes('\0')) return 'contains a backslash or NUL';
  const parts = path.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..'))
    return 'has an empty, . or .. segment';
  if (parts.some((p) => p.endsWith('.partial'))) return 'uses the reserved suffix .partial';
  return undefined;
}

const zSha256 = z.string().regex(SHA256_RE, 'expected 64 lowercase hex digits (SHA-256)');
const zSize = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const zChunking = z
  .object({
    alg: z.literal(GEAR_CDC_ALG),
    min: z.number().int(),
    avg: z.number().int(),
    max: z.number().int(),
    normalization: z.number().int(),
    seed: z.string().max(256),
  })
  .strict()
  .superRefine((p, ctx) => {
    try {
      validateChunking(p);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });

const zFile = z
  .object({
    path: z.string().superRefine((p, ctx) => {
      const why = unsafePathReason(p);
      if (why)
        ctx.addIssue({ code: 'custom', message: `unsafe file path ${JSON.stringify(p)}: ${why}` });
    }),
    size: zSize,
    sha256: zSha256,
    chunking: zChunking,
    /** Spec 1: chunks in file order as [sha256, length] pairs. */
    chunks: z.array(z.tuple([zSha256, z.number().int().min(1)])).optional(),
    /** Spec 2: the root object of the file's chunk index (see chunk-index.ts) and its size. */
    index: z
      .object({
        sha256: zSha256,
        size: z
          .number()
          .int()
          .min(36)
          .max(2 ** 30)
          .multipleOf(36),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((f, ctx) => {
    if ((f.chunks === undefined) === (f.index === undefined)) {
      ctx.addIssue({ code: 'custom', message: `${f.path} needs exactly one of chunks and index` });
      return;
    }
    if (!f.chunks) return;
    let sum = 0;
    for (const [, n] of f.chunks) sum += n;
    if (sum !== f.size)
      ctx.addIssue({
        code: 'custom',
        message: `chunk lengths add up to ${sum}, not the file size ${f.size}`,
      });
    const tooBig = f.chunks.findIndex(([, n]) => n > f.chunking.max);
    if (tooBig >= 0)
      ctx.addIssue({ code: 'custom', message: `chunk ${tooBig} is larger than chunking.max` });
  });

const zGolden = z
  .object({
    /** Input file (a path among `files`) handed to the device's golden command. */
    input: z.string(),
    /** Expected output (a path among `files`). */
    expected: z.string(),
    /** `exact`: byte equality; `float32`: little-endian floats within `abs_tolerance`. */
    compare: z.enum(['exact', 'float32']).default('exact'),
    abs_tolerance: z.number().min(0).default(0),
  })
  .strict();

/** Health settings a publisher ships with a model version. */
const zManifestHealth = z
  .object({
    golden: zGolden.optional(),
    /** Minimum trial window after activation; a device may watch longer, never shorter. */
    trial_seconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 86400)
      .optional(),
  })
  .strict();

/** The signed part of a manifest. */
export const signedManifestSchema = z
  .object({
    _type: z.literal(MANIFEST_TYPE),
    spec: z.union([z.literal(1), z.literal(MANIFEST_SPEC)]),
    model: zName('model name'),
    version: zName('version'),
    /** Monotonic release number: a device refuses one not above what it installed before. */
    release: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    created: z.iso.datetime(),
    expires: z.iso.datetime(),
    files: z.array(zFile).min(1),
    health: zManifestHealth.optional(),
    /** Drift reference profile of this version; opaque here (schema owned by the drift module). */
    drift_reference: z.unknown().optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.spec === 1 && m.files.some((f) => f.index !== undefined))
      ctx.addIssue({ code: 'custom', message: 'a spec 1 manifest cannot name a chunk index' });
    const seen = new Set<string>();
    const dirs = new Set<string>();
    for (const f of m.files) {
      if (seen.has(f.path)) ctx.addIssue({ code: 'custom', message: `duplicate file ${f.path}` });
      seen.add(f.path);
      const parts = f.path.split('/');
      for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
    }
    for (const d of dirs) {
      if (seen.has(d))
        ctx.addIssue({ code: 'custom', message: `${d} is both a file and a directory` });
    }
    const g = m.health?.golden;
    if (g) {
      for (const p of [g.input, g.expected]) {
        if (!seen.has(p))
          ctx.addIssue({
            code: 'custom',
            message: `health.golden names ${p}, which is not among files`,
          });
      }
    }
  });

/** The signed part of a manifest, as published. */
export type SignedManifest = z.infer<typeof signedManifestSchema>;
/** One file of a manifest. */
export type ManifestFile = SignedManifest['files'][number];
/** Health settings from a manifest. */
export type ManifestHealth = NonNullable<SignedManifest['health']>;

/** One signature over the canonical bytes of `signed`. */
export interface ManifestSignature {
  /** SHA-256 of the raw ed25519 public key, hex. */
  readonly keyid: string;
  /** ed25519 signature, base64. */
  readonly sig: string;
}

/** A manifest as stored and served: the signed body plus its signatures (TUF-style envelope). */
export interface ManifestEnvelope {
  readonly signed: SignedManifest;
  readonly signatures: readonly ManifestSignature[];
}

const envelopeShape = z
  .object({
    signed: z.unknown(),
    signatures: z
      .array(z.object({ keyid: zSha256, sig: z.string().max(1024) }).strict())
      .min(1)
      .max(16),
  })
  .strict();

/**
 * Thrown for a manifest that is malformed, unsigned, untrusted, expired or refused; `reason` is
 * malformed, bad_signature, unknown_key, expired, release_not_newer ...
 */
export class ManifestError extends ReasonError {
  readonly code = 'GPULSE_MODEL_MANIFEST';
}

/** Canonical JSON bytes (RFC 8785) of a value: what signatures and hashes cover. */
export function canonicalBytes(value: unknown): Buffer {
  const text = canonicalize(value);
  if (text === undefined) throw new Error('value cannot be serialized as JSON');
  return Buffer.from(text, 'utf8');
}

/** Parses the outer envelope; the signed body stays unvalidated until its signature checks out. */
export function parseEnvelope(text: string): { signed: unknown; signatures: ManifestSignature[] } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ManifestError('malformed', `manifest is not JSON: ${(err as Error).message}`);
  }
  const parsed = envelopeShape.safeParse(raw);
  if (!parsed.success) {
    throw new ManifestError(
      'malformed',
      `manifest envelope is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`,
    );
  }
  return parsed.data;
}

/** Validates the signed body (after the signature was verified). */
export function parseSignedManifest(signed: unknown): SignedManifest {
  const parsed = signedManifestSchema.safeParse(signed);
  if (!parsed.success) {
    throw new ManifestError(
      'malformed',
      `manifest is invalid: ${parsed.error.issues
        .slice(0, 10)
        .map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`)
        .join('; ')}`,
    );
  }
  return parsed.data;
}

/** SHA-256 of the canonical signed body: the identity of one published manifest. */
export function manifestDigest(signed: SignedManifest): string {
  return createHash('sha256').update(canonicalBytes(signed)).digest('hex');
}

/** Total bytes of a manifest's files. */
export function manifestSize(m: SignedManifest): number {
  return m.files.reduce((n, f) => n + f.size, 0);
}
