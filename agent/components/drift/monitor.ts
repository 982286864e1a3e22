import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.js';
import type { EventLog } from '../../core/events.js';
import { SampleBuilder } from '../../core/metric.js';
import type { Sample } from '../../core/types.js';
import { errorMessage } from '../../core/errors.js';
import type { DriftConfig, DriftThresholds, FeatureOverride, ModelConfig } from './config.js';
import { DEFAULT_THRESHOLDS, MODEL_NAME_RE, P_VALUE_METHODS, type DriftMethod } from './methods.js';
import { DRIFT, driftMetrics } from './metrics.js';
import type { ObservationRow } from './observations.js';
import {
  parseReferenceProfile,
  profileSha256,
  type FeatureProfile,
  type ReferenceProfile,
} from './profile.js';
import { ProfileBuilder, ProfileBuildError } from './profile-builder.js';
import {
  chiSquareTest,
  jensenShannonDistance,
  ksPValue,
  ksStatistic,
  populationStabilityIndex,
  wassersteinNormed,
  zTestPValue,
} from './statistics.js';
import {
  CategoricalWindow,
  NumericWindow,
  type FeatureWindow,
  type MergedWindow,
  type WindowFootprint,
} from './window.js';

/** Where observations came from (the `source` label). */
export type IngestSource = 'http' | 'mqtt' | 'file';

/** Where a reference profile came from. */
export type ReferenceSource = 'file' | 'api' | 'manifest' | 'warmup';

/** Outcome of handing rows to the monitor. */
export type IngestResult =
  | {
      readonly status: 'accepted';
      readonly rows: number;
      /** Feature values counted into the window. */
      readonly values: number;
      /** Values of features the reference does not know (ignored). */
      readonly unknownFeatures: number;
      /** Values whose type does not fit their feature (a string for a numeric one). */
      readonly typeMismatches: number;
      readonly windowRows: number;
    }
  | { readonly status: 'warmup'; readonly rows: number; readonly remaining: number }
  | {
      readonly status: 'unknown_model' | 'no_reference' | 'invalid';
      readonly message: string;
      readonly problems?: readonly string[];
    };

/** Whether PSI is below, at the warn level, or at the alert level. */
export type PsiLevel = 'ok' | 'warn' | 'alert';

/** Latest result of one feature. */
export interface FeatureResult {
  readonly feature: string;
  readonly kind: 'numeric' | 'categorical';
  /** ok: judged this evaluation; insufficient_data: fewer than minSamples values in the window. */
  readonly status: 'ok' | 'insufficient_data';
  /** Method that decides drift, and why when it is not the configured one. */
  readonly method: DriftMethod;
  readonly methodNote?: string;
  readonly threshold: number;
  /** Score of the deciding method (absent without enough data). */
  readonly score?: number;
  /** Verdict of this evaluation alone, before hysteresis. */
  readonly drift?: boolean;
  /** Verdict after hysteresis (what gpulse_drift_detected shows). */
  readonly detected: boolean;
  /** Every statistic computed this evaluation, by method name (plus ks_statistic). */
  readonly scores: Readonly<Record<string, number>>;
  readonly psiLevel?: PsiLevel;
  readonly window: {
    readonly count: number;
    readonly nulls: number;
    readonly invalid: number;
    readonly mean?: number;
    readonly std?: number;
    readonly min?: number;
    readonly max?: number;
  };
  readonly reference: { readonly rows: number; readonly mean?: number; readonly std?: number };
  readonly streak: { readonly drifting: number; readonly clean: number };
}

/** Latest result of one model, as `GET /api/v1/models/{model}/drift` returns it. */
export interface ModelDriftResult {
  readonly model: string;
  /** ISO time of the evaluation (absent before the first). */
  readonly evaluatedAt?: string;
  readonly reference?: {
    readonly rows: number;
    readonly source: ReferenceSource;
    readonly sha256: string;
    readonly loadedAt: string;
    readonly features: number;
  };
  readonly warmup?: { readonly rows: number; readonly target: number };
  readonly window: {
    readonly rows: number;
    readonly buckets: number;
    readonly bucketSeconds: number;
    readonly minSamples: number;
  };
  readonly dataset?: {
    readonly share: number;
    readonly threshold: number;
    readonly detected: boolean;
    readonly judged: number;
    readonly drifting: readonly string[];
  };
  readonly features: readonly FeatureResult[];
}

