// The generated deploy files (alert rules, PrometheusRule, Grafana dashboards) match their sources
// in deploy/generate/: `npm run docs` rewrites them, `npm test` fails when they drift.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderAll } from '../../deploy/generate/render.js';
import { REPO_ROOT } from '../helpers/cli.js';

describe('generated deploy files', () => {
  it('match deploy/generate (run `npm run docs` to regenerate)', async () => {
    const files = await renderAll();
    expect(files.size).toBeGreaterThanOrEqual(7);
    for (const [rel, text] of files) {
      const path = join(REPO_ROOT, rel);
      if (process.env.UPDATE_DOCS === '1') {
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, text);
        continue;
      }
      let current = '';
      try {
        current = readFileSync(path, 'utf8');
      } catch {
        // missing: reported by the comparison below
      }
      expect(current, `${rel} is out of date: run \`npm run docs\``).toBe(text);
    }
  });
});
