import type Docker from 'dockerode';
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../agent/core/clock.js';
import { errorMessage } from '../../agent/core/errors.js';
import { loadDockerode } from '../../agent/process/lazy-require.js';
import type { ContainerIdentity } from '../../agent/core/facts.js';
import { SampleBuilder } from '../../agent/core/metric.js';
import type { Sample, StreamingCollector, StreamSink } from '../../agent/core/types.js';
import type { DockerConfig } from './config.js';
import {
  classifyEngineError,
  resolveEndpoint,
  type Endpoint,
  type EngineFailure,
} from './endpoint.js';
import { EventStream, type EngineEvent } from './events-stream.js';
import type {
  ContainerIncident,
  ContainerLabels,
  ContainerStats,
  DockerContainer,
  DockerContainerFact,
} from './facts.js';
import { GpuOomEpisodes, matchGpuOom } from './gpu-oom.js';
import { containerLabels, parseInspect, parseListEntry } from './inspect.js';
import { at, str } from './json.js';
import { cursorAt, LogFollower, type LogCursor } from './log-follower.js';
import { containerMetrics as m, dockerHealthMetrics } from './metrics.js';
import { atMemoryLimit, OomAccounting, type OomDelta } from './oom-accounting.js';
import {
  CgroupStats,
  cpuCores,
  parseApiStats,
  type CgroupLocation,
  type RawStats,
} from './stats.js';

/** Collector name (config key, `collector` label, log field). */
export const DOCKER = 'docker';

/** Incidents kept for the events detector (newest last). */
const INCIDENT_RING = 500;
/** One-shot stats requests in flight at once. */
const API_STATS_IN_FLIGHT = 128;
/** Log streams followed at once at most. */
const MAX_FOLLOWERS = 256;

/** What the docker collector needs from outside, injected. */
export interface DockerCollectorDeps {
  readonly clock: Clock;
  readonly env: NodeJS.ProcessEnv;
  readonly procRoot: string;
  readonly cgroupRoot: string;
  readonly random?: () => number;
  /** Replaces the Engine client (tests). */
  readonly docker?: Docker;
  /** Whether a GPU process runs in a container now (from the GPU collectors' process lists). */
  readonly usesGpu?: (containerId: string) => boolean;
}

/** One container as the collector tracks it. */
interface Tracked {
  info: DockerContainer;
  labels: ContainerLabels;
  /** The run the current facts belong to (its start time). */
  runKey: string;
  /** Cgroup files of the current run; null once they proved unusable. */
  location?: CgroupLocation | null;
  prevCpu?: { readonly runKey: string; readonly cpuSeconds?: number; readonly at: number };
  stats?: ContainerStats;
  /** Highest memory use seen in this run (for exit 137 at the limit). */
  peakWorkingSet?: number;
  lastExit?: { readonly code?: number; readonly at: number };
  removedAt?: number;
  dirty: boolean;
  gpuOoms: number;
  /** The run in which a GPU process was seen in it (it stays a GPU container for that run). */
  gpuProcessRun?: string;
  readonly episodes: GpuOomEpisodes;
  follower?: LogFollower;
  logCursor: LogCursor;
  /** Why logs cannot be read for this run (log driver without read support ...). */
  logsBlockedRun?: string;
  /** When the last inspect was applied, and when the last log stream ended. */
  infoAt: number;
  logEndedAt?: number;
}

const runKeyOf = (c: DockerContainer): string => String(c.startedAt ?? 'unknown');

/** Builds the docker collector. */
export function createDockerCollector(
  config: DockerConfig,
  deps: DockerCollectorDeps,
): StreamingCollector {
  return new DockerCollector(config, deps);
}

/**
 * Containers of a Docker (or Podman) engine: identity, state, resource usage from cgroup files or
 * one-shot stats, OOM kills counted once across the engine's signals, GPU out-of-memory messages
 * from the logs of GPU containers, and the incidents the events detector turns into events.
 * The event stream keeps it current between cycles; every cycle re-lists containers.
 */
