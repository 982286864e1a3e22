import { describe, expect, it } from 'vitest';
import { parseEventQuery } from './events-api.js';

describe('parseEventQuery', () => {
  it('defaults the limit to 100 and passes a type prefix through', () => {
    expect(parseEventQuery({})).toEqual({ query: { limit: 100 } });
    expect(parseEventQuery({ type: 'container', limit: '5' })).toEqual({
      query: { type: 'container', limit: 5 },
    });
  });

  it('reads since as Unix seconds or as an RFC 3339 time', () => {
    expect(parseEventQuery({ since: '1700000000.5' })).toEqual({
      query: { since: 1_700_000_000_500, limit: 100 },
    });
    expect(parseEventQuery({ since: '2026-11-28T12:00:00Z' })).toEqual({
      query: { since: Date.UTC(2026, 10, 28, 12), limit: 100 },
    });
  });

  it('reports every problem at once', () => {
    const parsed = parseEventQuery({ since: 'yesterday', type: 'OOM!', limit: '0', color: 'red' });
    expect(parsed).toEqual({
      problems: [
        'unknown parameter "color"',
        'since: expected Unix seconds or an RFC 3339 time, got "yesterday"',
        'type: expected a dotted event type such as container.oom_kill',
        'limit: at least 1',
      ],
    });
  });

  it('rejects limits that are not integers in 1-1000 and repeated parameters', () => {
    expect(parseEventQuery({ limit: '2.5' })).toEqual({ problems: ['limit: expected an integer'] });
    expect(parseEventQuery({ limit: '' })).toEqual({ problems: ['limit: expected an integer'] });
    expect(parseEventQuery({ limit: '1001' })).toEqual({ problems: ['limit: at most 1000'] });
    expect(parseEventQuery({ type: ['a', 'b'] })).toEqual({
      problems: ['type: expected one value'],
    });
  });
});
