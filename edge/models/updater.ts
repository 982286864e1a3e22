import { lstat, mkdir, readdir, rename, rm, stat, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { humanBytes } from '../../agent/progress-line.js';
import type { EventLog, EventSeverity } from '../../agent/events.js';
import type { SpawnFn } from '../../agent/process.js';
import {
  assemble,
  readLocalManifest,
  TaintedWorkDirError,
  verifyTree,
  VerifyError,
  workDirProblems,
  type AssemblyStats,
  type ChunkSource,
} from './assemble.js';
import {
  isDiskFull,
  readLinkIfExists,
  swapSymlink,
  fsyncDir,
  writeFileDurable,
  writeFileReplace,
} from './durable-fs.js';
import {
  IndexCache,
  indexObjectsOf,
  resolveManifest,
  type ResolvedManifest,
} from './chunk-index.js';
import { ChunkFetcher, FetchError, type FetchSettings } from './fetcher.js';
import { containerBaseline } from './trial.js';
import {
  HealthError,
  healthEnv,
  runGoldenCheck,
  runHealthCommand,
  waitHealthy,
  type HealthSettings,
} from './health.js';
import { acquireLock } from './lock.js';
import { manifestDigest, manifestSize, ManifestError, type SignedManifest } from './manifest.js';
import { hasReload, runReloadHooks, type ReloadSettings } from './reload.js';
import { verifyManifest, type TrustedKey } from './signing.js';
import {
  ModelPaths,
  readState,
  TERMINAL_STATES,
  WORK_PREFIX,
  writeState,
  type InstalledRef,
  type ModelState,
  type UpdateRecord,
  type UpdateState,
} from './state.js';
import { sourceUrls } from './store-layout.js';
import { runTrial } from './trial.js';

/** Where a crash test may pause the process (the SIGKILL matrix kills it there). */
export type PausePoint =
  'downloading' | 'assembled' | 'verified' | 'activating' | 'activated' | 'trial' | 'rolling_back';

/** Every pause point, in the order an update passes them. */
export const PAUSE_POINTS: readonly PausePoint[] = [
  'downloading',
  'assembled',
  'verified',
  'activating',
  'activated',
  'trial',
  'rolling_back',
];

/** Everything one update of one model needs. */
export interface ApplyOptions {
  readonly name: string;
  readonly source: string;
  readonly dir: string;
  readonly trust: readonly TrustedKey[];
  readonly health: HealthSettings;
  readonly reload: ReloadSettings;
  readonly fetch: FetchSettings;
  /** Tolerated clock skew for the expiry check. */
  readonly clockSkewMs: number;
  /** A manifest describing more bytes than this is refused. */
  readonly maxBytes: number;
  readonly maxManifestBytes: number;
}

/** Progress of an update, for logs, `status`, metrics and MQTT. */
export interface UpdateProgress {
  readonly model: string;
  readonly state: UpdateState;
  readonly version?: string;
  readonly release?: number;
  readonly bytes_total: number;
  readonly bytes_to_download: number;
  readonly bytes_downloaded: number;
  readonly bytes_reused: number;
  readonly chunks_downloaded: number;
  readonly chunks_reused: number;
  readonly done_bytes: number;
  readonly percent: number;
  readonly rate_bytes_per_second: number;
  readonly updated_at: string;
}

/** Injected I/O of an update. */
export interface ApplyDeps {
  readonly log: Logger;
  readonly events?: EventLog;
  readonly now?: () => number;
  readonly docker?: () => Docker;
  readonly spawnFn?: SpawnFn;
  /** Test hook: awaited at each pause point. */
  readonly pause?: (point: PausePoint) => Promise<void>;
  readonly onProgress?: (p: UpdateProgress) => void;
  readonly onState?: (state: UpdateState, update: UpdateRecord | undefined) => void;
  readonly signal?: AbortSignal;
}

/** How an update ended. */
export type ApplyOutcome = 'committed' | 'up_to_date' | 'rolled_back' | 'failed' | 'refused';

/** Result of one apply. */
export interface ApplyResult {
  readonly outcome: ApplyOutcome;
  readonly model: string;
  readonly version?: string;
  readonly release?: number;
  /** Stable reason label when not committed/up to date. */
  readonly reason?: string;
  readonly message: string;
  readonly stats?: AssemblyStats;
}

/** Outcome error used internally to unwind to the terminal state. */
class Stop extends Error {
  constructor(readonly result: ApplyResult) {
    super(result.message);
  }
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Applies the latest manifest of a model source to a model root, resuming any interrupted update. */
export async function applyModelUpdate(opts: ApplyOptions, deps: ApplyDeps): Promise<ApplyResult> {
  const paths = new ModelPaths(opts.dir);
  for (const d of [paths.root, paths.versions, paths.manifests, paths.quarantine]) {
    await mkdir(d, { recursive: true });
    // Every write goes below these: a link here would carry them out of the model root.
    const s = await lstat(d);
    if (d !== paths.root && !s.isDirectory())
      throw new Error(
        `refusing to update: ${d} is a symbolic link or not a directory; the updater writes only inside the model root (${paths.root}); make it a plain directory`,
      );
  }
  const release = await acquireLock(paths.lock);
  try {
    const run = new UpdateRun(opts, deps, paths, await readState(paths, opts.name));
    return await run.run();
  } finally {
    await release();
  }
}

class UpdateRun {
  private readonly now: () => number;
  private readonly log: Logger;
  private lastProgressWrite = 0;
  private lastProgressLog = 0;
  private downloadStart = 0;
  private stats: AssemblyStats | undefined;

  constructor(
    private readonly opts: ApplyOptions,
    private readonly deps: ApplyDeps,
    private readonly paths: ModelPaths,
    private state: ModelState,
  ) {
    this.now = deps.now ?? Date.now;
    this.log = deps.log.child({ model: opts.name });
  }

  async run(): Promise<ApplyResult> {
    try {
      const u = this.state.update;
      if (u && !TERMINAL_STATES.has(u.state) && u.state !== 'downloading')
        return await this.resume(u);
      return await this.checkAndUpdate();
    } catch (err) {
      if (err instanceof Stop) return err.result;
      throw err;
    }
  }

  // ---- resume after a crash -------------------------------------------------------------------

  private async resume(u: UpdateRecord): Promise<ApplyResult> {
    this.log.info(
      { state: u.state, version: u.version, release: u.release },
      'resuming an interrupted update',
    );
    const manifest = await readLocalManifest(this.paths.manifest(u.version));
    if (!manifest || manifestDigest(manifest) !== u.manifest_sha256) {
      if (u.state === 'rolling_back' || u.state === 'activated' || u.state === 'trial')
        return this.rollback(u, 'manifest_lost', 'the manifest of the version on trial is missing');
      return this.fail(
        u,
        'manifest_lost',
        'the manifest of the interrupted update is missing; it will be fetched again',
        false,
      );
    }
    switch (u.state) {
      case 'assembled':
        await this.install(u, manifest);
        return this.activate(u, manifest);
      case 'verified':
        return this.activate(u, manifest);
      case 'activated':
      case 'trial': {
        const next = await this.setUpdate({ ...u, trial_starts: u.trial_starts + 1 });
        if (next.trial_starts > this.opts.health.maxTrialStarts) {
          return this.rollback(
            next,
            'trial_restarts',
            `the update was interrupted ${next.trial_starts - 1} times during its trial (limit ${this.opts.health.maxTrialStarts})`,
          );
        }
        // Redo the swap: the crash may have happened between the two renames.
        await this.links(u.version, u.from);
        return this.healthAndTrial(next, manifest);
      }
      case 'rolling_back':
        return this.rollback(u, u.reason ?? 'health_failed', 'finishing an interrupted rollback');
      case 'idle':
      case 'downloading':
      case 'committed':
      case 'rolled_back':
      case 'failed':
        return this.checkAndUpdate();
    }
  }

  // ---- check the source -----------------------------------------------------------------------

  private refuse(reason: string, message: string, m?: SignedManifest): never {
    this.log.warn({ reason, version: m?.version, release: m?.release }, message);
    throw new Stop({
      outcome: 'refused',
      model: this.opts.name,
      version: m?.version,
      release: m?.release,
      reason,
      message,
    });
  }

  private async checkAndUpdate(): Promise<ApplyResult> {
    const { opts } = this;
    const { base, manifest: manifestUrl } = sourceUrls(opts.source);
    const fetcher = new ChunkFetcher(base, opts.fetch, this.log);
    let text: string;
    try {
      text = await fetcher.getText(manifestUrl, opts.maxManifestBytes, this.deps.signal);
    } catch (err) {
      const reason = err instanceof FetchError ? `manifest_${err.reason}` : 'manifest_unreachable';
      this.refuse(reason, `cannot fetch ${manifestUrl.href}: ${(err as Error).message}`);
    }
    let m: SignedManifest;
    try {
      m = verifyManifest(text, opts.trust).signed;
    } catch (err) {
      if (err instanceof ManifestError) this.refuse(err.reason, err.message);
      throw err;
    }
    const digest = manifestDigest(m);
    const now = this.now();
    if (m.model !== opts.name)
      this.refuse('wrong_model', `the manifest is for model ${m.model}, not ${opts.name}`, m);
    if (Date.parse(m.expires) + opts.clockSkewMs <= now)
      this.refuse(
        'expired',
        `manifest release ${m.release} expired at ${m.expires}: the store is stale or frozen; the publisher must publish a new release`,
        m,
      );
    const size = manifestSize(m);
    if (size > opts.maxBytes)
      this.refuse(
        'too_large',
        `the model is ${size} bytes, above the limit of ${opts.maxBytes} (maxBytes)`,
        m,
      );
    const cur = this.state.current;
    if (cur && cur.manifest_sha256 === digest) {
      return {
        outcome: 'up_to_date',
        model: opts.name,
        version: m.version,
        release: m.release,
        message: `${m.version} (release ${m.release}) is already current`,
      };
    }
    if (this.state.quarantined.some((q) => q.release === m.release))
      this.refuse(
        'quarantined',
        `release ${m.release} (${m.version}) was quarantined earlier; publish a new release`,
        m,
      );
    const u = this.state.update;
    const retry =
      u !== undefined &&
      u.manifest_sha256 === digest &&
      (u.state === 'downloading' || u.state === 'failed');
    if (
      m.release < this.state.highest_release ||
      (m.release === this.state.highest_release && !retry)
    ) {
      this.refuse(
        'release_not_newer',
        `manifest release ${m.release} is not above the highest release installed here (${this.state.highest_release}): refused as a rollback attack; a downgrade must be published as a new release`,
        m,
      );
    }
    if (cur && m.version === cur.version) {
      const installed = await readLocalManifest(this.paths.manifest(cur.version));
      if (installed && sameFiles(installed, m)) return this.refresh(m, digest, text);
      this.refuse(
        'version_reused',
        `version ${m.version} is installed with different content; publish changed files under a new version`,
        m,
      );
    }
    return this.download(m, digest, text, fetcher, retry ? u : undefined);
  }

  /** Same files, newer release (re-signed to extend expiry): record it, nothing to swap. */
  private async refresh(m: SignedManifest, digest: string, text: string): Promise<ApplyResult> {
    await writeFileDurable(this.paths.manifest(m.version), text);
    const ref: InstalledRef = {
      version: m.version,
      release: m.release,
      manifest_sha256: digest,
      at: iso(this.now()),
    };
    this.state = {
      ...this.state,
      highest_release: Math.max(this.state.highest_release, m.release),
      current: ref,
    };
    await writeState(this.paths, this.state);
    this.log.info(
      { version: m.version, release: m.release, expires: m.expires },
      'manifest refreshed (same files, new release)',
    );
    return {
      outcome: 'committed',
      model: this.opts.name,
      version: m.version,
      release: m.release,
      message: `${m.version} refreshed to release ${m.release}`,
    };
  }

  // ---- download and assemble ------------------------------------------------------------------

  private async download(
    m: SignedManifest,
    digest: string,
    text: string,
    fetcher: ChunkFetcher,
    previousAttempt: UpdateRecord | undefined,
  ): Promise<ApplyResult> {
    const { paths } = this;
    const partial = paths.partial(m.version);
    await this.cleanStalePartials(m.version);
    if (!previousAttempt) await rm(partial, { recursive: true, force: true });
    await this.checkSpace(m, partial);
    await writeFileDurable(paths.manifest(m.version), text);
    const now = iso(this.now());
    let u: UpdateRecord = {
      state: 'downloading',
      version: m.version,
      release: m.release,
      manifest_sha256: digest,
      from: this.state.current,
      from_previous: this.state.previous,
      started_at: previousAttempt?.started_at ?? now,
      updated_at: now,
      trial_starts: 0,
      bytes_total: manifestSize(m),
      bytes_to_download: 0,
      bytes_downloaded: 0,
      bytes_reused: 0,
      chunks_downloaded: 0,
      chunks_reused: 0,
    };
    this.state = {
      ...this.state,
      highest_release: Math.max(this.state.highest_release, m.release),
    };
    u = await this.setUpdate(u);
    this.emit(
      'model.update_started',
      'info',
      `updating ${this.opts.name} to ${m.version} (release ${m.release})`,
      u,
      {
        from: u.from?.version ?? null,
        resumed: previousAttempt !== undefined,
      },
    );
    this.downloadStart = this.now();
    let stats: AssemblyStats;
    const indexCache = new IndexCache(
      paths.index,
      new ChunkFetcher(fetcher.base, { ...this.opts.fetch, transport: 'chunks' }, this.log),
      this.deps.signal,
    );
    try {
      if (previousAttempt) {
        const problems = await workDirProblems(partial);
        if (problems.length > 0) throw new TaintedWorkDirError(partial, problems);
      }
      const resolved = await resolveManifest(m, indexCache.get);
      stats = await assemble({
        manifest: resolved,
        partialDir: partial,
        sources: await this.sources(m.version),
        fetcher,
        signal: this.deps.signal,
        onProgress: (s, done) => this.progress(u, s, done),
        onHalfway: () => this.pause('downloading'),
      });
    } catch (err) {
      if (err instanceof TaintedWorkDirError) return this.taintedWorkDir(u, err, false);
      if (isDiskFull(err)) {
        await rm(partial, { recursive: true, force: true });
        return this.fail(
          u,
          'disk_full',
          `no space left on ${paths.root} while assembling ${m.version}; free space and retry (needs about ${manifestSize(m)} bytes)`,
          false,
        );
      }
      if (err instanceof FetchError)
        return this.fail(
          u,
          err.reason,
          `download of ${m.version} failed: ${err.message}; the next attempt resumes where this one stopped`,
          false,
        );
      if (err instanceof ManifestError)
        return this.fail(
          u,
          err.reason,
          `the chunk index of ${m.version} is inconsistent: ${err.message}; the publisher must re-publish`,
          false,
        );
      throw err;
    }
    stats.indexBytesDownloaded = indexCache.bytesDownloaded;
    stats.bytesDownloaded += indexCache.bytesDownloaded;
    this.stats = stats;
    try {
      u = await this.setUpdate({
        ...u,
        state: 'assembled',
        bytes_to_download: stats.bytesToDownload,
        bytes_downloaded: stats.bytesDownloaded,
        bytes_reused: stats.bytesReused,
        chunks_downloaded: stats.chunksDownloaded,
        chunks_reused: stats.chunksReused,
      });
    } catch (err) {
      if (!isDiskFull(err)) throw err;
      await rm(partial, { recursive: true, force: true });
      return this.fail(
        u,
        'disk_full',
        `no space left on ${paths.root} for the state journal; free space and retry`,
        false,
      );
    }
    this.log.info(
      {
        version: m.version,
        bytes_total: stats.bytesTotal,
        bytes_downloaded: stats.bytesDownloaded,
        bytes_reused: stats.bytesReused,
        chunks_resumed: stats.chunksResumed,
        retries: stats.retries,
        fallback_to_chunks: fetcher.usedFallback,
        seconds: (this.now() - this.downloadStart) / 1000,
      },
      `assembled ${m.version}: downloaded ${fmtBytes(stats.bytesDownloaded)}, reused ${fmtBytes(stats.bytesReused)} of ${fmtBytes(stats.bytesTotal)}`,
    );
    await this.pause('assembled');
    await this.install(u, m);
    return this.activate(u, m);
  }

  /**
   * The work directory holds links or files the updater never writes (planted, or another tool
   * writing under the model root): it is moved aside into quarantine/ untouched and this attempt
   * fails; the next one starts a fresh work directory. Nothing is written through it.
   */
  private async taintedWorkDir(
    u: UpdateRecord,
    err: TaintedWorkDirError,
    stop: boolean,
  ): Promise<ApplyResult> {
    const dest = join(this.paths.quarantine, `.workdir-${u.version}-${this.now()}`);
    await rename(err.dir, dest).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    });
    await fsyncDir(this.paths.quarantine).catch(() => undefined);
    this.log.error(
      { version: u.version, problems: err.problems, moved_to: dest },
      'the work directory held links or files the updater never writes; moved to quarantine, nothing written through it',
    );
    const message = `the work directory of ${u.version} held what the updater never writes (${err.problems.join('; ')}); it was moved to ${dest} unused and the next attempt starts afresh; check what else writes under ${this.paths.root}`;
    if (stop) return this.fail(u, 'workdir_tainted', message, true);
    return this.fail(u, 'workdir_tainted', message, false);
  }

  private async checkSpace(m: SignedManifest, partial: string): Promise<void> {
    let present = 0;
    for (const f of m.files)
      present += (await lstat(join(partial, f.path)).catch(() => undefined))?.size ?? 0;
    const need = Math.max(0, manifestSize(m) - present);
    const fs = await statfs(this.paths.root);
    const free = fs.bavail * fs.bsize;
    // Keep a margin: the filesystem needs room for metadata and the state journal too.
    if (free < need + Math.max(1024 * 1024, need * 0.02)) {
      this.refuse(
        'disk_full',
        `not enough space on ${this.paths.root}: ${m.version} needs ${fmtBytes(need)} more, ${fmtBytes(free)} free; free space or remove old versions`,
        m,
      );
    }
  }

  /** Verifies the assembled files and moves them into versions/<v>. */
  private async install(u: UpdateRecord, m: SignedManifest): Promise<void> {
    const { paths } = this;
    const partial = paths.partial(m.version);
    const final = paths.version(m.version);
    const partialExists = await lstat(partial).then(
      () => true,
      () => false,
    );
    if (partialExists) {
      const problems = await workDirProblems(partial);
      if (problems.length > 0)
        await this.taintedWorkDir(u, new TaintedWorkDirError(partial, problems), true);
    }
    try {
      await verifyTree(partialExists ? partial : final, m);
    } catch (err) {
      if (!(err instanceof VerifyError) && (err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw err;
      await this.quarantineDir(partialExists ? partial : final, m);
      await this.recordQuarantine(m, 'verify_failed', (err as Error).message);
      await this.fail(
        u,
        'verify_failed',
        `${m.version} failed verification: ${(err as Error).message}`,
        true,
      );
    }
    if (partialExists) {
      await pruneExtras(partial, m);
      if (
        await stat(final).then(
          () => true,
          () => false,
        )
      ) {
        // Same version name installed before (a re-released old version): replace it whole.
        const old = paths.oldCopy(m.version);
        await rename(final, old);
        await rename(partial, final);
        await rm(old, { recursive: true, force: true });
      } else {
        await rename(partial, final);
      }
      await fsyncDir(paths.versions);
    }
    await this.setUpdate({ ...u, state: 'verified' });
    await this.pause('verified');
  }

  // ---- activate, health, trial ----------------------------------------------------------------

  private async activate(u: UpdateRecord, m: SignedManifest): Promise<ApplyResult> {
    const { health } = this.opts;
    const dir = this.paths.version(m.version);
    const golden = m.health?.golden;
    if (golden && health.goldenCommand) {
      try {
        await runGoldenCheck(
          golden,
          dir,
          health.goldenCommand,
          health.goldenTimeoutMs,
          healthEnv(this.opts.name, m.version, dir),
          this.deps.spawnFn,
        );
      } catch (err) {
        const reason = err instanceof HealthError ? err.reason : 'golden_failed';
        await this.quarantineDir(dir, m);
        await this.recordQuarantine(m, reason, (err as Error).message);
        return this.fail(
          u,
          reason,
          `${m.version} failed the golden-input check before activation: ${(err as Error).message}`,
          false,
        );
      }
    } else if (golden) {
      this.log.warn(
        { version: m.version },
        'the manifest names a golden-input check but no goldenCommand is configured; skipped',
      );
    }
    if (health.container && this.deps.docker) {
      // A trial cannot watch a container that is not there: fail before touching `current`.
      try {
        await containerBaseline(this.deps.docker(), health.container);
      } catch (err) {
        return this.fail(u, 'container_missing', (err as Error).message, false);
      }
    }
    await this.links(m.version, u.from);
    const next = await this.setUpdate({ ...u, state: 'activated', trial_starts: 1 });
    this.log.info({ version: m.version, from: u.from?.version }, `activated ${m.version}`);
    await this.pause('activated');
    return this.healthAndTrial(next, m);
  }

  /** Points previous at the version we came from and current at the new one (idempotent). */
  private async links(version: string, from: InstalledRef | undefined): Promise<void> {
    if (from) await swapSymlink(this.paths.previous, this.paths.linkTarget(from.version));
    await this.pause('activating');
    await swapSymlink(this.paths.current, this.paths.linkTarget(version));
  }

  private async healthAndTrial(u: UpdateRecord, m: SignedManifest): Promise<ApplyResult> {
    const { health, reload } = this.opts;
    const dir = this.paths.current;
    try {
      if (hasReload(reload)) {
        const done = await runReloadHooks(reload, this.docker());
        this.log.info({ hooks: done }, 'reload hooks done');
      }
      if (health.command)
        await runHealthCommand(
          health.command,
          health.commandTimeoutMs,
          healthEnv(this.opts.name, m.version, dir),
          this.deps.spawnFn,
        );
      if (health.url)
        await waitHealthy(
          health.url,
          health.urlTimeoutMs,
          Math.min(1000, health.probeIntervalMs),
          this.now,
        );
    } catch (err) {
      const reason = err instanceof HealthError ? err.reason : 'reload_failed';
      return this.rollback(u, reason, (err as Error).message);
    }
    const windowMs = Math.max(health.trialWindowMs, (m.health?.trial_seconds ?? 0) * 1000);
    const t = await this.setUpdate({ ...u, state: 'trial', trial_deadline: this.now() + windowMs });
    if (windowMs > 0)
      this.log.info({ version: m.version, seconds: windowMs / 1000 }, 'trial window started');
    await this.pause('trial');
    try {
      await runTrial({
        health,
        windowMs,
        events: this.deps.events,
        // Without a Docker client the container is still watched through the agent's events.
        docker: this.deps.docker,
        log: this.log,
        signal: this.deps.signal,
      });
    } catch (err) {
      if (this.deps.signal?.aborted) {
        // Shutting down: leave the trial state; the next start counts a trial start and resumes it.
        throw new Stop({
          outcome: 'failed',
          model: this.opts.name,
          version: m.version,
          release: m.release,
          reason: 'interrupted',
          message: 'interrupted during the trial; resumes on the next start',
        });
      }
      const reason = err instanceof HealthError ? err.reason : 'trial_failed';
      return this.rollback(t, reason, (err as Error).message);
    }
    return this.commit(t, m);
  }

  private docker(): () => Docker {
    const d = this.deps.docker;
    if (!d)
      throw new HealthError(
        'docker_unavailable',
        'a container is configured but no Docker client is available',
      );
    return d;
  }

  private async commit(u: UpdateRecord, m: SignedManifest): Promise<ApplyResult> {
    const ref: InstalledRef = {
      version: m.version,
      release: m.release,
      manifest_sha256: u.manifest_sha256,
      at: iso(this.now()),
    };
    this.state = { ...this.state, current: ref, previous: u.from ?? this.state.previous };
    const done = await this.setUpdate({ ...u, state: 'committed' });
    await this.gc();
    this.emit(
      'model.update_committed',
      'info',
      `${this.opts.name} ${m.version} (release ${m.release}) committed`,
      done,
      {
        from: u.from?.version ?? null,
        bytes_downloaded: done.bytes_downloaded,
        bytes_reused: done.bytes_reused,
      },
    );
    return {
      outcome: 'committed',
      model: this.opts.name,
      version: m.version,
      release: m.release,
      message: `${m.version} (release ${m.release}) committed`,
      stats: this.stats,
    };
  }

  private async rollback(u: UpdateRecord, reason: string, message: string): Promise<ApplyResult> {
    let r = u;
    if (u.state !== 'rolling_back')
      r = await this.setUpdate({ ...u, state: 'rolling_back', reason });
    this.log.warn(
      { version: u.version, reason, to: u.from?.version },
      `rolling back ${u.version}: ${message}`,
    );
    await this.pause('rolling_back');
    if (u.from) await swapSymlink(this.paths.current, this.paths.linkTarget(u.from.version));
    else await unlink(this.paths.current).catch(() => undefined);
    if (u.from_previous)
      await swapSymlink(this.paths.previous, this.paths.linkTarget(u.from_previous.version));
    else await unlink(this.paths.previous).catch(() => undefined);
    await fsyncDir(this.paths.root);
    if (hasReload(this.opts.reload)) {
      // Best effort: the files are back either way; a failed reload is reported, not fatal.
      await runReloadHooks(this.opts.reload, this.deps.docker ?? noDocker).catch((err: unknown) =>
        this.log.error(
          { err: (err as Error).message },
          'reload after rollback failed; the serving process may still run the refused version',
        ),
      );
    }
    const dir = this.paths.version(u.version);
    const manifest = await readLocalManifest(this.paths.manifest(u.version));
    await this.quarantineDir(dir, manifest ?? { version: u.version, release: u.release });
    this.state = { ...this.state, current: u.from, previous: u.from_previous };
    await this.recordQuarantine({ version: u.version, release: u.release }, reason, message);
    const done = await this.setUpdate({ ...r, state: 'rolled_back', reason });
    this.emit(
      'model.update_rolled_back',
      'warning',
      `${this.opts.name} ${u.version} rolled back to ${u.from?.version ?? 'nothing'}: ${message}`,
      done,
      {
        reason,
        to: u.from?.version ?? null,
      },
    );
    return {
      outcome: 'rolled_back',
      model: this.opts.name,
      version: u.version,
      release: u.release,
      reason,
      message: `${u.version} rolled back to ${u.from?.version ?? 'no version'}: ${message}`,
      stats: this.stats,
    };
  }

  private async fail(u: UpdateRecord, reason: string, message: string, stop: true): Promise<never>;
  private async fail(
    u: UpdateRecord,
    reason: string,
    message: string,
    stop: false,
  ): Promise<ApplyResult>;
  private async fail(
    u: UpdateRecord,
    reason: string,
    message: string,
    stop: boolean,
  ): Promise<ApplyResult> {
    const done = await this.setUpdate({ ...u, state: 'failed', reason });
    this.emit(
      'model.update_failed',
      'warning',
      `${this.opts.name} update to ${u.version} failed: ${message}`,
      done,
      { reason },
    );
    const result: ApplyResult = {
      outcome: 'failed',
      model: this.opts.name,
      version: u.version,
      release: u.release,
      reason,
      message,
      stats: this.stats,
    };
    if (stop) throw new Stop(result);
    return result;
  }

  // ---- bookkeeping ----------------------------------------------------------------------------

  private async setUpdate(u: UpdateRecord): Promise<UpdateRecord> {
    const next: UpdateRecord = { ...u, updated_at: iso(this.now()) };
    this.state = { ...this.state, update: next };
    await writeState(this.paths, this.state);
    this.deps.onState?.(next.state, next);
    await this.writeProgress(next, undefined, true);
    return next;
  }

  private progress(u: UpdateRecord, s: AssemblyStats, done: number): void {
    const now = this.now();
    const p = this.makeProgress(u, s, done, now);
    this.deps.onProgress?.(p);
    if (now - this.lastProgressLog >= 5000 || done === s.bytesTotal) {
      this.lastProgressLog = now;
      this.log.info(
        {
          version: u.version,
          bytes_downloaded: p.bytes_downloaded,
          bytes_to_download: s.bytesToDownload,
          percent: p.percent,
          rate_bytes_per_second: p.rate_bytes_per_second,
        },
        `downloading ${u.version}: ${downloadLine(p)}`,
      );
    }
    if (now - this.lastProgressWrite >= 1000) {
      this.lastProgressWrite = now;
      void writeFileReplace(this.paths.progress, `${JSON.stringify(p)}\n`).catch(() => undefined);
    }
  }

  private makeProgress(
    u: UpdateRecord,
    s: AssemblyStats | undefined,
    done: number | undefined,
    now: number,
  ): UpdateProgress {
    const total = s?.bytesTotal ?? u.bytes_total;
    const downloaded = s?.bytesDownloaded ?? u.bytes_downloaded;
    const elapsed = Math.max(1, now - (this.downloadStart || now)) / 1000;
    const d = done ?? (TERMINAL_STATES.has(u.state) || u.state !== 'downloading' ? total : 0);
    return {
      model: this.opts.name,
      state: u.state,
      version: u.version,
      release: u.release,
      bytes_total: total,
      bytes_to_download: s?.bytesToDownload ?? u.bytes_to_download,
      bytes_downloaded: downloaded,
      bytes_reused: s?.bytesReused ?? u.bytes_reused,
      chunks_downloaded: s?.chunksDownloaded ?? u.chunks_downloaded,
      chunks_reused: s?.chunksReused ?? u.chunks_reused,
      done_bytes: d,
      percent: downloadPercent(downloaded, s?.bytesToDownload ?? u.bytes_to_download),
      rate_bytes_per_second: this.downloadStart ? Math.round(downloaded / elapsed) : 0,
      updated_at: iso(now),
    };
  }

  private async writeProgress(
    u: UpdateRecord,
    s: AssemblyStats | undefined,
    force: boolean,
  ): Promise<void> {
    const p = this.makeProgress(u, s, undefined, this.now());
    this.deps.onProgress?.(p);
    if (force)
      await writeFileReplace(this.paths.progress, `${JSON.stringify(p)}\n`).catch(() => undefined);
  }

  private emit(
    type: string,
    severity: EventSeverity,
    message: string,
    u: UpdateRecord,
    data: Record<string, unknown>,
  ): void {
    this.deps.events?.emit({
      type,
      severity,
      source: 'models',
      message,
      labels: { model: this.opts.name, version: u.version },
      data: { release: u.release, state: u.state, ...data },
    });
  }

  private async pause(point: PausePoint): Promise<void> {
    await this.deps.pause?.(point);
  }

  /** Installed versions with their manifests: where reusable chunks are. */
  private async sources(target: string): Promise<ChunkSource[]> {
    const out: ChunkSource[] = [];
    const names = await readdir(this.paths.versions).catch(() => [] as string[]);
    // Current first: its pages are the likeliest to be cached.
    const cur = this.state.current?.version;
    names.sort((a, b) => (a === cur ? -1 : b === cur ? 1 : 0));
    for (const name of names) {
      // Work directories start with a dot; versions never do.
      if (name.startsWith('.') || name === target) continue;
      const manifest = await this.localResolved(name);
      if (manifest) out.push({ dir: this.paths.version(name), manifest });
    }
    const same = names.includes(target) ? await this.localResolved(target) : undefined;
    if (same) out.push({ dir: this.paths.version(target), manifest: same });
    return out;
  }

  /** An installed version's manifest with its chunk list, from local copies only (else undefined). */
  private async localResolved(version: string): Promise<ResolvedManifest | undefined> {
    const manifest = await readLocalManifest(this.paths.manifest(version));
    if (!manifest) return undefined;
    return resolveManifest(manifest, new IndexCache(this.paths.index).get).catch(() => undefined);
  }

  /**
   * Removes other versions' work directories and replaced copies. An older build named them
   * `<v>.partial` / `<v>.old-<pid>`: those go too, unless state.json holds a version of that name.
   */
  private async cleanStalePartials(keep: string): Promise<void> {
    const installed = new Set(
      [this.state.current?.version, this.state.previous?.version].filter(Boolean),
    );
    for (const name of await readdir(this.paths.versions).catch(() => [] as string[])) {
      const ours = name.startsWith(WORK_PREFIX)
        ? name !== `${WORK_PREFIX}${keep}`
        : name.startsWith('.old-');
      const legacy = /\.(partial|old-\d+)$/.test(name) && !installed.has(name);
      if (ours || legacy)
        await rm(join(this.paths.versions, name), { recursive: true, force: true });
    }
  }

  private async quarantineDir(dir: string, m: { version: string; release: number }): Promise<void> {
    const dest = join(this.paths.quarantine, `${m.version}-r${m.release}`);
    await rm(dest, { recursive: true, force: true });
    await rename(dir, dest).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    });
    await fsyncDir(this.paths.quarantine).catch(() => undefined);
  }

  private async recordQuarantine(
    m: { version: string; release: number },
    reason: string,
    message: string,
  ): Promise<void> {
    const rest = this.state.quarantined.filter((q) => q.release !== m.release);
    this.state = {
      ...this.state,
      quarantined: [
        ...rest,
        {
          version: m.version,
          release: m.release,
          reason: `${reason}: ${message}`.slice(0, 500),
          at: iso(this.now()),
        },
      ].slice(-20),
    };
    await writeState(this.paths, this.state);
  }

  /** Keeps current and previous; removes other versions, partials and quarantined copies. */
  private async gc(): Promise<void> {
    const keep = new Set(
      [this.state.current?.version, this.state.previous?.version].filter(
        (v): v is string => v !== undefined,
      ),
    );
    for (const name of await readdir(this.paths.versions).catch(() => [] as string[])) {
      if (!keep.has(name))
        await rm(join(this.paths.versions, name), { recursive: true, force: true });
    }
    for (const name of await readdir(this.paths.manifests).catch(() => [] as string[])) {
      if (!keep.has(name.replace(/\.json$/, '')))
        await rm(join(this.paths.manifests, name), { force: true });
    }
    // Chunk-index objects: keep those of the kept versions (they find reusable chunks).
    const objects = new Set<string>();
    for (const version of keep) {
      const manifest = await readLocalManifest(this.paths.manifest(version));
      if (manifest)
        for (const sha of await indexObjectsOf(manifest, this.paths.index)) objects.add(sha);
    }
    await new IndexCache(this.paths.index).prune(objects);
    for (const name of await readdir(this.paths.quarantine).catch(() => [] as string[]))
      await rm(join(this.paths.quarantine, name), { recursive: true, force: true });
  }
}

