import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { DriftConfig } from './config.js';
import { MODEL_NAME_RE } from './methods.js';
import type { DriftMonitor, LoadProfileResult } from './monitor.js';
import { ProfileError, parseReferenceProfile, PROFILE_FORMAT } from './profile.js';
import { ProfileBuildError, ProfileBuilder } from './profile-builder.js';
import { validateObservations } from './observations.js';
import type { ObservationOutcome } from './drift.js';

/** What the drift routes need from the component. */
export interface DriftRoutesDeps {
  readonly config: DriftConfig;
  readonly monitor: DriftMonitor;
  /** Ingests a parsed payload (shared with MQTT and the file follower). */
  readonly observe: (model: string, payload: unknown, source: 'http') => ObservationOutcome;
  /** Installs a reference and republishes the drift series. */
  readonly setReference: (model: string, payload: unknown) => LoadProfileResult;
}

interface ModelParams {
  readonly model: string;
}

const NDJSON = 'application/x-ndjson';

/** JSON in a text/plain body, or the text itself (then refused as not an array of rows). */
function parseLoose(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function badModel(reply: FastifyReply, model: string) {
  return reply.code(400).send({
    error: 'bad_request',
    message: `invalid model name ${JSON.stringify(model)}: use letters, digits, "_", "." and "-" (at most 128 characters)`,
  });
}

/** HTTP status and body of an ingest outcome. */
export function outcomeReply(
  model: string,
  outcome: ObservationOutcome,
): { status: number; body: Record<string, unknown> } {
  switch (outcome.status) {
    case 'accepted':
      return {
        status: 202,
        body: {
          model,
          accepted: outcome.rows,
          values: outcome.values,
          ignored: {
            unknownFeatures: outcome.unknownFeatures,
            typeMismatches: outcome.typeMismatches,
          },
          windowRows: outcome.windowRows,
        },
      };
    case 'warmup':
      return {
        status: 202,
        body: { model, accepted: outcome.rows, warmup: { remaining: outcome.remaining } },
      };
    case 'invalid':
      return {
        status: 400,
        body: { error: 'bad_request', message: outcome.message, problems: outcome.problems ?? [] },
      };
    case 'too_large':
      return { status: 413, body: { error: 'payload_too_large', message: outcome.message } };
    case 'unknown_model':
      return { status: 404, body: { error: 'unknown_model', message: outcome.message } };
    case 'no_reference':
      return { status: 409, body: { error: 'no_reference', message: outcome.message } };
    case 'not_started':
      return { status: 503, body: { error: 'not_started', message: outcome.message } };
  }
}

/**
 * Registers the drift API: observations and reference uploads per model, the latest drift result,
 * the reference profile, and a listing. Bodies are JSON (an array of rows) or JSON lines.
 */
export function registerDriftRoutes(app: FastifyInstance, deps: DriftRoutesDeps): void {
  const { config, monitor } = deps;
  const limits = config.limits;
  void app.register((scope, _options, done) => {
    // JSON lines (one row per line), convenient for log shippers; parsed here, validated later.
    scope.addContentTypeParser(
      NDJSON,
      { parseAs: 'string', bodyLimit: limits.referenceBytes },
      (_request, body, done) => {
        const rows: unknown[] = [];
        const lines = (body as string).split('\n');
        for (const [i, line] of lines.entries()) {
          if (line.trim() === '') continue;
          try {
            rows.push(JSON.parse(line));
          } catch (err) {
            const e = new Error(`line ${i + 1} is not valid JSON: ${(err as Error).message}`);
            (e as FastifyError).statusCode = 400;
            done(e, undefined);
            return;
          }
        }
        done(null, rows);
      },
    );

    scope.setErrorHandler((error: FastifyError, request, reply) => {
      const status = error.statusCode ?? 500;
      if (status === 413) {
        const limit = request.url.endsWith('/reference')
          ? `drift.limits.referenceBytes (${limits.referenceBytes} bytes)`
          : `drift.limits.bodyBytes (${limits.bodyBytes} bytes)`;
        return reply.code(413).send({
          error: 'payload_too_large',
          message: `the body is larger than ${limit}; send fewer rows per request`,
        });
      }
      if (status === 415) {
        return reply.code(415).send({
          error: 'unsupported_media_type',
          message: `send Content-Type: application/json (an array of row objects) or ${NDJSON} (one row object per line)`,
        });
      }
      if (status === 400) {
        return reply.code(400).send({
          error: 'bad_request',
          message: `the body is not valid JSON: ${error.message}`,
        });
      }
      request.log.error({ err: error.message }, 'drift API request failed');
      return reply.code(500).send({ error: 'internal', message: error.message });
    });

    /** A POST route that hands a model's body to `handle` once the model name is valid. */
    const postToModel = (
      path: 'observations' | 'reference',
      bodyLimit: number,
      handle: (model: string, payload: unknown, reply: FastifyReply) => FastifyReply,
    ): void => {
      scope.post<{ Params: ModelParams }>(
        `/api/v1/models/:model/${path}`,
        { bodyLimit },
        async (request, reply) => {
          const { model } = request.params;
          if (!MODEL_NAME_RE.test(model)) return badModel(reply, model);
          // fastify hands text/plain bodies over as strings; JSON sent as text/plain is common.
          const payload =
            typeof request.body === 'string' ? parseLoose(request.body) : request.body;
          return handle(model, payload, reply);
        },
      );
    };

    postToModel('observations', limits.bodyBytes, (model, payload, reply) => {
      const { status, body } = outcomeReply(model, deps.observe(model, payload, 'http'));
      return reply.code(status).send(body);
    });

    postToModel('reference', limits.referenceBytes, (model, payload, reply) => {
      const result = deps.setReference(model, payload);
      if (!result.ok) {
        const limit = /models are tracked already/.test(result.error);
        return reply
          .code(limit ? 409 : 400)
          .send({ error: limit ? 'model_limit' : 'bad_request', message: result.error });
      }
      return reply.code(201).send(result);
    });

    scope.get<{ Params: ModelParams }>('/api/v1/models/:model/drift', async (request, reply) => {
      const result = monitor.result(request.params.model);
      if (!result) {
        return reply.code(404).send({
          error: 'unknown_model',
          message: `no drift monitoring for model ${JSON.stringify(request.params.model)}; tracked: ${monitor.modelNames().join(', ') || 'none'}`,
        });
      }
      return result;
    });

    scope.get<{ Params: ModelParams }>(
      '/api/v1/models/:model/reference',
      async (request, reply) => {
        const profile = monitor.reference(request.params.model);
        if (!profile) {
          return reply.code(404).send({
            error: 'no_reference',
            message: `model ${JSON.stringify(request.params.model)} has no reference profile`,
          });
        }
        return profile;
      },
    );

    scope.get('/api/v1/drift', async (_request, reply) =>
      reply.send({
        models: monitor.modelNames().map((name) => {
          const r = monitor.result(name);
          return {
            model: name,
            reference: r?.reference ?? null,
            windowRows: r?.window.rows ?? 0,
            dataset: r?.dataset ?? null,
            evaluatedAt: r?.evaluatedAt ?? null,
          };
        }),
      }),
    );
    done();
  });
}

/**
 * Turns a reference upload into a profile: a profile object (format gpulse.drift-profile) as is,
 * or an array of rows summarised on the spot.
 */
export function referenceFromPayload(
  payload: unknown,
  model: string,
  config: DriftConfig,
): { ok: true; profile: ReturnType<typeof parseReferenceProfile> } | { ok: false; error: string } {
  try {
    if (
      typeof payload === 'object' &&
      payload !== null &&
      !Array.isArray(payload) &&
      'format' in payload
    ) {
      return { ok: true, profile: parseReferenceProfile(payload) };
    }
    if (!Array.isArray(payload)) {
      return {
        ok: false,
        error: `expected an array of reference rows or a profile object with "format": "${PROFILE_FORMAT}"`,
      };
    }
    const checked = validateObservations(payload, config.limits);
    if (!checked.ok) return { ok: false, error: checked.problems.join('; ') };
    const builder = new ProfileBuilder({ maxFeatures: config.limits.features });
    for (const row of checked.rows) builder.add(row);
    // Handed out later by GET .../reference: it must pass the schema every reader applies.
    return { ok: true, profile: parseReferenceProfile(builder.build({ model, source: 'api' })) };
  } catch (err) {
    if (err instanceof ProfileError || err instanceof ProfileBuildError) {
      return { ok: false, error: err.message };
    }
    throw err;
  }
}
