import { describe, expect, it } from 'vitest';
import { TokenBucket } from './rate-limit.js';
import { connectionCap, openFilesLimit } from './limits.js';

describe('openFilesLimit', () => {
  it('reads the soft limit from /proc/self/limits', () => {
    const text = [
      'Limit                     Soft Limit           Hard Limit           Units     ',
      'Max processes             127488               127488               processes ',
      'Max open files            256                  1048576              files     ',
    ].join('\n');
    expect(openFilesLimit(text)).toBe(256);
    expect(
      openFilesLimit('Max open files            unlimited            unlimited            files'),
    ).toBeUndefined();
    expect(openFilesLimit('')).toBeUndefined();
    // This process: a number on Linux.
    expect(openFilesLimit()).toBeGreaterThan(0);
  });
});

describe('connectionCap', () => {
  it('keeps three quarters of the descriptors for the collectors', () => {
    expect(connectionCap(64, 1024)).toEqual({ max: 64 });
    expect(connectionCap(64, undefined)).toEqual({ max: 64 });
    expect(connectionCap(64, 128)).toEqual({
      max: 32,
      lowered: expect.stringMatching(/http\.maxConnections 64 lowered to 32: .* only 128 files/),
    });
    expect(connectionCap(64, 4).max).toBe(2);
  });
});

describe('TokenBucket', () => {
  it('starts full, refills one token per interval up to the burst', () => {
    let t = 0;
    const bucket = new TokenBucket(1000, 2, () => t);
    expect([bucket.allow(), bucket.allow(), bucket.allow()]).toEqual([true, true, false]);
    t = 500;
    expect(bucket.allow()).toBe(false);
    t = 1000;
    expect(bucket.allow()).toBe(true);
    t = 60_000;
    expect([bucket.allow(), bucket.allow(), bucket.allow()]).toEqual([true, true, false]);
  });

  it('with burst 0 refuses everything', () => {
    const bucket = new TokenBucket(1, 0, () => 1e9);
    expect(bucket.allow()).toBe(false);
  });
});
