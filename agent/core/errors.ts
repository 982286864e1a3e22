/** "Nothing to report on this host" (no GPU, no socket): a state, not a failure. */
export class NoDataError extends Error {
  readonly code = 'GPULSE_NO_DATA';
  /** Short stable label value, e.g. `binary_not_found`. */
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'NoDataError';
    this.reason = reason;
  }
}

/** A collector failure with a short stable reason for the `reason` label. */
export class CollectorError extends Error {
  readonly code = 'GPULSE_COLLECTOR_ERROR';
  readonly reason: string;
  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CollectorError';
    this.reason = reason;
  }
}

/** Invalid configuration; `problems` lists every error with its path. */
export class ConfigError extends Error {
  readonly code = 'GPULSE_CONFIG_INVALID';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Message of any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
