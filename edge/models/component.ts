import cron, { type ScheduledTask } from 'node-cron';
import type Docker from 'dockerode';
import { loadDockerode } from '../../agent/process/lazy-require.js';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AgentContext, Component } from '../../agent/core/component.js';
import { errorMessage } from '../../agent/core/errors.js';
import { fetchSettings, healthSettings, reloadSettings, type ModelConfig } from './config.js';
import { readLocalManifest } from './assemble.js';
import { LockedError } from './lock.js';
import { manifestDigest, type SignedManifest } from './manifest.js';
import { bump, modelSamples, newCounters, type ModelCounters } from './metrics.js';
import { readTrustedKeys } from './signing.js';
import { ModelPaths, readStateAny, TERMINAL_STATES, type ModelState } from './state.js';
import { applyModelUpdate, type ApplyResult, type UpdateProgress } from './updater.js';
import { noModelsResponse, type ModelUpdateResponse } from './command.js';

export type { ModelCheckResult, ModelUpdateResponse } from './command.js';

/** Payload of the MQTT command `gpulse/v1/<site>/<node>/cmd/model-update`. */
export const modelUpdateCommandSchema = z
  .object({
    /** Echoed in the response so the sender can match it. */
    transaction: z.union([z.string().max(128), z.number()]).optional(),
    /** Model to check; all configured models when absent. */
    model: z.string().optional(),
    /** Expected version: the response is an error if the store offers another one. */
    version: z.string().optional(),
  })
  .strict();

const COLLECTOR = 'models';

/**
 * Called with a model's name and the signed manifest of its version once that version is the
 * committed current one: after each commit, and at start for the version already committed.
 * How the drift monitor learns the reference profile a version ships (`drift_reference`) without
 * this module importing it. A throw is logged; the update stays committed.
 */
export type OnCommitted = (model: string, manifest: SignedManifest) => void;

/** Injected I/O of the component. */
export interface ModelUpdaterDeps {
  readonly docker?: (socketPath: string) => Docker;
  readonly onCommitted?: OnCommitted;
}

interface ModelRuntime {
  readonly config: ModelConfig;
  readonly counters: ModelCounters;
  task?: ScheduledTask;
  running?: Promise<ApplyResult>;
  progress?: UpdateProgress;
  state?: ModelState;
}

/** The daemon side of model updates: scheduled checks, MQTT commands, metrics and `GET /models`. */
export class ModelUpdaterComponent implements Component {
  readonly name = 'models';
  private readonly models = new Map<string, ModelRuntime>();
  private ctx: AgentContext | undefined;
  private log: Logger | undefined;
  private readonly abort = new AbortController();
  private lastPublish = 0;
  /** True from start to stop: commands before or after that get the no-models answer. */
  private accepting = false;

  constructor(
    configs: readonly ModelConfig[],
    private readonly deps: ModelUpdaterDeps = {},
  ) {
    for (const c of configs) this.models.set(c.name, { config: c, counters: newCounters() });
  }

  register(ctx: AgentContext): void {
    ctx.app.get('/models', async () => {
      const out = [];
      for (const rt of this.models.values()) {
        const state = await readStateAny(new ModelPaths(rt.config.dir)).catch(() => undefined);
        out.push({
          model: rt.config.name,
          dir: rt.config.dir,
          source: rt.config.source,
          running: rt.running !== undefined,
          progress: rt.progress ?? null,
          state: state ?? null,
        });
      }
      return { models: out };
    });
  }

  async start(ctx: AgentContext): Promise<void> {
    this.ctx = ctx;
    this.log = ctx.log.child({ component: 'models' });
    if (this.models.size === 0) return;
    this.accepting = true;
    ctx.selfMetrics(COLLECTOR).register();
    for (const rt of this.models.values()) {
      rt.state = await readStateAny(new ModelPaths(rt.config.dir)).catch(() => undefined);
      await this.committed(rt);
      const { schedule, name, onStart } = rt.config;
      if (schedule !== 'off') {
        rt.task = cron.schedule(schedule, () => void this.check(name, 'schedule'), {
          name: `gpulse-model-${name}`,
          noOverlap: true,
        });
      }
      const interrupted =
        rt.state?.update !== undefined && !TERMINAL_STATES.has(rt.state.update.state);
      if (onStart === 'check' || (onStart === 'resume' && interrupted))
        void this.check(name, 'start');
    }
    this.log.info({ models: [...this.models.keys()] }, 'model updates enabled');
    this.publish(true);
  }