class DockerCollector implements StreamingCollector {
  readonly kind = 'streaming';
  readonly name = DOCKER;
  private readonly containers = new Map<string, Tracked>();
  private readonly incidents: ContainerIncident[] = [];
  private readonly oom = new OomAccounting();
  private readonly cgroups: CgroupStats;
  private docker: Docker | undefined;
  private endpoint: Endpoint | undefined;
  private sink: StreamSink | undefined;
  private log: Logger | undefined;
  private events: EventStream | undefined;
  private queue: Promise<void> = Promise.resolve();
  private cycleTimer: TimerHandle | undefined;
  private publishTimer: TimerHandle | undefined;
  private stopped = true;
  private seq = 0;
  private healthy = false;
  private firstListingDone = false;
  private startedAt = 0;
  private reinspectAll = false;
  private followerLimitLogged = false;
  private lastCycleMs: number | undefined;
  private logLines = 0;

  constructor(
    private readonly config: DockerConfig,
    private readonly deps: DockerCollectorDeps,
  ) {
    this.cgroups = new CgroupStats({ cgroupRoot: deps.cgroupRoot, procRoot: deps.procRoot });
  }

  async start(sink: StreamSink, log: Logger): Promise<void> {
    this.sink = sink;
    this.log = log;
    this.stopped = false;
    this.startedAt = this.deps.clock.now();
    const endpoint = resolveEndpoint(this.config.socket, this.deps.env);
    if ('error' in endpoint) {
      sink.fail('bad_endpoint', endpoint.error);
      return;
    }
    this.endpoint = endpoint;
    this.requestCycle(0);
    await Promise.resolve();
  }

  /**
   * Creates the Engine client and the event stream once the socket exists. dockerode is loaded
   * here, not at the top: it pulls in ssh2 and its crypto, a second of start-up CPU on a small or
   * busy machine, which a host without Docker should not pay (nor GPU collectors starting with it).
   */
  private connectClient(endpoint: Endpoint): Docker | undefined {
    if (this.docker) return this.docker;
    const log = this.log;
    if (!log) return undefined;
    if (!this.deps.docker && endpoint.kind === 'socket' && !existsSync(endpoint.socketPath)) {
      return undefined;
    }
    const Dockerode = loadDockerode();
    const docker =
      this.deps.docker ??
      (endpoint.kind === 'socket'
        ? new Dockerode({ socketPath: endpoint.socketPath })
        : new Dockerode({ host: endpoint.host, port: endpoint.port, protocol: 'http' }));
    this.docker = docker;
    this.events = new EventStream({
      // `since` as "seconds.nanoseconds" keeps sub-second precision; the typings only know numbers.
      open: (o) => docker.getEvents(o as unknown as Docker.GetEventsOptions),
      clock: this.deps.clock,
      log,
      random: this.deps.random,
      onEvent: (e) => this.enqueue(() => this.onEngineEvent(e)),
      onConnect: () => {
        // Whatever happened while disconnected (a daemon restart) is read back by inspecting again.
        if (this.firstListingDone) this.reinspectAll = true;
        this.requestCycle(0);
        this.publishHealth();
      },
    });
    this.events.start();
    return docker;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.events?.stop();
    if (this.cycleTimer) this.deps.clock.clearTimeout(this.cycleTimer);
    if (this.publishTimer) this.deps.clock.clearTimeout(this.publishTimer);
    if (this.healthTimer) this.deps.clock.clearTimeout(this.healthTimer);
    for (const t of this.containers.values()) t.follower?.stop();
    await this.queue.catch(() => undefined);
    this.cgroups.close();
  }

  // ---- scheduling -------------------------------------------------------------------------

  /** Runs tasks one at a time: cycles and event handlers both change the tracked containers. */
  private enqueue(task: () => Promise<void>): void {
    this.queue = this.queue.then(task).catch((err: unknown) => {
      this.log?.error({ err: errorMessage(err) }, 'docker collector task failed');
    });
  }

