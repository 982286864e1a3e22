import { readFile, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { TimerHandle } from '../../core/clock.js';
import type { AgentContext, Component } from '../../core/component.js';
import { errorMessage } from '../../core/errors.js';
import type { DriftConfig } from './config.js';
import { JsonLinesFollower } from './follower.js';
import { DRIFT } from './metrics.js';
import {
  DriftMonitor,
  type IngestResult,
  type IngestSource,
  type LoadProfileResult,
} from './monitor.js';
import { parseObservationTopic } from './mqtt.js';
import { parseObservations, validateObservations } from './observations.js';
import { parseReferenceProfile, ProfileError, profileSha256 } from './profile.js';
import { referenceFromPayload, registerDriftRoutes } from './routes.js';

/** Outcome of handing an observation payload to the drift monitor (never thrown). */
export type ObservationOutcome =
  IngestResult | { readonly status: 'too_large' | 'not_started'; readonly message: string };

/**
 * The drift monitor as an agent component: HTTP routes, reference profiles from files, followed
 * prediction logs, evaluation on an interval, and the drift series published into the state store
 * as the `drift` pseudo-collector so they render in /metrics.
 *
 * Other components feed it through `handleObservations` (MQTT) and `loadReferenceProfile` (model
 * updates shipping a profile in their manifest).
 */
export class DriftComponent implements Component {
  readonly name = DRIFT;
  private monitor: DriftMonitor | undefined;
  private ctx: AgentContext | undefined;
  private log: Logger | undefined;
  private timer: TimerHandle | undefined;
  private readonly followers: JsonLinesFollower[] = [];
  private stopped = false;
  private mqttRefused = 0;

  constructor(private readonly config: DriftConfig) {}

  register(ctx: AgentContext): void {
    this.ctx = ctx;
    this.log = ctx.log.child({ component: DRIFT });
    this.monitor = new DriftMonitor({
      config: this.config,
      clock: ctx.clock,
      log: this.log,
      events: ctx.events,
    });
    const monitor = this.monitor;
    registerDriftRoutes(ctx.app, {
      config: this.config,
      monitor,
      observe: (model, payload, source) => this.observe(model, payload, source),
      setReference: (model, payload) => {
        const built = referenceFromPayload(payload, model, this.config);
        if (!built.ok) return built;
        const result = monitor.setReference(model, built.profile, 'api');
        if (result.ok) this.publish();
        return result;
      },
    });
  }

  async start(ctx: AgentContext): Promise<void> {
    if (!this.monitor) this.register(ctx);
    ctx.selfMetrics(DRIFT).register();
    await this.loadProfileFiles();
    for (const [model, settings] of Object.entries(this.config.models)) {
      for (const f of settings.follow) this.follow(model, f.path, f.from);
    }
    this.publish();
    this.schedule();
  }

  /** Runs one evaluation now and publishes the series (also what the interval timer does). */
  evaluateNow(): void {
    if (!this.monitor) return;
    const started = this.ctx?.clock.now() ?? 0;
    this.monitor.evaluate();
    this.publish((this.ctx?.clock.now() ?? started) - started);
  }

  /**
   * Entry point for observations arriving outside HTTP (MQTT topic
   * `gpulse/v1/<site>/<node>/models/<model>/observations`): the raw payload (JSON text or bytes,
   * or an already parsed value) for a model. Never throws.
   */
  handleObservations(
    model: string,
    payload: unknown,
    source: IngestSource = 'mqtt',
  ): ObservationOutcome {
    if (typeof payload === 'string' || Buffer.isBuffer(payload)) {
      const bytes = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
      if (bytes > this.config.limits.bodyBytes) {
        this.monitor?.reject(model, 'bad_payload');
        return {
          status: 'too_large',
          message: `payload of ${bytes} bytes is larger than drift.limits.bodyBytes (${this.config.limits.bodyBytes})`,
        };
      }
      const parsed = parseObservations(payload.toString(), this.config.limits);
      if (!parsed.ok) {
        this.monitor?.reject(model, 'bad_payload');
        return {
          status: 'invalid',
          message: parsed.problems.join('; '),
          problems: parsed.problems,
        };
      }
      return this.ingest(model, parsed.rows, source);
    }
    return this.observe(model, payload, source);
  }

  /** handleObservations for an MQTT message: the model comes from the topic. */
  handleMqttMessage(topic: string, payload: Buffer): ObservationOutcome {
    const parsed = parseObservationTopic(topic);
    if (!parsed) {
      return {
        status: 'invalid',
        message: `topic ${JSON.stringify(topic)} is not gpulse/v1/<site>/<node>/models/<model>/observations`,
      };
    }
    return this.handleObservations(parsed.model, payload, 'mqtt');
  }

  /**
   * The handler of the node's `models/+/observations` subscription: handleMqttMessage, with
   * refused messages logged (the first, then every 1000th: a misbehaving publisher cannot flood
   * the log; the rejected counter has every one). Never throws.
   */
  receiveMqttMessage(topic: string, payload: Buffer): void {
    const outcome = this.handleMqttMessage(topic, payload);
    if (outcome.status === 'accepted' || outcome.status === 'warmup') return;
    if (this.mqttRefused++ % 1000 === 0) {
      this.log?.warn(
        { topic, outcome: outcome.status, refused: this.mqttRefused },
        `MQTT observations refused: ${outcome.message}`,
      );
    }
  }

  /**
   * Installs the reference profile a committed model version ships in its signed manifest
   * (`drift_reference`) with source `manifest`. The same profile again (a release re-signed to
   * extend its expiry) keeps the window. A profile that does not parse is logged and raised as a
   * `drift.reference_invalid` event; the model keeps the reference it had. Never throws.
   */
  installManifestReference(model: string, version: string, reference: unknown): LoadProfileResult {
    const monitor = this.monitor;
    if (!monitor) return { ok: false, error: 'the drift monitor is not started' };
    let result: LoadProfileResult;
    try {
      const profile = parseReferenceProfile(reference);
      const sha256 = profileSha256(profile);
      const current = monitor.result(model)?.reference;
      if (current?.source === 'manifest' && current.sha256 === sha256) {
        return { ok: true, model, sha256, features: current.features, rows: current.rows };
      }
      result = monitor.setReference(model, profile, 'manifest');
    } catch (err) {
      if (!(err instanceof ProfileError)) throw err;
      result = { ok: false, error: err.message };
    }
    if (result.ok) {
      this.publish();
      this.log?.info(
        { model, version, sha256: result.sha256, features: result.features },
        `drift reference of model ${model} installed from the manifest of ${version}`,
      );
      return result;
    }
    this.ctx?.selfMetrics(DRIFT).countError('profile_invalid');
    const message = `the drift reference in the manifest of ${model} ${version} was not installed: ${result.error}; the model keeps its previous reference (publish a new release with a profile from \`gpulse drift profile\`)`;
    this.log?.warn({ model, version, err: result.error }, message);
    this.ctx?.events.emit({
      type: 'drift.reference_invalid',
      severity: 'warning',
      source: DRIFT,
      message,
      labels: { model, source: 'manifest' },
      data: { version, error: result.error },
    });
    return result;
  }

  /**
   * Installs a reference profile shipped with a model version (e.g. in its update manifest):
   * `json` is the profile as parsed JSON or text. The window restarts on the new bins.
   */
  loadReferenceProfile(
    model: string,
    json: unknown,
    source: 'manifest' | 'file' | 'api' = 'manifest',
  ): LoadProfileResult {
    if (!this.monitor) return { ok: false, error: 'the drift monitor is not started' };
    let profile;
    try {
      profile = parseReferenceProfile(json);
    } catch (err) {
      if (err instanceof ProfileError) return { ok: false, error: err.message };
      throw err;
    }
    const result = this.monitor.setReference(model, profile, source);
    if (result.ok) this.publish();
    return result;
  }

  /** The monitor (for tests and for components that read drift results). */
  get driftMonitor(): DriftMonitor | undefined {
    return this.monitor;
  }

  private observe(model: string, payload: unknown, source: IngestSource): ObservationOutcome {
    if (!this.monitor)
      return { status: 'not_started', message: 'the drift monitor is not started' };
    const checked = validateObservations(payload, this.config.limits);
    if (!checked.ok) {
      this.monitor.reject(model, 'bad_payload');
      return {
        status: 'invalid',
        message: checked.problems.join('; '),
        problems: checked.problems,
      };
    }
    return this.ingest(model, checked.rows, source);
  }

  private ingest(
    model: string,
    rows: Parameters<DriftMonitor['ingest']>[1],
    source: IngestSource,
  ): ObservationOutcome {
    if (!this.monitor)
      return { status: 'not_started', message: 'the drift monitor is not started' };
    const result = this.monitor.ingest(model, rows, source);
    if (result.status === 'warmup' && result.remaining === 0) this.publish();
    return result;
  }

  private async loadProfileFiles(): Promise<void> {
    const monitor = this.monitor;
    const log = this.log;
    if (!monitor || !log) return;
    for (const [model, settings] of Object.entries(this.config.models)) {
      const path = settings.profile;
      if (!path) continue;
      try {
        const info = await stat(path);
        if (info.size > this.config.limits.referenceBytes) {
          throw new ProfileError(
            `${info.size} bytes is larger than drift.limits.referenceBytes (${this.config.limits.referenceBytes})`,
          );
        }
        const profile = parseReferenceProfile(await readFile(path, 'utf8'));
        const result = monitor.setReference(model, profile, 'file');
        if (!result.ok) throw new ProfileError(result.error);
      } catch (err) {
        this.ctx?.selfMetrics(DRIFT).countError('profile_invalid');
        log.error(
          { model, path, err: errorMessage(err) },
          `cannot load the reference profile of model ${model}; build one with \`gpulse drift profile --input DATA --out ${path}\``,
        );
      }
    }
  }

  private follow(model: string, path: string, from: 'end' | 'start'): void {
    const log = (this.log ?? this.ctx?.log)?.child({ model, path });
    if (!log || !this.ctx) return;
    let badLines = 0;
    const follower = new JsonLinesFollower({
      path,
      from,
      lineBytes: this.config.limits.lineBytes,
      clock: this.ctx.clock,
      log,
      onLongLine: () => {
        this.monitor?.reject(model, 'bad_line');
        if (badLines++ % 1000 === 0) {
          log.warn(
            { badLines, limit: this.config.limits.lineBytes },
            'prediction log line longer than drift.limits.lineBytes skipped',
          );
        }
      },
      onLine: (line) => {
        const parsed = parseObservations(line, this.config.limits);
        if (!parsed.ok) {
          this.monitor?.reject(model, 'bad_line');
          // Log the first bad line and then every 1000th: enough to diagnose, never a flood.
          if (badLines++ % 1000 === 0) {
            log.warn({ problems: parsed.problems, badLines }, 'prediction log line skipped');
          }
          return;
        }
        this.ingest(model, parsed.rows, 'file');
      },
    });
    this.followers.push(follower);
    follower.start();
  }

  private schedule(): void {
    const ctx = this.ctx;
    if (!ctx || this.stopped) return;
    this.timer = ctx.clock.setTimeout(() => {
      try {
        this.evaluateNow();
      } catch (err) {
        this.log?.error({ err: errorMessage(err) }, 'drift evaluation failed');
        ctx.selfMetrics(DRIFT).countError('evaluation_failed');
      }
      this.schedule();
    }, this.config.interval);
    this.timer.unref?.();
  }

  private publish(durationMs?: number): void {
    if (!this.ctx || !this.monitor || this.stopped) return;
    this.ctx.selfMetrics(DRIFT).ok(this.monitor.samples(), durationMs);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) this.ctx?.clock.clearTimeout(this.timer);
    await Promise.allSettled(this.followers.map((f) => f.stop()));
  }
}
