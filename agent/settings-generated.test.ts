// agent/settings.generated.ts is generated from the setting() marks on the configuration schemas,
// and this test keeps it in sync: `npm run docs` rewrites it, `npm test` fails when it drifts.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { format, resolveConfig } from 'prettier';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { REPO_ROOT } from '../test/helpers/cli.js';
import { agentConfigSchema } from './config.js';
import { setting, zBytes, zCollectorMode, zInt, zInterval } from './config-schema.js';
import { settings } from './settings.generated.js';
import { bindingProblems, settingBindings, settingsModuleSource } from './settings-generator.js';

const FILE = join(REPO_ROOT, 'agent', 'settings.generated.ts');

describe('the generated settings table', () => {
  it('is what the schemas give', async () => {
    const source = settingsModuleSource(settingBindings(agentConfigSchema));
    const wanted = await format(source, { ...(await resolveConfig(FILE)), filepath: FILE });
    if (process.env.UPDATE_DOCS === '1') writeFileSync(FILE, wanted);
    let current = '';
    try {
      current = readFileSync(FILE, 'utf8');
    } catch {
      // missing: reported by the comparison below
    }
    expect(current, 'agent/settings.generated.ts is out of date: run `npm run docs`').toBe(wanted);
  });

  it('binds each variable and flag once, to a GPULSE_* name', () => {
    expect(bindingProblems(settings)).toEqual([]);
  });
});

describe('settingBindings', () => {
  it('finds a mark on any layer of a field and walks nested objects in field order', () => {
    const schema = z.object({
      a: setting(z.string(), { env: 'GPULSE_A', description: 'a' }).optional(),
      nested: z
        .object({
          b: setting(z.number().default(1), { env: 'GPULSE_B', flag: 'b', description: 'b' }),
          unbound: z.string().optional(),
        })
        .default({ b: 1 }),
    });
    expect(settingBindings(schema)).toEqual([
      { path: ['a'], env: 'GPULSE_A', description: 'a' },
      { path: ['nested', 'b'], env: 'GPULSE_B', flag: 'b', description: 'b' },
    ]);
  });

  it("takes the placeholder a field's kind implies where its mark names none", () => {
    const schema = z.object({
      every: setting(zInterval(100).default(1000), { env: 'GPULSE_EVERY', description: 'e' }),
      count: setting(zInt(), { env: 'GPULSE_COUNT', description: 'c' }).default(8),
      size: setting(zBytes().optional(), { env: 'GPULSE_SIZE', description: 's' }),
      mode: setting(zCollectorMode.default('auto'), { env: 'GPULSE_MODE', description: 'm' }),
      named: setting(zInt(), { env: 'GPULSE_NAMED', valueName: 'PORT', description: 'n' }),
      none: setting(z.string(), { env: 'GPULSE_NONE', description: 'x' }),
    });
    expect(settingBindings(schema).map((b) => b.valueName)).toEqual([
      'DURATION',
      'N',
      'SIZE',
      'auto|required|off',
      'PORT',
      undefined,
    ]);
    expect(Object.keys(settingBindings(schema)[0] ?? {})).toEqual([
      'path',
      'env',
      'valueName',
      'description',
    ]);
  });

  it('reports a variable or flag bound twice', () => {
    expect(
      bindingProblems([
        { path: ['a'], env: 'GPULSE_X', flag: 'x', description: '' },
        { path: ['b'], env: 'GPULSE_X', flag: 'x', description: '' },
        { path: ['c'], env: 'NOT_OURS', description: '' },
      ]),
    ).toEqual([
      'GPULSE_X is bound to both a and b',
      '--x is bound to both a and b',
      'c: NOT_OURS is not a GPULSE_* name',
    ]);
  });
});
