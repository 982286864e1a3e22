/**
 * exporter-toolkit's `rate_limit`: one token bucket over all requests, refilled with one token per
 * `intervalMs` up to `burst`, starting full (Go's rate.NewLimiter(rate.Every(interval), burst)).
 * Hand-written: a dozen lines, and the npm rate limiters count per client, not one bucket.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly intervalMs: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.at = now();
  }

  /** Takes a token if there is one. */
  allow(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + (t - this.at) / this.intervalMs);
    this.at = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