/** Result of loading a reference profile. */
export type LoadProfileResult =
  | {
      readonly ok: true;
      readonly model: string;
      readonly sha256: string;
      readonly features: number;
      readonly rows: number;
    }
  | { readonly ok: false; readonly error: string };

/** Options of the drift monitor. */
export interface DriftMonitorOptions {
  readonly config: DriftConfig;
  readonly clock: Clock;
  readonly log: Logger;
  readonly events?: EventLog;
}

interface ModelSettings {
  readonly thresholds: DriftThresholds;
  readonly raise: number;
  readonly clear: number;
  readonly minSamples: number;
  readonly datasetShare: number;
  readonly method: 'auto' | DriftMethod;
  readonly features: Readonly<Record<string, FeatureOverride>>;
  readonly warmupRows: number;
}

interface FeatureState {
  readonly name: string;
  readonly profile: FeatureProfile;
  readonly window: FeatureWindow;
  readonly refCounts: Float64Array;
  readonly refSums: Float64Array;
  readonly refRows: number;
  readonly configured: 'auto' | DriftMethod;
  readonly threshold?: number;
  drifting: number;
  clean: number;
  detected: boolean;
}

interface ModelState {
  readonly name: string;
  readonly settings: ModelSettings;
  reference?: {
    readonly profile: ReferenceProfile;
    readonly sha256: string;
    readonly source: ReferenceSource;
    readonly loadedAt: number;
  };
  features: Map<string, FeatureState>;
  readonly slotEpochs: Float64Array;
  readonly slotRows: Float64Array;
  warmup?: ProfileBuilder;
  readonly observations: Map<IngestSource, number>;
  readonly rejected: Map<string, number>;
  evaluations: number;
  datasetDetected: boolean;
  last?: { readonly at: number; readonly features: FeatureResult[]; readonly share?: number };
}

const NUMERIC_METHODS: ReadonlySet<DriftMethod> = new Set([
  'ks',
  'wasserstein',
  'jensenshannon',
  'psi',
  'chisquare',
]);
const CATEGORICAL_METHODS: ReadonlySet<DriftMethod> = new Set([
  'chisquare',
  'z',
  'jensenshannon',
  'psi',
]);

function settingsOf(config: DriftConfig, model: ModelConfig | undefined): ModelSettings {
  return {
    thresholds: { ...DEFAULT_THRESHOLDS, ...config.thresholds, ...(model?.thresholds ?? {}) },
    raise: model?.hysteresis.raise ?? config.hysteresis.raise,
    clear: model?.hysteresis.clear ?? config.hysteresis.clear,
    minSamples: model?.minSamples ?? config.minSamples,
    datasetShare: model?.datasetShare ?? config.datasetShare,
    method: model?.method ?? 'auto',
    features: model?.features ?? {},
    warmupRows: model?.warmupRows ?? 0,
  };
}

function round(value: number): number {
  return Number.isFinite(value) ? Number(value.toPrecision(6)) : value;
}

/**
 * Streaming drift detection for the models a host serves: per-model reference profiles, sliding
 * windows of mergeable time buckets, evaluation with Evidently-compatible defaults, hysteresis,
 * events on drift start and end, and the drift series for /metrics.
 */
export class DriftMonitor {
  private readonly models = new Map<string, ModelState>();
  private readonly bucketMs: number;
  private readonly buckets: number;
  private readonly unknownRejected = new Map<string, number>();