  async stop(): Promise<void> {
    this.accepting = false;
    for (const rt of this.models.values()) await rt.task?.stop();
    this.abort.abort(new Error('agent stopping'));
    await Promise.allSettled(
      [...this.models.values()].flatMap((rt) => (rt.running ? [rt.running] : [])),
    );
  }

  /** Checks one model now; a check already running is joined, not doubled. */
  check(name: string, why: 'schedule' | 'start' | 'command'): Promise<ApplyResult> {
    const rt = this.models.get(name);
    if (!rt)
      return Promise.resolve({
        outcome: 'refused',
        model: name,
        reason: 'unknown_model',
        message: `model ${name} is not configured`,
      });
    rt.running ??= this.runCheck(rt, why).finally(() => {
      rt.running = undefined;
      this.publish(true);
    });
    return rt.running;
  }

  private async runCheck(rt: ModelRuntime, why: string): Promise<ApplyResult> {
    const ctx = this.ctx;
    const log = (this.log ?? ctx?.log)?.child({ model: rt.config.name });
    if (!ctx || !log) throw new Error('component not started');
    const c = rt.config;
    let result: ApplyResult;
    try {
      const trust = await readTrustedKeys(c.trust);
      const socketPath = c.dockerSocket;
      let client: Docker | undefined;
      const docker = () =>
        (client ??= this.deps.docker
          ? this.deps.docker(socketPath)
          : new (loadDockerode())({ socketPath }));
      let last: UpdateProgress | undefined;
      result = await applyModelUpdate(
        {
          name: c.name,
          source: c.source,
          dir: c.dir,
          trust,
          health: healthSettings(c.health),
          reload: reloadSettings(c.reload),
          fetch: fetchSettings(c),
          clockSkewMs: c.clockSkew,
          maxBytes: c.maxBytes,
          maxManifestBytes: c.maxManifestBytes,
        },
        {
          log: ctx.log.child({ component: 'models' }),
          events: ctx.events,
          now: () => ctx.clock.now(),
          docker,
          spawnFn: ctx.spawnFn,
          signal: this.abort.signal,
          onProgress: (p) => {
            // Counters grow by what this update added since the last report.
            const same = last && last.version === p.version;
            rt.counters.downloaded += Math.max(
              0,
              p.bytes_downloaded - (same ? last!.bytes_downloaded : 0),
            );
            rt.counters.reused += Math.max(0, p.bytes_reused - (same ? last!.bytes_reused : 0));
            rt.counters.chunksDownloaded += Math.max(
              0,
              p.chunks_downloaded - (same ? last!.chunks_downloaded : 0),
            );
            rt.counters.chunksReused += Math.max(
              0,
              p.chunks_reused - (same ? last!.chunks_reused : 0),
            );
            last = p;
            rt.progress = p;
            this.publish(false);
          },
          onState: () => {
            void readStateAny(new ModelPaths(c.dir))
              .then((s) => {
                rt.state = s;
                this.publish(true);
              })
              .catch(() => undefined);
          },
        },
      );
    } catch (err) {
      const message = errorMessage(err);
      const reason = err instanceof LockedError ? 'locked' : 'error';
      log.error({ err: message, reason }, 'model update check failed');
      result = { outcome: 'failed', model: c.name, reason, message };
    }
    rt.counters.lastCheckMs = ctx.clock.now();
    bump(rt.counters.checks, result.outcome);
    if (result.outcome === 'committed') rt.counters.commits++;
    if (result.outcome === 'rolled_back') bump(rt.counters.rollbacks, result.reason ?? 'unknown');
    if (result.outcome === 'failed' || result.outcome === 'refused')
      bump(rt.counters.failures, result.reason ?? 'unknown');
    rt.state = await readStateAny(new ModelPaths(c.dir)).catch(() => rt.state);
    rt.progress = undefined;
    if (result.outcome === 'committed') await this.committed(rt);
    if (result.outcome === 'up_to_date')
      log.debug({ why, version: result.version }, result.message);
    else
      log.info(
        { why, outcome: result.outcome, version: result.version, reason: result.reason },
        result.message,
      );
    return result;
  }

