// The collector seam: every registered collector satisfies the same contract, and a collector
// that exists only in this test (an `amd-smi` stand-in) joins the configuration, the edge preset,
// the agent and /metrics through its descriptor and nothing else.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { systemClock } from '../agent/core/clock.js';
import { collectorsSchemaOf, loadConfig, type AgentConfig } from '../agent/config.js';
import { setting, zCollectorMode, zInterval } from '../agent/config-schema.js';
import { gauge } from '../agent/core/metric.js';
import { loadChecks } from '../agent/doctor/checks/index.js';
import { collectorEdgeDefaults } from '../agent/preset.js';
import { settings } from '../agent/settings.generated.js';
import { settingBindings } from '../agent/settings-generator.js';
import { startAgentInProcess } from '../test/helpers/agent.js';
import { REPO_ROOT } from '../test/helpers/cli.js';
import { silentLogger } from '../test/helpers/log-sink.js';
import { defineCollector } from './descriptor.js';
import { collectorRegistry, createCollectors, loadCollectorSchemas } from './index.js';

const amdGpus = gauge('gpulse_test_amd_gpus', 'GPUs the stand-in amd-smi collector sees');

/** A collector registered only here: its folder would hold this descriptor and its modules. */
const amdSmi = defineCollector({
  name: 'amd-smi',
  produces: [],
  loadSchema: () =>
    Promise.resolve(
      z
        .object({
          mode: setting(zCollectorMode.default('auto'), {
            env: 'GPULSE_AMD_SMI_MODE',
            description: 'run the amd-smi collector',
          }),
          interval: zInterval(100).default(5000),
        })
        .strict(),
    ),
  edgeDefaults: [[['interval'], '30s']],
  create: (section) =>
    Promise.resolve({
      kind: 'polled' as const,
      name: 'amd-smi',
      intervalMs: section.interval,
      timeoutMs: 1000,
      collect: () => Promise.resolve({ samples: [{ desc: amdGpus, labels: {}, value: 2 }] }),
    }),
  loadMetrics: () => Promise.resolve(),
  loadDoctorCheck: () =>
    Promise.resolve({
      id: 'amd-smi',
      title: 'amd-smi',
      run: () => Promise.resolve({ status: 'skip' as const, required: false, finding: 'stand-in' }),
    }),
});

const deps = { clock: systemClock, env: {} };

describe('every registered collector', () => {
  it('owns its settings, has a mode and validates its section alone', async () => {
    const schemas = await loadCollectorSchemas();
    // Every collector setting of the CLI's table belongs to a registered collector.
    const names = collectorRegistry.map((d) => d.name as string);
    const owners = settings.filter((s) => s.path[0] === 'collectors').map((s) => s.path[1]!);
    expect(owners.filter((n) => !names.includes(n))).toEqual([]);
    for (const d of collectorRegistry) {
      expect(
        settings.some((s) => s.path.join('.') === `collectors.${d.name}.mode`),
        d.name,
      ).toBe(true);
      const schema = schemas[d.name] as z.ZodType<{ mode: string }>;
      expect(schema.parse({}).mode, d.name).toBe('auto');
      expect(schema.safeParse({ mode: 'sometimes' }).success, d.name).toBe(false);
      expect(schema.safeParse({ unknownKey: 1 }).success, d.name).toBe(false);
    }
  });

  it('is created when on and not at all when off', async () => {
    for (const d of collectorRegistry) {
      const mode = settings.find((s) => s.path.join('.') === `collectors.${d.name}.mode`)!;
      const on = loadConfig({ env: { [mode.env!]: 'auto' } }).config;
      const off = loadConfig({ env: { [mode.env!]: 'off' } }).config;
      const names = async (c: AgentConfig) =>
        (await createCollectors(c, deps)).map((collector) => collector.name);
      expect(await names(on), d.name).toContain(d.name);
      expect(await names(off), d.name).not.toContain(d.name);
    }
  });
});