  constructor(private readonly options: DriftMonitorOptions) {
    this.bucketMs = options.config.window.bucketPeriod;
    this.buckets = options.config.window.buckets;
    for (const [name, model] of Object.entries(options.config.models)) {
      this.models.set(name, this.newModel(name, model));
    }
  }

  /** Names of the models tracked. */
  modelNames(): string[] {
    return [...this.models.keys()].sort();
  }

  /** Whether the model is tracked (configured or given a reference). */
  has(model: string): boolean {
    return this.models.has(model);
  }

  private newModel(name: string, model: ModelConfig | undefined): ModelState {
    const settings = settingsOf(this.options.config, model);
    const state: ModelState = {
      name,
      settings,
      features: new Map(),
      slotEpochs: new Float64Array(this.buckets).fill(-1),
      slotRows: new Float64Array(this.buckets),
      observations: new Map(),
      rejected: new Map(),
      evaluations: 0,
      datasetDetected: false,
    };
    if (settings.warmupRows > 0) state.warmup = new ProfileBuilder(this.builderOptions());
    return state;
  }

  private builderOptions() {
    return { maxFeatures: this.options.config.limits.features, sampleRows: 100_000 };
  }

  /**
   * Installs a reference profile for a model (a new model if the limit allows): the window and
   * hysteresis restart, since the current bins follow the reference's edges.
   */
  setReference(model: string, input: ReferenceProfile, source: ReferenceSource): LoadProfileResult {
    if (!MODEL_NAME_RE.test(model)) {
      return {
        ok: false,
        error: `invalid model name ${JSON.stringify(model)}: use letters, digits, "_", "." and "-" (at most 128 characters)`,
      };
    }
    let state = this.models.get(model);
    if (!state) {
      const max = this.options.config.limits.models;
      if (this.models.size >= max) {
        return {
          ok: false,
          error: `cannot track model ${JSON.stringify(model)}: ${max} models are tracked already (drift.limits.models)`,
        };
      }
      state = this.newModel(model, undefined);
      this.models.set(model, state);
    }
    const names = Object.keys(input.features);
    const limit = this.options.config.limits.features;
    if (names.length > limit) {
      return {
        ok: false,
        error: `the profile has ${names.length} features; drift.limits.features allows ${limit} (mark some "ignore" or raise the limit)`,
      };
    }
    this.endAll(state, 'the reference profile was replaced');
    const features = new Map<string, FeatureState>();
    for (const name of names) {
      const profile = input.features[name];
      const override = state.settings.features[name];
      if (!profile || override?.mode === 'ignore') continue;
      features.set(name, this.newFeature(name, profile, override, state.settings));
    }
    const sha256 = profileSha256(input);
    state.reference = { profile: input, sha256, source, loadedAt: this.options.clock.now() };
    state.features = features;
    state.warmup = undefined;
    state.slotEpochs.fill(-1);
    state.slotRows.fill(0);
    state.last = undefined;
    this.options.log.info(
      { model, source, sha256, features: features.size, rows: input.rows },
      'drift reference profile loaded',
    );
    return { ok: true, model, sha256, features: features.size, rows: input.rows };
  }

  private newFeature(
    name: string,
    profile: FeatureProfile,
    override: FeatureOverride | undefined,
    settings: ModelSettings,
  ): FeatureState {
    const window =
      profile.kind === 'numeric'
        ? new NumericWindow(profile, this.buckets)
        : new CategoricalWindow(profile, this.buckets);
    const refCounts =
      profile.kind === 'numeric'
        ? Float64Array.from(profile.counts)
        : Float64Array.from([...profile.categories.map((c) => c.count), profile.other]);
    const refSums =
      profile.kind === 'numeric'
        ? Float64Array.from(profile.sums)
        : new Float64Array(refCounts.length);
    const configured =
      override?.method && override.method !== 'auto' ? override.method : settings.method;
    return {
      name,
      profile,
      window,
      refCounts,
      refSums,
      refRows: profile.count + profile.nulls,
      configured,
      threshold: override?.threshold,
      drifting: 0,
      clean: 0,
      detected: false,
    };
  }

