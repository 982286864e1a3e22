import { describe, expect, it } from 'vitest';
import { nameProblem } from './manifest.js';
import { ModelPaths } from './state.js';

describe('model and version names', () => {
  it('accepts ordinary names and refuses the endings of the work directories of older builds', () => {
    for (const ok of ['1.0.0', '7.0.0-rc.1', 'v2+build.7', 'partial', '1.partial.2', 'old-3'])
      expect(nameProblem(ok), ok).toBeUndefined();
    expect(nameProblem('7.0.0.partial')).toMatch(/reserved/);
    expect(nameProblem('7.0.0.old-1234')).toMatch(/reserved/);
    expect(nameProblem('.partial-7.0.0')).toMatch(/letters, digits/);
    expect(nameProblem('../etc')).toMatch(/letters, digits/);
  });

  it('keeps the work directory of every valid version apart from every valid version', () => {
    const paths = new ModelPaths('/m');
    // A work directory starts with a dot; no valid name does, so none can be another's work dir.
    expect(paths.partial('7.0.0')).toBe('/m/versions/.partial-7.0.0');
    expect(nameProblem('.partial-7.0.0')).toBeDefined();
    expect(paths.oldCopy('7.0.0')).toMatch(/^\/m\/versions\/\.old-7\.0\.0-\d+$/);
  });
});