describe('a collector added through its descriptor alone', () => {
  it('gets a validated section with defaults and edge-preset defaults', async () => {
    const schema = collectorsSchemaOf({
      ...(await loadCollectorSchemas()),
      'amd-smi': await amdSmi.loadSchema(),
    });
    const parsed = schema.parse({ 'amd-smi': { interval: '2s' } });
    expect(parsed['amd-smi']).toEqual({ mode: 'auto', interval: 2000 });
    expect(parsed.dcgm.mode).toBe('auto');
    expect(schema.safeParse({ 'amd-smi': { interval: 'soon' } }).success).toBe(false);
    // Its env variable comes from its schema, as a registered collector's reach the CLI's table.
    expect(settingBindings(schema)).toContainEqual({
      path: ['amd-smi', 'mode'],
      env: 'GPULSE_AMD_SMI_MODE',
      valueName: 'auto|required|off',
      description: 'run the amd-smi collector',
    });
    expect(collectorEdgeDefaults([...collectorRegistry, amdSmi])).toContainEqual([
      ['collectors', 'amd-smi', 'interval'],
      '30s',
    ]);
  });

  it('adds its check to gpulse doctor, after the other collectors', async () => {
    const ids = (await loadChecks()).map((c) => c.id);
    const withAmd = (await loadChecks([...collectorRegistry, amdSmi])).map((c) => c.id);
    expect(withAmd).toEqual([
      ...ids.slice(0, ids.indexOf('dcgm') + 1),
      'amd-smi',
      ...ids.slice(ids.indexOf('dcgm') + 1),
    ]);
    // (The order of the registered checks themselves is agent/doctor/doctor.test.ts's to assert.)
  });

  it('runs in the agent and is served on /metrics with its collector status', async () => {
    const { config } = loadConfig({});
    const withAmd = {
      ...config,
      collectors: { ...config.collectors, 'amd-smi': { mode: 'auto', interval: 200 } },
    };
    const created = await createCollectors(withAmd, deps, [amdSmi]);
    expect(created.map((c) => c.name)).toEqual(['amd-smi']);
    const off = { ...withAmd, collectors: { ...withAmd.collectors, 'amd-smi': { mode: 'off' } } };
    expect(await createCollectors(off, deps, [amdSmi])).toEqual([]);

    const agent = await startAgentInProcess(
      { GPULSE_DCGM_MODE: 'off', GPULSE_KMSG_MODE: 'off', GPULSE_DOCKER_MODE: 'off' },
      silentLogger(),
      created,
    );
    try {
      const body = await agent.waitForMetrics((b) => b.includes('gpulse_test_amd_gpus 2'));
      expect(body).toContain('gpulse_collector_up{collector="amd-smi"} 1');
    } finally {
      await agent.stop();
    }
  });
});

/** Production sources under `dir` (no tests, no simulators, which stand in for the GPU tools). */
function sources(dir: string): { path: string; text: string }[] {
  return readdirSync(join(REPO_ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.includes('simulator'))
    .map((f) => ({ path: join(dir, f), text: readFileSync(join(REPO_ROOT, dir, f), 'utf8') }));
}

describe('facts flow one way, from collectors to their readers', () => {
  it('every fact kind something reads is one a registered collector produces', () => {
    const produced = new Set<string>(collectorRegistry.flatMap((d) => d.produces));
    const read = new Map<string, string>();
    for (const { path, text } of ['agent', 'collectors', 'edge', 'exporters'].flatMap(sources)) {
      const kinds = [
        ...text.matchAll(/collectFacts\(\w+, '(\w+)'\)/g),
        ...text.matchAll(/facts\?\.(\w+)/g),
      ].map((m) => m[1]!);
      for (const kind of kinds) read.set(kind, relative(REPO_ROOT, join(REPO_ROOT, path)));
    }
    // The reads this test must see, or its patterns have gone stale.
    expect([...read.keys()]).toEqual(expect.arrayContaining(['gpus', 'containerIncidents']));
    const orphans = [...read].filter(([kind]) => !produced.has(kind));
    expect(orphans).toEqual([]);
  });

  it("every kind a collector declares is written by its own folder's code", () => {
    for (const d of collectorRegistry) {
      const text = sources(join('collectors', d.name))
        .map((s) => s.text)
        .join('\n');
      for (const kind of d.produces) {
        // A facts object names it as a key (`gpus: readings`) or by shorthand (`{ gpus, ... }`).
        expect(new RegExp(`\\b${kind}\\s*[:,}]`).test(text), `${d.name} ${kind}`).toBe(true);
      }
    }
  });
});
