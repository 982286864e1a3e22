import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileDurable } from './durable-fs.js';
import { NAME_RE } from './manifest.js';

/** A version as a path segment: state.json is read back into paths, so it is checked like a manifest. */
const zVersion = z.string().regex(NAME_RE, 'not a valid version name');

/** States of one update, persisted in `state.json` so a restart resumes where it stopped. */
export const UPDATE_STATES = [
  'idle',
  'downloading',
  'assembled',
  'verified',
  'activated',
  'trial',
  'committed',
  'rolling_back',
  'rolled_back',
  'failed',
] as const;

/** One state of the update state machine. */
export type UpdateState = (typeof UPDATE_STATES)[number];

/** States after which nothing more happens until a new manifest arrives. */
export const TERMINAL_STATES: ReadonlySet<UpdateState> = new Set([
  'idle',
  'committed',
  'rolled_back',
  'failed',
]);

const zRef = z.object({
  version: zVersion,
  release: z.number().int(),
  manifest_sha256: z.string(),
  at: z.string().optional(),
});

/** An installed version. */
export type InstalledRef = z.infer<typeof zRef>;

const zUpdate = z.object({
  state: z.enum(UPDATE_STATES),
  version: zVersion,
  release: z.number().int(),
  manifest_sha256: z.string(),
  /** `current` when the update started: what a rollback returns to. */
  from: zRef.optional(),
  /** `previous` when the update started: restored as `previous` by a rollback. */
  from_previous: zRef.optional(),
  started_at: z.string(),
  updated_at: z.string(),
  /** Times the process entered the activated/trial states for this update (crash-loop bound). */
  trial_starts: z.number().int().default(0),
  /** Unix ms when the trial window ends (set when the trial starts). */
  trial_deadline: z.number().optional(),
  reason: z.string().optional(),
  bytes_total: z.number().default(0),
  bytes_to_download: z.number().default(0),
  bytes_downloaded: z.number().default(0),
  bytes_reused: z.number().default(0),
  chunks_downloaded: z.number().default(0),
  chunks_reused: z.number().default(0),
});

/** The update in progress, or the last one. */
export type UpdateRecord = z.infer<typeof zUpdate>;

const zQuarantine = z.object({
  version: z.string(),
  release: z.number().int(),
  reason: z.string(),
  at: z.string(),
});

/** A refused version (health failure, verification failure): never retried automatically. */
export type QuarantineRecord = z.infer<typeof zQuarantine>;

const zState = z.object({
  spec: z.literal(1),
  model: z.string(),
  /** Highest release ever accepted: manifests at or below it are refused (rollback attacks). */
  highest_release: z.number().int().default(0),
  current: zRef.optional(),
  previous: zRef.optional(),
  update: zUpdate.optional(),
  quarantined: z.array(zQuarantine).default([]),
});

/** Everything persisted about one model root. */
export type ModelState = z.infer<typeof zState>;

/** Name prefix of work directories under `versions/`. */
export const WORK_PREFIX = '.partial-';

/** Files and folders of a model root. */
export class ModelPaths {
  constructor(readonly root: string) {}
  get state(): string {
    return join(this.root, 'state.json');
  }
  get progress(): string {
    return join(this.root, 'progress.json');
  }
  get lock(): string {
    return join(this.root, '.lock');
  }
  get current(): string {
    return join(this.root, 'current');
  }
  get previous(): string {
    return join(this.root, 'previous');
  }
  get versions(): string {
    return join(this.root, 'versions');
  }
  get manifests(): string {
    return join(this.root, 'manifests');
  }
  get quarantine(): string {
    return join(this.root, 'quarantine');
  }
  /** Chunk-index objects of installed versions (`index/<sha256>`). */
  get index(): string {
    return join(this.root, 'index');
  }
  /** Symlink target of a version, relative so the root can be mounted anywhere. */
  linkTarget(version: string): string {
    return `versions/${version}`;
  }
  version(version: string): string {
    return join(this.versions, version);
  }
  /**
   * Work directory where a version is assembled. The leading dot keeps it apart from every version
   * (names start with a letter or digit), so no version can be the work directory of another.
   */
  partial(version: string): string {
    return join(this.versions, `${WORK_PREFIX}${version}`);
  }
  /** Where an installed copy of the same version waits while it is replaced. */
  oldCopy(version: string): string {
    return join(this.versions, `.old-${version}-${process.pid}`);
  }
  manifest(version: string): string {
    return join(this.manifests, `${version}.json`);
  }
}

/** Reads state.json; a missing file is a fresh root. */
export async function readState(paths: ModelPaths, model: string): Promise<ModelState> {
  let text: string;
  try {
    text = await readFile(paths.state, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      return { spec: 1, model, highest_release: 0, quarantined: [] };
    throw err;
  }
  const parsed = zState.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new Error(
      `${paths.state} is not a gpulse model state file: ${parsed.error.issues[0]?.message ?? ''}`,
    );
  if (parsed.data.model !== model)
    throw new Error(
      `${paths.root} holds model ${parsed.data.model}, not ${model}; use another --dir`,
    );
  return parsed.data;
}

/** Reads state.json without knowing the model name (status). */
export async function readStateAny(paths: ModelPaths): Promise<ModelState | undefined> {
  try {
    const parsed = zState.safeParse(JSON.parse(await readFile(paths.state, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Persists state.json durably (temp + fsync + rename + dir fsync). */
export async function writeState(paths: ModelPaths, state: ModelState): Promise<void> {
  await writeFileDurable(paths.state, `${JSON.stringify(state, null, 2)}\n`);
}
