import { ConfigError } from '../../agent/core/errors.js';

/** The problems of the ConfigError that `fn` throws; fails when it throws nothing or another error. */
export function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}
