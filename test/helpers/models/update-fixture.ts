import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { FakeClock } from '../../../agent/core/clock.js';
import { EventLog } from '../../../agent/core/events.js';
import { DEFAULT_HEALTH, type HealthSettings } from '../../../edge/models/health.js';
import {
  manifestDigest,
  parseEnvelope,
  parseSignedManifest,
  type SignedManifest,
} from '../../../edge/models/manifest.js';
import type { PublishOptions } from '../../../edge/models/publish.js';
import {
  ModelPaths,
  readState,
  UPDATE_STATES,
  type InstalledRef,
  writeState,
  type ModelState,
  type UpdateRecord,
  type UpdateState,
} from '../../../edge/models/state.js';
import { UpdateContext } from '../../../edge/models/update/context.js';
import type {
  ApplyDeps,
  ApplyOptions,
  PausePoint,
  UpdateProgress,
} from '../../../edge/models/update/types.js';
import { captureLogger } from '../log-sink.js';
import { createHarness, harnessApplyOptions, type Harness } from './harness.js';
import { writeModel } from './model-gen.js';

/** A published release: its signed manifest, the envelope text and the directory it came from. */
export interface Release {
  readonly m: SignedManifest;
  readonly text: string;
  readonly digest: string;
  readonly from: string;
}

/**
 * One model root driven by a fake clock, for unit tests of the updater's states: the store
 * harness to publish releases, and what the update reported (states, pauses, progress, logs).
 */
export interface UpdateFixture {
  readonly h: Harness;
  readonly clock: FakeClock;
  readonly paths: ModelPaths;
  readonly events: EventLog;
  readonly states: UpdateState[];
  readonly pauses: PausePoint[];
  readonly progress: UpdateProgress[];
  readonly logs: Record<string, unknown>[];
  /** Publishes `version` as `release` to the store (64 KiB of weights derived from the version). */
  release(version: string, release: number, extra?: Partial<PublishOptions>): Promise<Release>;
  /** Puts a release where an update leaves it: files in versions/<v> (or the work dir), manifest in manifests/. */
  place(r: Release, where?: 'version' | 'partial'): Promise<void>;
  /** Release `r` as state.json names an installed version. */
  ref(r: Release): InstalledRef;
  /** An update record of release `r` in `state`. */
  record(state: UpdateState, r: Release, extra?: Partial<UpdateRecord>): UpdateRecord;
  /** A context over the model root with `state` persisted first (a fresh root by default). */
  context(
    state?: Partial<ModelState>,
    opts?: Partial<ApplyOptions>,
    deps?: Partial<ApplyDeps>,
  ): Promise<UpdateContext>;
  /** Apply options with these health settings (no trial window unless given). */
  health(extra: Partial<HealthSettings>): Partial<ApplyOptions>;
  /** state.json as persisted now. */
  saved(): Promise<ModelState>;
  cleanup(): Promise<void>;
}