function noDocker(): never {
  throw new Error('a container hook is configured but no Docker client is available');
}

function sameFiles(a: SignedManifest, b: SignedManifest): boolean {
  if (a.files.length !== b.files.length) return false;
  return a.files.every((f, i) => {
    const g = b.files[i];
    return g !== undefined && g.path === f.path && g.size === f.size && g.sha256 === f.sha256;
  });
}

/** Removes files of a reused directory that the manifest does not list. */
async function pruneExtras(dir: string, m: SignedManifest): Promise<void> {
  const wanted = new Set(m.files.map((f) => join(dir, f.path)));
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (!wanted.has(p)) await rm(p, { force: true });
    }
  };
  await walk(dir);
}

/** Human-readable bytes (binary units). */
export const fmtBytes = humanBytes;

/**
 * The one percentage an update shows everywhere (logs, `gpulse model apply`, `status`, the
 * progress metric): bytes downloaded and verified of the bytes it must download. Reused bytes are
 * not progress anyone waits for, so a delta update starts at 0 %, not at the share it reuses.
 */
export function downloadPercent(downloaded: number, toDownload: number): number {
  return toDownload > 0 ? Math.min(100, (100 * downloaded) / toDownload) : 100;
}

/** "2.6 MiB of 4.8 MiB needed (54.9%), 3.6 MiB/s, 28.6 MiB reused" */
export function downloadLine(p: UpdateProgress): string {
  const reused = p.bytes_reused > 0 ? `, ${fmtBytes(p.bytes_reused)} reused` : '';
  return `${fmtBytes(p.bytes_downloaded)} of ${fmtBytes(p.bytes_to_download)} needed (${p.percent.toFixed(1)}%), ${fmtBytes(p.rate_bytes_per_second)}/s${reused}`;
}

/** Current `current` link target of a model root (for status). */
export async function currentTarget(dir: string): Promise<string | undefined> {
  return readLinkIfExists(new ModelPaths(dir).current);
}
