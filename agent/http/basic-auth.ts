import { createHmac, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as Bcrypt from 'bcryptjs';

/** What a request's credentials amount to. */
export type AuthOutcome = 'ok' | 'denied' | 'busy';

/** Options of the basic-auth check (defaults fit an exporter scraped by a few clients). */
export interface BasicAuthOptions {
  /** Verdicts remembered, as exporter-toolkit's cache (default 100). */
  readonly cacheSize?: number;
  /** Different credentials checked or waiting at once before more are refused as busy (default 16). */
  readonly maxWaiting?: number;
}

/**
 * bcrypt of "fakepassword", compared for an unknown user so that the answer takes as long as for
 * a known one (no user enumeration by timing), as exporter-toolkit does.
 */
const DECOY_HASH = '$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi';

/** User and password of an `Authorization: Basic` header, as Go's Request.BasicAuth reads it. */
export function parseBasicAuth(
  header: string | undefined,
): { user: string; password: string } | undefined {
  if (header === undefined || header.length < 6 || header.slice(0, 6).toLowerCase() !== 'basic ') {
    return undefined;
  }
  const encoded = header.slice(6);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded) || encoded.length % 4 !== 0) return undefined;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Checks basic-auth credentials against bcrypt hashes (`basic_auth_users`). A bcrypt costs about
 * 70-150 ms of CPU at cost 10, so each verdict is remembered per (user, hash, password), keyed by
 * an HMAC under a per-process key rather than the password itself: a scrape pays the bcrypt once,
 * not every 15 seconds. Granted and refused verdicts are kept apart, so a client guessing
 * passwords cannot push a scraper's out. Verifications run one at a time (bcryptjs yields to the
 * event loop every 100 ms, so /metrics keeps answering during one), and past `maxWaiting`
 * different credentials in line a request is refused as busy instead of piling up.
 */
export class BasicAuth {
  /** Verdicts by credential; failures apart, so a guessing client cannot evict a good one. */
  private readonly granted = new Map<string, true>();
  private readonly refused = new Map<string, false>();
  private readonly key = randomBytes(32);
  private readonly cacheSize: number;
  private readonly maxWaiting: number;
  private readonly pending = new Map<string, Promise<boolean>>();
  private queue: Promise<unknown> = Promise.resolve();
  private bcrypt: typeof Bcrypt | undefined;

  constructor(
    private readonly users: Readonly<Record<string, string>>,
    options: BasicAuthOptions = {},
  ) {
    this.cacheSize = options.cacheSize ?? 100;
    this.maxWaiting = options.maxWaiting ?? 16;
  }

  /** The verdict on an Authorization header. */
  async check(header: string | undefined): Promise<AuthOutcome> {
    const credentials = parseBasicAuth(header);
    if (!credentials) return 'denied';
    const known = Object.hasOwn(this.users, credentials.user);
    const hash = known ? (this.users[credentials.user] ?? DECOY_HASH) : DECOY_HASH;
    // JSON keeps the three apart: no user name can pose as another user's name and hash
    // (CVE-2022-46146 poisoned exporter-toolkit's cache with a concatenated key).
    const cacheKey = createHmac('sha256', this.key)
      .update(JSON.stringify([credentials.user, hash, credentials.password]))
      .digest('base64');
    const cached = this.granted.get(cacheKey) ?? this.refused.get(cacheKey);
    if (cached !== undefined) return cached ? 'ok' : 'denied';
    // Requests with the same credentials while they are checked wait for that one check.
    let pending = this.pending.get(cacheKey);
    if (!pending) {
      if (this.pending.size >= this.maxWaiting) return 'busy';
      // A hash bcryptjs cannot read (validated at load, so not expected) is a refusal.
      const turn = this.queue
        .then(() => this.compare(credentials.password, hash))
        .catch(() => false);
      this.queue = turn;
      pending = turn.then((match) => {
        const ok = match && known;
        if (ok) remember(this.granted, cacheKey, true, this.cacheSize);
        else remember(this.refused, cacheKey, false, this.cacheSize);
        return ok;
      });
      this.pending.set(cacheKey, pending);
      void pending.finally(() => this.pending.delete(cacheKey));
    }
    return (await pending) ? 'ok' : 'denied';
  }

  private compare(password: string, hash: string): Promise<boolean> {
    // Loaded on first use: an agent without basic_auth_users never pays for it.
    this.bcrypt ??= createRequire(import.meta.url)('bcryptjs') as typeof Bcrypt;
    return this.bcrypt.compare(password, hash);
  }
}

/** Adds to a bounded cache, dropping the oldest tenth at once when full rather than one per miss. */
function remember<V>(cache: Map<string, V>, key: string, value: V, size: number): void {
  if (cache.size >= size) {
    let drop = Math.max(1, Math.floor(cache.size / 10));
    for (const k of cache.keys()) {
      cache.delete(k);
      if (--drop === 0) break;
    }
  }
  cache.set(key, value);
}