  private requestCycle(delayMs: number): void {
    if (this.stopped) return;
    if (this.cycleTimer) this.deps.clock.clearTimeout(this.cycleTimer);
    this.cycleTimer = this.deps.clock.setTimeout(() => {
      this.cycleTimer = undefined;
      this.enqueue(() => this.cycle());
    }, delayMs);
    this.cycleTimer.unref?.();
  }

  private healthTimer: TimerHandle | undefined;

  private requestHealth(): void {
    if (this.healthTimer || this.stopped) return;
    this.healthTimer = this.deps.clock.setTimeout(() => {
      this.healthTimer = undefined;
      this.publishHealth();
    }, 200);
    this.healthTimer.unref?.();
  }

  private requestPublish(): void {
    if (this.publishTimer || this.stopped) return;
    this.publishTimer = this.deps.clock.setTimeout(() => {
      this.publishTimer = undefined;
      if (this.healthy) this.publish();
    }, 50);
    this.publishTimer.unref?.();
  }

  private signal(): AbortSignal {
    return AbortSignal.timeout(this.config.timeout);
  }

  // ---- the cycle --------------------------------------------------------------------------

  private async cycle(): Promise<void> {
    if (this.stopped || !this.endpoint) return;
    const started = this.deps.clock.now();
    try {
      const docker = this.connectClient(this.endpoint);
      if (!docker) {
        // The same words dockerode's ENOENT gets, without loading it for nothing.
        throw Object.assign(new Error(`connect ENOENT ${this.endpoint.display}`), {
          code: 'ENOENT',
        });
      }
      const list = await docker.listContainers({ all: true, abortSignal: this.signal() });
      const firstListing = !this.firstListingDone;
      const seen = new Set<string>();
      const toInspect: string[] = [];
      const reinspect = this.reinspectAll || !this.events?.connected;
      this.reinspectAll = false;
      for (const json of list as unknown[]) {
        const entry = parseListEntry(json);
        if (!entry) continue;
        const { id, state } = entry;
        seen.add(id);
        const t = this.containers.get(id);
        if (
          !t ||
          t.dirty ||
          reinspect ||
          t.removedAt !== undefined ||
          (state && state !== t.info.state)
        )
          toInspect.push(id);
      }
      await mapLimit(toInspect, this.config.concurrency, (id) => this.refresh(id, firstListing));
      const now = this.deps.clock.now();
      for (const [id, t] of this.containers) {
        if (seen.has(id)) continue;
        this.markRemoved(id, t, now);
      }
      await this.sampleAll();
      this.syncFollowers();
      this.firstListingDone = true;
      this.lastCycleMs = this.deps.clock.now() - started;
      this.healthy = true;
      this.publish();
    } catch (err) {
      this.healthy = false;
      this.report(classifyEngineError(err, this.endpoint));
    } finally {
      this.publishHealth();
      this.requestCycle(this.config.interval);
    }
  }

  private report(f: EngineFailure): void {
    if (f.status === 'no_data' && this.config.mode !== 'required')
      this.sink?.noData(f.reason, f.message);
    else this.sink?.fail(f.reason, f.message);
  }

