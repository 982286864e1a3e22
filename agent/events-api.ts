import { z } from 'zod';
import type { Component } from './component.js';
import type { AgentEvent } from './events.js';

const query = z
  .object({
    since: z
      .string()
      .transform((v, ctx) => {
        // Unix seconds (as Prometheus' API takes them) or an RFC 3339 time.
        const ms = /^\d+(\.\d+)?$/.test(v) ? Number(v) * 1000 : Date.parse(v);
        if (!Number.isFinite(ms)) {
          ctx.addIssue({
            code: 'custom',
            message: `since: expected Unix seconds or an RFC 3339 time, got ${JSON.stringify(v)}`,
          });
          return z.NEVER;
        }
        return ms;
      })
      .optional(),
    type: z
      .string()
      .regex(/^[a-z0-9_.]+$/, 'type: expected a dotted event type such as container.oom_kill')
      .optional(),
    limit: z.coerce
      .number()
      .int('limit: expected an integer')
      .min(1, 'limit: at least 1')
      .max(1000, 'limit: at most 1000')
      .default(100),
  })
  .strict();

/** An event as the API shows it: the stored event plus its time in RFC 3339. */
export function eventJson(e: AgentEvent): AgentEvent & { readonly time: string } {
  return { ...e, time: new Date(e.ts).toISOString() };
}

/**
 * `GET /api/v1/events`: the agent's recent events, newest first, as JSON. Query: `since` (Unix
 * seconds or RFC 3339), `type` (exact or a prefix such as `container`), `limit` (1-1000, default 100).
 */
export function createEventsApi(): Component {
  return {
    name: 'events-api',
    register(ctx) {
      ctx.app.get('/api/v1/events', async (request, reply) => {
        const parsed = query.safeParse(request.query);
        if (!parsed.success) {
          return reply.code(400).send({
            error: 'bad_request',
            message: parsed.error.issues.map((i) => i.message).join('; '),
          });
        }
        const events = ctx.events.list(parsed.data).map(eventJson);
        return { events };
      });
    },
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
  };
}
