import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventLog } from '../../../agent/core/events.js';
import { systemClock } from '../../../agent/core/clock.js';
import { resolveManifest, storeIndexGetter } from '../../../edge/models/chunk-index.js';
import { DEFAULT_FETCH } from '../../../edge/models/fetcher.js';
import { DEFAULT_HEALTH } from '../../../edge/models/health.js';
import {
  parseEnvelope,
  parseSignedManifest,
  type SignedManifest,
} from '../../../edge/models/manifest.js';
import { publishModel, type PublishOptions } from '../../../edge/models/publish.js';
import { DEFAULT_RELOAD } from '../../../edge/models/reload.js';
import { generateKeyPair, readTrustedKeys } from '../../../edge/models/signing.js';
import { ModelPaths, readState } from '../../../edge/models/state.js';
import {
  applyModelUpdate,
  type ApplyDeps,
  type ApplyOptions,
  type ApplyResult,
} from '../../../edge/models/updater.js';
import { silentLogger } from '../log-sink.js';
import { StoreServer, type StoreServerOptions } from './store-server.js';

/** A temp directory with a key pair, a store directory, a model root and a store server. */
export interface Harness {
  readonly tmp: string;
  readonly store: string;
  readonly root: string;
  readonly keyPath: string;
  readonly pubPath: string;
  server: StoreServer;
  readonly events: EventLog;
  /** Publishes a model directory as `name` (default "detector"). */
  publish(
    from: string,
    version: string,
    release: number,
    extra?: Partial<PublishOptions>,
  ): Promise<void>;
  /** Restarts the server with other options (faults, no ranges). */
  serve(opts?: Omit<StoreServerOptions, 'root'>): Promise<string>;
  /** Applies the latest manifest to `root`. */
  apply(overrides?: Partial<ApplyOptions>, deps?: Partial<ApplyDeps>): Promise<ApplyResult>;
  /** Asserts-friendly view: the version `current` points at and whether its files match its manifest. */
  current(): Promise<{ version: string | undefined; verified: boolean }>;
  cleanup(): Promise<void>;
}

/** The options every harness update starts from: its store, its key, no trial window, 2 retries. */
export async function harnessApplyOptions(
  serverUrl: string,
  dir: string,
  publicKeyPath: string,
): Promise<ApplyOptions> {
  return {
    name: 'detector',
    source: `${serverUrl}detector/`,
    dir,
    trust: await readTrustedKeys([publicKeyPath]),
    health: { ...DEFAULT_HEALTH, trialWindowMs: 0 },
    reload: DEFAULT_RELOAD,
    fetch: { ...DEFAULT_FETCH, retries: 2, stallTimeoutMs: 2000 },
    clockSkewMs: 0,
    maxBytes: 1024 ** 4,
    maxManifestBytes: 64 * 1024 ** 2,
  };
}

/** The `gpulse model apply` arguments that point the CLI at a harness's store, model root and key. */
export function harnessApplyArgs(h: Pick<Harness, 'server' | 'root' | 'pubPath'>): string[] {
  return [
    'apply',
    '--name',
    'detector',
    '--source',
    `${h.server.url}detector/`,
    '--dir',
    h.root,
    '--trust',
    h.pubPath,
  ];
}

/** SHA-256 of a file, hex. */
export async function fileSha256(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** Checks every file of a manifest in a directory. */
export async function matchesManifest(dir: string, m: SignedManifest): Promise<boolean> {
  for (const f of m.files) {
    const sha = await fileSha256(join(dir, f.path)).catch(() => '');
    if (sha !== f.sha256) return false;
  }
  return true;
}

/** Creates a harness in a fresh temp directory (`base` overrides where the model root lives). */
export async function createHarness(base?: string): Promise<Harness> {
  const tmp = await mkdtemp(join(tmpdir(), 'gpulse-models-'));
  const keys = await generateKeyPair(join(tmp, 'keys'));
  const store = join(tmp, 'store');
  const root = base ?? join(tmp, 'device', 'detector');
  const events = new EventLog({ clock: systemClock, log: silentLogger() });
  const h: Harness = {
    tmp,
    store,
    root,
    keyPath: keys.privatePath,
    pubPath: keys.publicPath,
    server: new StoreServer({ root: store }),
    events,
    async publish(from, version, release, extra = {}) {
      await publishModel({
        name: 'detector',
        version,
        release,
        from,
        store,
        keyPath: keys.privatePath,
        expiresInMs: 86_400_000,
        ...extra,
      });
    },
    async serve(opts = {}) {
      await h.server.stop();
      h.server = new StoreServer({ root: store, ...opts });
      return h.server.start();
    },
    async apply(overrides = {}, deps = {}) {
      return applyModelUpdate(
        {
          ...(await harnessApplyOptions(h.server.url, root, keys.publicPath)),
          ...overrides,
        },
        { log: silentLogger(), events, ...deps },
      );
    },
    async current() {
      const link = await readlink(join(root, 'current')).catch(() => undefined);
      if (!link) return { version: undefined, verified: false };
      const version = link.replace(/^versions\//, '');
      const text = await readFile(join(root, 'manifests', `${version}.json`), 'utf8').catch(
        () => undefined,
      );
      if (!text) return { version, verified: false };
      const m = parseSignedManifest(parseEnvelope(text).signed);
      const state = await readState(new ModelPaths(root), 'detector').catch(() => undefined);
      const committed = state?.current?.version === version;
      return { version, verified: committed && (await matchesManifest(join(root, link), m)) };
    },
    async cleanup() {
      await h.server.stop();
      await rm(tmp, { recursive: true, force: true });
    },
  };
  await h.server.start();
  return h;
}

/** A release's signed manifest from the store, resolved through its chunk index, with the bytes of each index object read. */
async function loadRelease(store: string, release: number) {
  const objects = new Map<string, number>();
  const get = storeIndexGetter(join(store, 'detector'));
  const m = await resolveManifest(
    parseSignedManifest(
      parseEnvelope(await readFile(join(store, 'detector', 'manifests', `${release}.json`), 'utf8'))
        .signed,
    ),
    async (wanted) => {
      const got = await get(wanted);
      for (const [sha, data] of got) objects.set(sha, data.length);
      return got;
    },
  );
  return { m, objects };
}

/** SHA-256 names of the chunk-index objects (root and groups) of a model's release in the store. */
export async function indexObjects(store: string, release: number): Promise<Set<string>> {
  return new Set((await loadRelease(store, release)).objects.keys());
}

/**
 * The chunks a model's release `to` lists that release `from` does not (read from the store's
 * signed manifests and chunk indexes): what an update from `from` to `to` must download, as bytes
 * and distinct chunks, and the bytes of the index objects (root, groups) `from` does not share.
 */
export async function chunkDelta(
  store: string,
  from: number,
  to: number,
): Promise<{ bytes: number; chunks: number; indexBytes: number }> {
  const load = (release: number) => loadRelease(store, release);
  const [old, next] = [await load(from), await load(to)];
  const have = new Set(old.m.files.flatMap((f) => f.chunks.map(([sha]) => sha)));
  const fresh = new Map<string, number>();
  for (const f of next.m.files)
    for (const [sha, n] of f.chunks) if (!have.has(sha)) fresh.set(sha, n);
  let bytes = 0;
  for (const n of fresh.values()) bytes += n;
  let indexBytes = 0;
  for (const [sha, n] of next.objects) if (!old.objects.has(sha)) indexBytes += n;
  return { bytes, chunks: fresh.size, indexBytes };
}