  /** Tells `onCommitted` about the committed current version of a model, if it has one. */
  private async committed(rt: ModelRuntime): Promise<void> {
    const hook = this.deps.onCommitted;
    const current = rt.state?.current;
    if (!hook || !current) return;
    const log = (this.log ?? this.ctx?.log)?.child({ model: rt.config.name });
    const manifest = await readLocalManifest(
      new ModelPaths(rt.config.dir).manifest(current.version),
    );
    // Only the manifest the state committed: a stale file left by a crash must not stand in for it.
    if (!manifest || manifestDigest(manifest) !== current.manifest_sha256) {
      log?.warn(
        { version: current.version },
        'the manifest of the committed version is missing or does not match the state; its drift reference is not installed',
      );
      return;
    }
    try {
      hook(rt.config.name, manifest);
    } catch (err) {
      log?.error({ version: current.version, err: errorMessage(err) }, 'onCommitted hook failed');
    }
  }

  /**
   * Answers the MQTT command `gpulse/v1/<site>/<node>/cmd/model-update` (the composition root
   * hands this to the MQTT wiring): checks the named model (or all) now and resolves with the
   * response to publish once the check ends (which includes the trial window, so it can take
   * minutes). Never throws.
   */
  async handleModelUpdateCommand(payload: unknown): Promise<ModelUpdateResponse> {
    if (!this.accepting) return noModelsResponse(payload);
    const parsed = modelUpdateCommandSchema.safeParse(payload);
    const transaction = (payload as { transaction?: string | number } | null)?.transaction;
    if (!parsed.success) {
      return {
        transaction,
        status: 'error',
        error: `invalid model-update command: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`,
      };
    }
    const { model, version } = parsed.data;
    if (model !== undefined && !this.models.has(model))
      return {
        transaction,
        status: 'error',
        error: `model ${model} is not configured on this node (known: ${[...this.models.keys()].join(', ')})`,
      };
    const names = model !== undefined ? [model] : [...this.models.keys()];
    const results = await Promise.all(names.map((n) => this.check(n, 'command')));
    const data = {
      results: results.map((r) => ({
        model: r.model,
        outcome: r.outcome,
        version: r.version,
        release: r.release,
        reason: r.reason,
        message: r.message,
      })),
    };
    const bad = results.find((r) => r.outcome !== 'committed' && r.outcome !== 'up_to_date');
    if (bad) return { transaction, status: 'error', error: `${bad.model}: ${bad.message}`, data };
    const wrong = version !== undefined ? results.find((r) => r.version !== version) : undefined;
    if (wrong)
      return {
        transaction,
        status: 'error',
        error: `${wrong.model}: the store offers ${wrong.version ?? 'nothing'}, not ${version ?? ''}`,
        data,
      };
    return { transaction, status: 'ok', data };
  }

  private publish(force: boolean): void {
    const ctx = this.ctx;
    if (!ctx || this.models.size === 0) return;
    const now = Date.now();
    if (!force && now - this.lastPublish < 1000) return;
    this.lastPublish = now;
    const samples = [...this.models.values()].flatMap((rt) =>
      modelSamples(rt.config.name, rt.state, rt.progress, rt.counters),
    );
    ctx.selfMetrics(COLLECTOR).ok(samples);
  }
}

/** The component for `gpulse run`, or none when `models:` is empty. */
export function createModelUpdater(
  models: readonly ModelConfig[],
  deps: ModelUpdaterDeps = {},
): ModelUpdaterComponent[] {
  return models.length > 0 ? [new ModelUpdaterComponent(models, deps)] : [];
}
