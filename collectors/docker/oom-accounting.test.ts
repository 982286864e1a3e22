import { describe, expect, it } from 'vitest';
import { atMemoryLimit, OomAccounting } from './oom-accounting.js';

describe('OomAccounting', () => {
  it('one kill seen through every path is counted once', () => {
    const a = new OomAccounting();
    expect(a.event('c1', 'run1', 1000).added).toBe(1);
    // moby#27247: the same kill repeated as three oom events within a millisecond.
    expect(a.event('c1', 'run1', 1000.5).added).toBe(0);
    expect(a.event('c1', 'run1', 1001).added).toBe(0);
    expect(a.counter('c1', 'run1', 1).added).toBe(0);
    const last = a.oomKilled('c1', 'run1');
    expect(last).toEqual({
      added: 0,
      sources: ['oom_event', 'cgroup_counter', 'oom_killed'],
      runKills: 1,
    });
    expect(a.exit137AtLimit('c1', 'run1').added).toBe(0);
    expect(a.total('c1')).toBe(1);
  });

  it('a run where children were killed twice before the container died counts two', () => {
    const a = new OomAccounting();
    expect(a.counter('c1', 'run1', 0).added).toBe(0);
    expect(a.counter('c1', 'run1', 1).added).toBe(1);
    expect(a.event('c1', 'run1', 5000).added).toBe(0);
    expect(a.counter('c1', 'run1', 2).added).toBe(1);
    expect(a.event('c1', 'run1', 9000).added).toBe(0);
    expect(a.oomKilled('c1', 'run1').added).toBe(0);
    expect(a.total('c1')).toBe(2);
  });

  it('oom events seconds apart are separate kills when nothing else says otherwise', () => {
    const a = new OomAccounting(2000);
    a.event('c1', 'run1', 0);
    expect(a.event('c1', 'run1', 5000).added).toBe(1);
    expect(a.total('c1')).toBe(2);
  });

  it('each run counts on its own; totals add up across runs and containers', () => {
    const a = new OomAccounting();
    a.oomKilled('c1', 'run1');
    a.oomKilled('c1', 'run2');
    a.exit137AtLimit('c2', 'run1');
    expect(a.total('c1')).toBe(2);
    expect(a.total('c2')).toBe(1);
    // A counter that starts again at 0 in a new run does not undo anything.
    a.counter('c1', 'run3', 0);
    expect(a.total('c1')).toBe(2);
    a.forget('c1');
    expect(a.total('c1')).toBe(0);
  });
});

describe('atMemoryLimit', () => {
  it('needs a limit and usage within 10% of it (or a peak at it)', () => {
    const mib = 1024 * 1024;
    expect(atMemoryLimit(16 * mib, 15.9 * mib)).toBe(true);
    expect(atMemoryLimit(16 * mib, 2 * mib)).toBe(false);
    expect(atMemoryLimit(16 * mib, 2 * mib, 16 * mib)).toBe(true);
    expect(atMemoryLimit(undefined, 16 * mib)).toBe(false);
  });
});
