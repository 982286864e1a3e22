import type { Component } from '../core/component.js';
import type { AgentEvent, EventQuery } from '../core/events.js';

const QUERY_KEYS = new Set(['since', 'type', 'limit']);

/**
 * The query of `GET /api/v1/events`, checked by hand: three parameters do not justify loading a
 * schema library into every agent. Returns the query or every problem found.
 */
export function parseEventQuery(raw: unknown): { query: EventQuery } | { problems: string[] } {
  const problems: string[] = [];
  const params = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  for (const key of Object.keys(params)) {
    if (!QUERY_KEYS.has(key)) problems.push(`unknown parameter ${JSON.stringify(key)}`);
  }
  const text = (key: string): string | undefined => {
    const v = params[key];
    if (v === undefined) return undefined;
    if (typeof v === 'string') return v;
    problems.push(`${key}: expected one value`);
    return undefined;
  };
  let since: number | undefined;
  const sinceText = text('since');
  if (sinceText !== undefined) {
    // Unix seconds (as Prometheus' API takes them) or an RFC 3339 time.
    const ms = /^\d+(\.\d+)?$/.test(sinceText) ? Number(sinceText) * 1000 : Date.parse(sinceText);
    if (Number.isFinite(ms)) since = ms;
    else
      problems.push(
        `since: expected Unix seconds or an RFC 3339 time, got ${JSON.stringify(sinceText)}`,
      );
  }
  const type = text('type');
  if (type !== undefined && !/^[a-z0-9_.]+$/.test(type)) {
    problems.push('type: expected a dotted event type such as container.oom_kill');
  }
  let limit = 100;
  const limitText = text('limit');
  if (limitText !== undefined) {
    const n = limitText.trim() === '' ? NaN : Number(limitText);
    if (!Number.isInteger(n)) problems.push('limit: expected an integer');
    else if (n < 1) problems.push('limit: at least 1');
    else if (n > 1000) problems.push('limit: at most 1000');
    else limit = n;
  }
  if (problems.length > 0) return { problems };
  return { query: { ...(since !== undefined ? { since } : {}), ...(type ? { type } : {}), limit } };
}

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
        const parsed = parseEventQuery(request.query);
        if ('problems' in parsed) {
          return reply
            .code(400)
            .send({ error: 'bad_request', message: parsed.problems.join('; ') });
        }
        const events = ctx.events.list(parsed.query).map(eventJson);
        return { events };
      });
    },
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
  };
}