  /** Records that a payload for `model` was refused before reaching the window. */
  reject(model: string, reason: string, count = 1): void {
    const state = this.models.get(model);
    const map = state ? state.rejected : this.unknownRejected;
    map.set(reason, (map.get(reason) ?? 0) + count);
  }

  /** Counts validated rows into the model's current bucket (or its warm-up reference). */
  ingest(model: string, rows: readonly ObservationRow[], source: IngestSource): IngestResult {
    const state = this.models.get(model);
    if (!state) {
      this.reject(model, 'unknown_model', rows.length);
      return {
        status: 'unknown_model',
        message: `unknown model ${JSON.stringify(model)}: configure drift.models.${model} or POST its reference to /api/v1/models/${model}/reference first`,
      };
    }
    if (!state.reference) {
      const result = this.warmup(state, rows);
      if (result.status === 'warmup') this.count(state, source, rows.length);
      return result;
    }
    this.count(state, source, rows.length);
    const slot = this.slotFor(state, this.options.clock.now());
    const features = state.features;
    let values = 0;
    let unknown = 0;
    let mismatches = 0;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] as ObservationRow;
      for (const key in row) {
        const f = features.get(key);
        if (f === undefined) {
          unknown++;
          continue;
        }
        if (f.window.observe(slot, row[key] as ObservationRow[string])) values++;
        else mismatches++;
      }
    }
    state.slotRows[slot] = (state.slotRows[slot] as number) + rows.length;
    if (unknown > 0)
      state.rejected.set('unknown_feature', (state.rejected.get('unknown_feature') ?? 0) + unknown);
    if (mismatches > 0)
      state.rejected.set('type_mismatch', (state.rejected.get('type_mismatch') ?? 0) + mismatches);
    return {
      status: 'accepted',
      rows: rows.length,
      values,
      unknownFeatures: unknown,
      typeMismatches: mismatches,
      windowRows: this.windowRows(state),
    };
  }

  private count(state: ModelState, source: IngestSource, rows: number): void {
    state.observations.set(source, (state.observations.get(source) ?? 0) + rows);
  }

  private warmup(state: ModelState, rows: readonly ObservationRow[]): IngestResult {
    const builder = state.warmup;
    if (!builder) {
      this.reject(state.name, 'no_reference', rows.length);
      return {
        status: 'no_reference',
        message: `model ${JSON.stringify(state.name)} has no reference profile yet: POST one to /api/v1/models/${state.name}/reference, set drift.models.${state.name}.profile, or set drift.models.${state.name}.warmupRows`,
      };
    }
    const target = state.settings.warmupRows;
    try {
      for (const row of rows) {
        if (builder.rows >= target) break;
        builder.add(row);
      }
    } catch (err) {
      if (err instanceof ProfileBuildError) {
        state.warmup = new ProfileBuilder(this.builderOptions());
        return { status: 'invalid', message: err.message };
      }
      throw err;
    }
    if (builder.rows >= target) {
      let profile: ReferenceProfile;
      try {
        // As from any other source: what is installed (and later handed out) passes the schema.
        profile = parseReferenceProfile(builder.build({ model: state.name, source: 'warmup' }));
      } catch (err) {
        state.warmup = new ProfileBuilder(this.builderOptions());
        return { status: 'invalid', message: errorMessage(err) };
      }
      this.setReference(state.name, profile, 'warmup');
    }
    return { status: 'warmup', rows: rows.length, remaining: Math.max(0, target - builder.rows) };
  }

  private slotFor(state: ModelState, now: number): number {
    const epoch = Math.floor(now / this.bucketMs);
    const slot = epoch % this.buckets;
    if (state.slotEpochs[slot] !== epoch) {
      for (const f of state.features.values()) f.window.clear(slot);
      state.slotEpochs[slot] = epoch;
      state.slotRows[slot] = 0;
    }
    return slot;
  }

  private liveSlots(state: ModelState, now: number): number[] {
    const epoch = Math.floor(now / this.bucketMs);
    const out: number[] = [];
    for (let s = 0; s < this.buckets; s++) {
      const e = state.slotEpochs[s] as number;
      if (e >= 0 && e > epoch - this.buckets && e <= epoch) out.push(s);
    }
    return out;
  }

  private windowRows(state: ModelState): number {
    let rows = 0;
    for (const s of this.liveSlots(state, this.options.clock.now()))
      rows += state.slotRows[s] as number;
    return rows;
  }

  /** Judges every model with a reference; emits drift.start / drift.end on verdict changes. */
  evaluate(): void {
    for (const state of this.models.values()) {
      if (state.reference) this.evaluateModel(state);
    }
  }

  private evaluateModel(state: ModelState): void {
    const now = this.options.clock.now();
    const slots = this.liveSlots(state, now);
    let rows = 0;
    for (const s of slots) rows += state.slotRows[s] as number;
    const results: FeatureResult[] = [];
    let judged = 0;
    let drifting = 0;
    for (const f of state.features.values()) {
      const merged = f.window.merge(slots);
      const result = this.judge(state, f, merged, rows);
      results.push(result);
      if (result.status === 'ok') {
        judged++;
        if (f.detected) drifting++;
      }
    }
    if (judged > 0) state.evaluations++;
    const share = judged > 0 ? drifting / judged : undefined;
    state.last = { at: now, features: results, share };
    if (share === undefined) return;
    const detected = share >= state.settings.datasetShare;
    if (detected !== state.datasetDetected) {
      state.datasetDetected = detected;
      const names = results.filter((r) => r.detected).map((r) => r.feature);
      this.options.events?.emit({
        type: detected ? 'drift.start' : 'drift.end',
        severity: detected ? 'warning' : 'info',
        source: DRIFT,
        message: detected
          ? `dataset drift on model ${state.name}: ${drifting} of ${judged} features drift (share ${round(share)} ≥ ${state.settings.datasetShare})`
          : `dataset drift on model ${state.name} ended: ${drifting} of ${judged} features drift`,
        labels: { model: state.name, scope: 'dataset' },
        data: { share, threshold: state.settings.datasetShare, drifting: names, judged },
      });
    }
  }

  private methodFor(f: FeatureState, uniqueValues: number): { method: DriftMethod; note?: string } {
    const small = f.refRows <= this.options.config.smallReference;
    const auto: DriftMethod =
      f.profile.kind === 'numeric'
        ? small
          ? 'ks'
          : 'wasserstein'
        : small
          ? uniqueValues <= 2
            ? 'z'
            : 'chisquare'
          : 'jensenshannon';
    if (f.configured === 'auto') return { method: auto };
    const allowed = f.profile.kind === 'numeric' ? NUMERIC_METHODS : CATEGORICAL_METHODS;
    if (!allowed.has(f.configured) || (f.configured === 'z' && uniqueValues > 2)) {
      return {
        method: auto,
        note: `${f.configured} does not apply to this ${f.profile.kind} feature${f.configured === 'z' ? ' with more than two values' : ''}; using ${auto}`,
      };
    }
    return { method: f.configured };
  }

  private judge(
    state: ModelState,
    f: FeatureState,
    cur: MergedWindow,
    rows: number,
  ): FeatureResult {
    const settings = state.settings;
    const profile = f.profile;
    let unique = 0;
    for (let i = 0; i < f.refCounts.length; i++) {
      if ((f.refCounts[i] as number) + (cur.counts[i] as number) > 0) unique++;
    }
    const { method, note } = this.methodFor(f, unique);
    const threshold = f.threshold ?? settings.thresholds[method];
    const window = {
      count: cur.n,
      nulls: cur.nulls + Math.max(0, rows - cur.n - cur.nulls - cur.invalid),
      invalid: cur.invalid,
      ...(profile.kind === 'numeric' && cur.n > 0
        ? {
            mean: round(cur.mean),
            std: round(cur.std),
            min: cur.min,
            max: cur.max,
          }
        : {}),
    };
    const reference = {
      rows: f.refRows,
      ...(profile.kind === 'numeric' ? { mean: round(profile.mean), std: round(profile.std) } : {}),
    };
    const base = {
      feature: f.name,
      kind: profile.kind,
      method,
      ...(note ? { methodNote: note } : {}),
      threshold,
      window,
      reference,
    };
    if (rows < settings.minSamples || cur.n < settings.minSamples) {
      return {
        ...base,
        status: 'insufficient_data',
        detected: f.detected,
        scores: {},
        streak: { drifting: f.drifting, clean: f.clean },
      };
    }
    const scores: Record<string, number> = {};
    const psi = populationStabilityIndex(f.refCounts, cur.counts);
    scores.jensenshannon = jensenShannonDistance(f.refCounts, cur.counts);
    scores.psi = psi;
    if (profile.kind === 'numeric') {
      const d = ksStatistic(f.refCounts, cur.counts);
      scores.ks_statistic = d;
      scores.ks = ksPValue(d, profile.count, cur.n);
      scores.wasserstein = wassersteinNormed(
        profile.edges,
        { counts: f.refCounts, sums: f.refSums, min: profile.min, max: profile.max },
        { counts: cur.counts, sums: cur.sums, sumScale: cur.sumScale, min: cur.min, max: cur.max },
        profile.std,
      );
      if (method === 'chisquare') scores.chisquare = chiSquareTest(f.refCounts, cur.counts).pValue;
    } else {
      scores.chisquare = chiSquareTest(f.refCounts, cur.counts).pValue;
      if (unique <= 2) scores.z = zTestPValue(f.refCounts, cur.counts);
    }
    const score = scores[method] ?? NaN;
    const drift = P_VALUE_METHODS.has(method) ? score <= threshold : score >= threshold;
    this.step(state, f, drift, method, score, threshold);
    const psiLevel: PsiLevel =
      psi >= settings.thresholds.psi ? 'alert' : psi >= settings.thresholds.psiWarn ? 'warn' : 'ok';
    return {
      ...base,
      status: 'ok',
      score,
      drift,
      detected: f.detected,
      scores,
      psiLevel,
      streak: { drifting: f.drifting, clean: f.clean },
    };
  }

  /** Hysteresis: `raise` drifting evaluations in a row start drift, `clear` clean ones end it. */
  private step(
    state: ModelState,
    f: FeatureState,
    drift: boolean,
    method: DriftMethod,
    score: number,
    threshold: number,
  ): void {
    if (drift) {
      f.drifting++;
      f.clean = 0;
    } else {
      f.clean++;
      f.drifting = 0;
    }
    const data = { method, score, threshold };
    if (!f.detected && f.drifting >= state.settings.raise) {
      f.detected = true;
      this.options.events?.emit({
        type: 'drift.start',
        severity: 'warning',
        source: DRIFT,
        message: `input drift on model ${state.name}, feature ${f.name}: ${method} ${round(score)} (threshold ${threshold}) for ${f.drifting} evaluations`,
        labels: { model: state.name, feature: f.name, scope: 'feature' },
        data,
      });
    } else if (f.detected && f.clean >= state.settings.clear) {
      f.detected = false;
      this.options.events?.emit({
        type: 'drift.end',
        severity: 'info',
        source: DRIFT,
        message: `input drift on model ${state.name}, feature ${f.name} ended: ${method} ${round(score)} (threshold ${threshold})`,
        labels: { model: state.name, feature: f.name, scope: 'feature' },
        data,
      });
    }
  }

  private endAll(state: ModelState, why: string): void {
    for (const f of state.features.values()) {
      if (!f.detected) continue;
      this.options.events?.emit({
        type: 'drift.end',
        severity: 'info',
        source: DRIFT,
        message: `input drift on model ${state.name}, feature ${f.name} ended: ${why}`,
        labels: { model: state.name, feature: f.name, scope: 'feature' },
        data: { reason: why },
      });
    }
    if (state.datasetDetected) {
      state.datasetDetected = false;
      this.options.events?.emit({
        type: 'drift.end',
        severity: 'info',
        source: DRIFT,
        message: `dataset drift on model ${state.name} ended: ${why}`,
        labels: { model: state.name, scope: 'dataset' },
        data: { reason: why },
      });
    }
  }

  /** The reference profile of a model, if it has one. */
  reference(model: string): ReferenceProfile | undefined {
    return this.models.get(model)?.reference?.profile;
  }

  /** Latest result of a model (undefined for an unknown model). */
  result(model: string): ModelDriftResult | undefined {
    const state = this.models.get(model);
    if (!state) return undefined;
    const ref = state.reference;
    const last = state.last;
    const judged = last?.features.filter((r) => r.status === 'ok') ?? [];
    return {
      model,
      ...(last ? { evaluatedAt: new Date(last.at).toISOString() } : {}),
      ...(ref
        ? {
            reference: {
              rows: ref.profile.rows,
              source: ref.source,
              sha256: ref.sha256,
              loadedAt: new Date(ref.loadedAt).toISOString(),
              features: state.features.size,
            },
          }
        : {}),
      ...(state.warmup
        ? { warmup: { rows: state.warmup.rows, target: state.settings.warmupRows } }
        : {}),
      window: {
        rows: this.windowRows(state),
        buckets: this.buckets,
        bucketSeconds: this.bucketMs / 1000,
        minSamples: state.settings.minSamples,
      },
      ...(last?.share !== undefined
        ? {
            dataset: {
              share: last.share,
              threshold: state.settings.datasetShare,
              detected: state.datasetDetected,
              judged: judged.length,
              drifting: judged.filter((r) => r.detected).map((r) => r.feature),
            },
          }
        : {}),
      features: last?.features ?? [],
    };
  }

  /** Size of each feature's window state (constant per feature, whatever the traffic). */
  footprint(model: string): Map<string, WindowFootprint> {
    const out = new Map<string, WindowFootprint>();
    for (const f of this.models.get(model)?.features.values() ?? []) {
      out.set(f.name, f.window.footprint());
    }
    return out;
  }

  /** The drift series for /metrics, from the latest evaluation. */
  samples(): Sample[] {
    const b = new SampleBuilder();
    const m = driftMetrics;
    for (const state of this.models.values()) {
      const model = state.name;
      b.add(m.windowSamples, { model }, this.windowRows(state));
      for (const [source, n] of state.observations) b.add(m.observations, { model, source }, n);
      for (const [reason, n] of state.rejected) b.add(m.rejected, { model, reason }, n);
      b.add(m.evaluations, { model }, state.evaluations);
      const ref = state.reference;
      if (!ref) continue;
      b.add(m.referenceRows, { model }, ref.profile.rows);
      b.add(m.referenceInfo, { model, source: ref.source, sha256: ref.sha256 }, 1);
      for (const r of state.last?.features ?? []) {
        const feature = r.feature;
        b.add(m.detected, { model, feature }, r.detected);
        b.add(m.method, { model, feature, method: r.method }, 1);
        for (const [method, value] of Object.entries(r.scores)) {
          b.add(m.score, { model, feature, method }, value);
        }
        if (r.status !== 'ok') continue;
        b.add(m.threshold, { model, feature, method: r.method }, r.threshold);
        if (r.method !== 'psi')
          b.add(m.threshold, { model, feature, method: 'psi' }, state.settings.thresholds.psi);
        b.add(
          m.threshold,
          { model, feature, method: 'psi_warn' },
          state.settings.thresholds.psiWarn,
        );
      }
      if (state.last?.share !== undefined) {
        b.add(m.datasetShare, { model }, state.last.share);
        b.add(m.datasetDetected, { model }, state.datasetDetected);
      }
    }
    for (const [reason, n] of this.unknownRejected) b.add(m.rejected, { model: '', reason }, n);
    return b.build();
  }
}