  /** Inspects one container and applies what changed; returns it (undefined when gone). */
  private async refresh(id: string, historical = false): Promise<Tracked | undefined> {
    if (!this.docker) return undefined;
    let json: unknown;
    try {
      json = await this.docker.getContainer(id).inspect({ abortSignal: this.signal() });
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) {
        const t = this.containers.get(id);
        if (t) this.markRemoved(id, t, this.deps.clock.now());
        return undefined;
      }
      throw err;
    }
    const info = parseInspect(json, this.config.maxGpuRequests);
    if (!info) return undefined;
    if (info.gpusDropped) this.requestHealth();
    const now = this.deps.clock.now();
    let t = this.containers.get(id);
    const runKey = runKeyOf(info);
    if (!t) {
      t = {
        info,
        labels: containerLabels(info),
        runKey,
        dirty: false,
        gpuOoms: 0,
        infoAt: now,
        episodes: new GpuOomEpisodes(),
        // Logs of containers that were there before us are history: read from now on. A new
        // container's first lines can carry times before its StartedAt (set once runc returned).
        logCursor: cursorAt(
          historical ? this.startedAt : (info.createdAt ?? info.startedAt ?? now) - 1,
        ),
      };
      this.containers.set(id, t);
    } else if (runKey !== t.runKey) {
      // A new run: restart (policy or manual) or first start after create.
      const previous = t.info;
      if (previous.startedAt !== undefined && info.startedAt !== undefined) {
        this.record('restart', id, info.startedAt, {
          restartCount: info.restartCount,
          previousExitCode: t.lastExit?.code ?? previous.exitCode ?? null,
          previousOomKilled: previous.oomKilled,
          previousStartedAt: new Date(previous.startedAt).toISOString(),
        });
      }
      t.runKey = runKey;
      this.cgroups.release(t.location, t.info.pid);
      t.location = undefined;
      t.peakWorkingSet = undefined;
      t.logsBlockedRun = undefined;
    }
    t.info = info;
    t.infoAt = now;
    t.labels = containerLabels(info);
    t.dirty = false;
    t.removedAt = undefined;
    if (info.state !== 'running' && info.state !== 'restarting' && info.state !== 'paused') {
      this.applyExit(id, t, historical);
    }
    return t;
  }

  /** Evidence a finished run leaves in its inspect: OOMKilled, or exit 137 with memory at the limit. */
  private applyExit(id: string, t: Tracked, historical: boolean): void {
    const info = t.info;
    if (info.oomKilled) {
      this.counted(id, t, this.oom.oomKilled(id, t.runKey), historical, 'oom_killed');
    } else if (
      info.exitCode === 137 &&
      atMemoryLimit(
        info.memoryLimitBytes ?? t.stats?.memoryLimitBytes,
        t.stats?.memoryWorkingSetBytes,
        t.peakWorkingSet,
      )
    ) {
      this.counted(id, t, this.oom.exit137AtLimit(id, t.runKey), historical, 'exit_137_at_limit');
    }
  }

  private counted(id: string, t: Tracked, delta: OomDelta, historical: boolean, via: string): void {
    if (delta.added === 0 || historical) return;
    for (let i = 0; i < delta.added; i++) {
      this.record('oom_kill', id, this.deps.clock.now(), {
        detectedBy: via,
        sources: delta.sources,
        killsThisRun: delta.runKills,
        exitCode: t.info.state === 'running' ? null : (t.info.exitCode ?? null),
        memoryLimitBytes: t.info.memoryLimitBytes ?? t.stats?.memoryLimitBytes ?? null,
        memoryUsageBytes: t.stats?.memoryUsageBytes ?? null,
        runStartedAt:
          t.info.startedAt === undefined ? null : new Date(t.info.startedAt).toISOString(),
      });
    }
  }

  private record(
    kind: ContainerIncident['kind'],
    containerId: string,
    at: number,
    details: Record<string, unknown>,
  ): void {
    this.incidents.push(Object.freeze({ seq: ++this.seq, kind, at, containerId, details }));
    if (this.incidents.length > INCIDENT_RING)
      this.incidents.splice(0, this.incidents.length - INCIDENT_RING);
  }

  private markRemoved(id: string, t: Tracked, now: number): void {
    if (t.removedAt === undefined) {
      t.removedAt = now;
      this.cgroups.release(t.location, t.info.pid);
      t.location = undefined;
      t.follower?.stop();
      t.follower = undefined;
      return;
    }
    if (now - t.removedAt >= this.config.retention) {
      this.containers.delete(id);
      this.oom.forget(id);
    }
  }

  // ---- engine events ----------------------------------------------------------------------

  private async onEngineEvent(e: EngineEvent): Promise<void> {
    if (e.type !== 'container' || this.stopped) return;
    const t = this.containers.get(e.id);
    switch (e.action) {
      case 'oom': {
        const fresh = (await this.refresh(e.id).catch(() => undefined)) ?? t;
        if (!fresh) {
          // Gone already (docker run --rm): count it under what the event itself says.
          const runKey = 'unknown';
          this.oom.event(e.id, runKey, e.timeMs);
          return;
        }
        this.counted(e.id, fresh, this.oom.event(e.id, fresh.runKey, e.timeMs), false, 'oom_event');
        this.requestPublish();
        return;
      }
      case 'die': {
        if (t) {
          // The cgroup may still be there for a moment: its counter is the most exact evidence.
          this.readCounterNow(e.id, t);
          const code = Number(e.attributes.exitCode);
          t.lastExit = { code: Number.isFinite(code) ? code : undefined, at: e.timeMs };
        }
        await this.refresh(e.id).catch(() => undefined);
        this.requestPublish();
        this.requestCycle(200);
        return;
      }
      case 'destroy':
        if (t) this.markRemoved(e.id, t, this.deps.clock.now());
        this.requestPublish();
        return;
      default:
        // start, restart, create, rename, update, pause, health_status ...: re-read on the next cycle.
        if (t) t.dirty = true;
        this.requestCycle(250);
    }
  }

  private readCounterNow(id: string, t: Tracked): void {
    if (!t.location || !t.info.pid) return;
    const raw = this.cgroups.sample(t.location, t.info.pid, false);
    if (raw) this.applyCounter(id, t, raw);
  }

  private applyCounter(id: string, t: Tracked, raw: RawStats): void {
    const ws = raw.memoryWorkingSetBytes;
    if (ws !== undefined) t.peakWorkingSet = Math.max(t.peakWorkingSet ?? 0, ws);
    if (raw.oomKillCounter !== undefined) {
      const historical = !this.firstListingDone;
      this.counted(
        id,
        t,
        this.oom.counter(id, t.runKey, raw.oomKillCounter),
        historical,
        'cgroup_counter',
      );
    }
  }

  // ---- stats ------------------------------------------------------------------------------

  private async sampleAll(): Promise<void> {
    const running = [...this.containers.entries()].filter(
      ([, t]) => t.removedAt === undefined && t.info.state === 'running',
    );
    const viaApi: [string, Tracked][] = [];
    const local = this.endpoint?.kind === 'socket' || this.endpoint?.local === true;
    let n = 0;
    for (const [id, t] of running) {
      let raw: RawStats | undefined;
      if (this.config.stats !== 'api' && local && t.info.pid) {
        if (t.location === undefined) t.location = this.cgroups.locate(t.info.pid) ?? null;
        if (t.location)
          raw = this.cgroups.sample(t.location, t.info.pid, t.info.networkMode !== 'host');
        if (!raw) {
          this.cgroups.release(t.location, t.info.pid);
          t.location = null;
        }
      }
      if (raw) this.applyStats(id, t, raw, this.deps.clock.now());
      else if (this.config.stats !== 'cgroup') viaApi.push([id, t]);
      else this.sink?.countError('cgroup_unreadable');
      // Let scrapes and events in between containers on a big host.
      if (++n % 25 === 0) await new Promise<void>((r) => setImmediate(r));
    }
    // dockerd answers one-shot stats at its next 1 s collection round, however many wait:
    // asking for all at once costs one round, asking 8 at a time costs one round per 8.
    await mapLimit(viaApi, API_STATS_IN_FLIGHT, async ([id, t]) => {
      try {
        const options = { stream: false, 'one-shot': true, abortSignal: this.signal() };
        const json: unknown = await this.docker
          ?.getContainer(id)
          .stats(options as { stream: false });
        const readAt = Date.parse(str(at(json, 'read')) ?? '');
        this.applyStats(
          id,
          t,
          parseApiStats(json, t.info.memoryLimitBytes),
          Number.isFinite(readAt) && readAt > 0 ? readAt : this.deps.clock.now(),
        );
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode !== 404)
          this.sink?.countError('stats_failed');
      }
    });
  }

  private applyStats(id: string, t: Tracked, raw: RawStats, atMs: number): void {
    const prev = t.prevCpu?.runKey === t.runKey ? t.prevCpu : undefined;
    const cores = cpuCores(prev, { cpuSeconds: raw.cpuSeconds, at: atMs });
    t.prevCpu = { runKey: t.runKey, cpuSeconds: raw.cpuSeconds, at: atMs };
    t.stats = { ...raw, cpuCores: cores };
    this.applyCounter(id, t, raw);
  }

  // ---- logs -------------------------------------------------------------------------------

  /**
   * A GPU container: it asked for GPUs, runs on the NVIDIA runtime (Jetson), or a GPU process was
   * seen in it this run (privileged, `--device /dev/nvidia*`, CDI: no request says so). Sticky
   * for the run: the process an OOM kills is gone from the driver's list at once.
   */
  private isGpuContainer(id: string, t: Tracked): boolean {
    if (t.gpuProcessRun !== t.runKey && this.deps.usesGpu?.(id)) t.gpuProcessRun = t.runKey;
    return t.info.gpus.length > 0 || t.info.runtime === 'nvidia' || t.gpuProcessRun === t.runKey;
  }

  private wantsLogs(id: string, t: Tracked): boolean {
    if (this.config.logs === 'off' || t.removedAt !== undefined) return false;
    if (this.config.logs === 'gpu' && !this.isGpuContainer(id, t)) return false;
    if (t.logsBlockedRun === t.runKey) return false;
    // The stream ends when the container stops: wait for the inspect that says so (or not).
    if (t.logEndedAt !== undefined && t.infoAt <= t.logEndedAt) return false;
    // Follow while it runs, and once more after it stopped if lines may be unread.
    const end = t.info.state === 'running' ? Infinity : (t.info.finishedAt ?? 0);
    return end > t.logCursor.sec * 1000 + t.logCursor.nsec / 1e6;
  }

  private syncFollowers(): void {
    let count = [...this.containers.values()].filter((t) => t.follower).length;
    for (const [id, t] of this.containers) {
      if (t.follower || !this.wantsLogs(id, t) || !this.docker) continue;
      if (count >= MAX_FOLLOWERS) {
        if (!this.followerLimitLogged)
          this.log?.warn(
            { limit: MAX_FOLLOWERS },
            'too many GPU containers to follow all their logs; GPU OOMs of the others are not seen',
          );
        this.followerLimitLogged = true;
        break;
      }
      count++;
      const container = this.docker.getContainer(id);
      const runKey = t.runKey;
      const follower = new LogFollower({
        open: (since) =>
          container.logs({
            follow: true,
            stdout: true,
            stderr: true,
            timestamps: true,
            since,
          }),
        tty: t.info.tty,
        from: t.logCursor,
        onLine: (text, atMs) => this.onLogLine(id, text, atMs),
        onEnd: (err) => {
          // The stream ends when the container stops: everything up to now has been read.
          const now = cursorAt(this.deps.clock.now());
          const read = follower.cursor;
          t.logCursor =
            err === undefined &&
            (now.sec > read.sec || (now.sec === read.sec && now.nsec > read.nsec))
              ? now
              : read;
          if (t.follower === follower) t.follower = undefined;
          t.logEndedAt = this.deps.clock.now();
          t.dirty = true;
          this.log?.debug(
            {
              container: t.labels.container_name,
              cursor: t.logCursor,
              err: err && errorMessage(err),
            },
            'container log stream ended',
          );
          if (err !== undefined) {
            // Not retried for this run: a log driver without read support stays so.
            t.logsBlockedRun = runKey;
            this.sink?.countError('logs_unavailable');
            this.log?.info(
              { container: t.labels.container_name, err: errorMessage(err) },
              'cannot read container logs; GPU OOMs in them are not seen',
            );
          }
          this.publishHealth();
        },
      });
      t.follower = follower;
      this.log?.debug(
        { container: t.labels.container_name, since: t.logCursor, state: t.info.state },
        'following container logs',
      );
      void follower.start();
    }
  }

  private onLogLine(id: string, text: string, atMs: number): void {
    this.logLines++;
    if (this.logLines % 1000 === 1) this.requestHealth();
    const match = matchGpuOom(text);
    if (!match) return;
    const t = this.containers.get(id);
    if (!t || !t.episodes.observe(atMs)) return;
    t.gpuOoms++;
    this.record('gpu_oom', id, atMs, {
      framework: match.framework,
      rule: match.rule,
      gpu: match.gpu ?? null,
      requestedBytes: match.requestedBytes ?? null,
      line: text.length > 500 ? `${text.slice(0, 500)}…` : text,
    });
    this.requestPublish();
  }

  // ---- output -----------------------------------------------------------------------------

  private publishHealth(): void {
    const b = new SampleBuilder();
    b.add(dockerHealthMetrics.eventsConnected, {}, this.events?.connected ?? false);
    b.add(dockerHealthMetrics.eventsReconnects, {}, this.events?.reconnects ?? 0);
    b.add(
      dockerHealthMetrics.logFollowers,
      {},
      [...this.containers.values()].filter((t) => t.follower).length,
    );
    b.add(dockerHealthMetrics.logLines, {}, this.logLines);
    let dropped = 0;
    for (const t of this.containers.values())
      if (t.removedAt === undefined) dropped += t.info.gpusDropped ?? 0;
    b.add(dockerHealthMetrics.gpuRequestsDropped, {}, dropped);
    this.sink?.health(b.build());
  }

  private publish(): void {
    const b = new SampleBuilder();
    const identities: ContainerIdentity[] = [];
    const facts: DockerContainerFact[] = [];
    for (const t of this.containers.values()) {
      const c = t.info;
      const l = t.labels;
      identities.push({
        id: c.id,
        name: l.container_name,
        image: c.image,
        ...(c.pod ? { pod: c.pod } : {}),
        ...(c.namespace ? { namespace: c.namespace } : {}),
      });
      facts.push({
        container: c,
        labels: l,
        stats: t.stats,
        oomKills: this.oom.total(c.id),
        gpuOoms: t.gpuOoms,
        removedAt: t.removedAt,
      });
      b.add(m.oomKills, l, this.oom.total(c.id));
      b.add(m.gpuOoms, l, t.gpuOoms);
      // A removed container keeps only its counters, for the retention time.
      if (t.removedAt !== undefined) continue;
      b.add(
        m.info,
        {
          ...l,
          docker_name: c.name,
          compose_project: c.composeProject ?? '',
          compose_service: c.composeService ?? '',
        },
        1,
      );
      const running = c.state === 'running';
      b.add(m.running, l, running);
      b.add(m.startTime, l, c.startedAt === undefined ? undefined : c.startedAt / 1000);
      b.add(m.exitCode, l, running ? undefined : c.exitCode);
      b.add(m.restarts, l, c.restartCount);
      b.add(m.cpuLimit, l, c.cpuLimitCores);
      for (const g of c.gpus) b.add(m.gpuRequest, { ...l, device: g.device, source: g.source }, 1);
      const s = running ? t.stats : undefined;
      if (!s) continue;
      b.add(m.cpuSeconds, l, s.cpuSeconds)
        .add(m.cpuCores, l, s.cpuCores)
        .add(m.memoryUsage, l, s.memoryUsageBytes)
        .add(m.memoryLimit, l, s.memoryLimitBytes ?? c.memoryLimitBytes)
        .add(m.memoryWorkingSet, l, s.memoryWorkingSetBytes)
        .add(m.networkReceive, l, s.networkReceiveBytes)
        .add(m.networkTransmit, l, s.networkTransmitBytes)
        .add(m.blockRead, l, s.blockReadBytes)
        .add(m.blockWrite, l, s.blockWriteBytes)
        .add(m.pids, l, s.pids);
    }
    const samples: Sample[] = b.build();
    this.sink?.ok(
      {
        samples,
        facts: {
          containers: identities,
          dockerContainers: facts,
          containerIncidents: [...this.incidents],
        },
      },
      this.lastCycleMs,
    );
  }
}

/**
 * Runs `fn` over `items` with at most `limit` in flight. Hand-written: ten lines, and a
 * dependency for them would be heavier than the code.
 */
export async function mapLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