/** Creates a fixture in a fresh temp directory; the fake clock starts at `start`. */
export async function createUpdateFixture(
  start = Date.parse('2026-03-01T12:00:00Z'),
): Promise<UpdateFixture> {
  const h = await createHarness();
  const clock = new FakeClock(start);
  const paths = new ModelPaths(h.root);
  for (const d of [paths.root, paths.versions, paths.manifests, paths.quarantine])
    await mkdir(d, { recursive: true });
  const events = new EventLog({ clock, log: captureLogger('silent').log });
  const { log, records } = captureLogger('debug');
  const states: UpdateState[] = [];
  const pauses: PausePoint[] = [];
  const progress: UpdateProgress[] = [];
  const f: UpdateFixture = {
    h,
    clock,
    paths,
    events,
    states,
    pauses,
    progress,
    logs: records,
    async release(version, release, extra = {}) {
      const from = join(h.tmp, `src-${version}`);
      const weights = createHash('sha512').update(version).digest();
      await writeModel(from, Buffer.concat(Array.from({ length: 256 }, () => weights)));
      await h.publish(from, version, release, { now: () => clock.now(), ...extra });
      const text = await readFile(
        join(h.store, 'detector', 'manifests', `${release}.json`),
        'utf8',
      );
      const m = parseSignedManifest(parseEnvelope(text).signed);
      return { m, text, digest: manifestDigest(m), from };
    },
    async place(r, where = 'version') {
      const dir = where === 'version' ? paths.version(r.m.version) : paths.partial(r.m.version);
      await cp(r.from, dir, { recursive: true });
      await writeFile(paths.manifest(r.m.version), r.text);
    },
    ref: (r) => ({ version: r.m.version, release: r.m.release, manifest_sha256: r.digest }),
    record(state, r, extra = {}) {
      const at = new Date(clock.now()).toISOString();
      return {
        state,
        version: r.m.version,
        release: r.m.release,
        manifest_sha256: r.digest,
        started_at: at,
        updated_at: at,
        trial_starts: 0,
        bytes_total: 0,
        bytes_to_download: 0,
        bytes_downloaded: 0,
        bytes_reused: 0,
        chunks_downloaded: 0,
        chunks_reused: 0,
        ...extra,
      };
    },
    async context(state = {}, opts = {}, deps = {}) {
      const full: ModelState = {
        spec: 1,
        model: 'detector',
        highest_release: 0,
        quarantined: [],
        ...state,
      };
      await writeState(paths, full);
      return new UpdateContext(
        {
          ...(await harnessApplyOptions(h.server.url, h.root, h.pubPath)),
          ...opts,
        },
        {
          log,
          events,
          now: () => clock.now(),
          onState: (s) => states.push(s),
          onProgress: (p) => progress.push(p),
          pause: (p) => {
            pauses.push(p);
            return Promise.resolve();
          },
          ...deps,
        },
        paths,
        full,
      );
    },
    health: (extra) => ({ health: { ...DEFAULT_HEALTH, trialWindowMs: 0, ...extra } }),
    saved: () => readState(paths, 'detector'),
    cleanup: () => h.cleanup(),
  };
  return f;
}

/** The states a successful update passes, in order (UPDATE_STATES lists them so). */
export const UPDATE_PATH: readonly UpdateState[] = UPDATE_STATES.slice(1, 7);

/** Specs of versions published as releases 1, 2, 3 ... */
export const versions = <const N extends readonly string[]>(...names: N) =>
  names.map((name, i) => [name, i + 1] as const) as unknown as {
    readonly [K in keyof N]: ReleaseSpec;
  };

/** A release to publish: version, release number, publish options. */
export type ReleaseSpec = readonly [
  version: string,
  release: number,
  extra?: Partial<PublishOptions>,
];

/** What useUpdateFixture fills in before each test (or once, with `once`). */
export interface UpdateFixtureHooks<S extends readonly ReleaseSpec[]> {
  readonly f: UpdateFixture;
  /** The published releases, in the order given. */
  readonly r: { readonly [K in keyof S]: Release };
}

/**
 * Registers hooks that give each test a fresh fixture with `releases` published, and also placed
 * in versions/ when `place`, with the `links` made (`once`: one fixture for the whole file, its recorded states cleared
 * before each test).
 */
export function useUpdateFixture<const S extends readonly ReleaseSpec[]>(
  releases: S,
  options: {
    readonly place?: boolean;
    readonly once?: boolean;
    /** Versions `current` and `previous` point at once the releases are placed. */
    readonly links?: { readonly current?: string; readonly previous?: string };
  } = {},
): UpdateFixtureHooks<S> {
  const hooks = { r: [] } as unknown as { f: UpdateFixture; r: Release[] };
  const setUp = async () => {
    hooks.f = await createUpdateFixture();
    hooks.r = [];
    for (const [version, release, extra] of releases)
      hooks.r.push(await hooks.f.release(version, release, extra));
    if (options.place) for (const r of hooks.r) await hooks.f.place(r);
    const { current, previous } = options.links ?? {};
    if (current) await symlink(hooks.f.paths.linkTarget(current), hooks.f.paths.current);
    if (previous) await symlink(hooks.f.paths.linkTarget(previous), hooks.f.paths.previous);
  };
  if (options.once) {
    beforeAll(setUp);
    afterAll(() => hooks.f.cleanup());
    beforeEach(() => {
      hooks.f.states.length = 0;
    });
  } else {
    beforeEach(setUp);
    afterEach(() => hooks.f.cleanup());
  }
  return hooks as unknown as UpdateFixtureHooks<S>;
}
