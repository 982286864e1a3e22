// The CLI loads its configuration in a child process (agent/config-in-child.ts) so that zod and the
// schemas never enter the daemon's heap. The child's answer must equal what loading in-process gives.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../agent/config-loader.js';
import type { ConfigLoader } from '../../agent/config-loader.js';
import { REPO_ROOT, requireBuild, startCli } from '../helpers/cli.js';

let inChild: ConfigLoader;

beforeAll(async () => {
  requireBuild();
  // The child runs compiled JavaScript, so the test drives the build, as the CLI does.
  const built = join(REPO_ROOT, 'dist', 'agent', 'config-in-child.js');
  ({ loadAgentConfigInChild: inChild } = (await import(built)) as {
    loadAgentConfigInChild: ConfigLoader;
  });
});

describe('configuration loaded in a child process', () => {
  it('equals the in-process result for a file, variables and flags (edge preset, MQTT on)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpulse-config-child-'));
    const file = join(dir, 'gpulse.yaml');
    writeFileSync(file, 'collectors:\n  host:\n    interval: 45s\nmqtt:\n  site: plant-7\n');
    const options = { config: file, flags: { listen: '127.0.0.1:9555', preset: 'edge' } };
    const env = { GPULSE_MQTT_URL: 'mqtt://broker.example:1883', GPULSE_MQTT_NODE: 'cam-3' };
    const said: string[] = [];
    const fromChild = await inChild(options, env, (t) => said.push(t));
    const inProcess = loadAgentConfig(options, env, (t) => said.push(t));
    expect(said).toEqual([]);
    expect(fromChild).toEqual(inProcess);
    expect(fromChild?.config.listen).toEqual({ host: '127.0.0.1', port: 9555 });
    expect(fromChild?.config.collectors.host.interval).toBe(45_000);
    expect(fromChild?.config.mqtt.site).toBe('plant-7');
    expect(fromChild?.config.mqtt.node).toBe('cam-3');
    // The edge preset's choice survives the trip: no per-process stream on a small device.
    expect(fromChild?.config.collectors['nvidia-smi'].processes).toBe('off');
  });

  it('reports every problem on stderr and answers undefined for an invalid configuration', async () => {
    const said: string[] = [];
    const loaded = await inChild(
      { flags: { listen: 'nope', interval: '7' } },
      { GPULSE_NOT_A_SETTING: '1' },
      (t) => said.push(t),
    );
    expect(loaded).toBeUndefined();
    const text = said.join('');
    expect(text).toContain('listen: expected HOST:PORT');
    expect(text).toContain('collectors.nvidia-smi.interval: must be at least 100ms, got 7ms');
  });

  it('reports an unreadable config file with its path', async () => {
    const said: string[] = [];
    const loaded = await inChild({ config: '/nonexistent/gpulse.yaml', flags: {} }, {}, (t) =>
      said.push(t),
    );
    expect(loaded).toBeUndefined();
    expect(said.join('')).toContain('/nonexistent/gpulse.yaml: cannot read the config file');
  });
});

describe('the daemon itself', () => {
  it('never loads zod: every collector and component `gpulse simulate` starts stays out of it', async () => {
    // A module hook in every process of the agent says which process resolved zod: the config
    // child must, the daemon must not (a collector importing its config.ts would bring it).
    const dir = mkdtempSync(join(tmpdir(), 'gpulse-no-zod-'));
    const hook = join(dir, 'hook.mjs');
    writeFileSync(
      hook,
      [
        'export async function resolve(specifier, context, next) {',
        '  const r = await next(specifier, context);',
        "  if (r.url.includes('/node_modules/zod/') && !globalThis.seen) {",
        '    globalThis.seen = true;',
        '    process.stderr.write(`zod resolved in pid ${process.pid} from ${context.parentURL}\\n`);',
        '  }',
        '  return r;',
        '}',
        '',
      ].join('\n'),
    );
    const register = join(dir, 'register.mjs');
    writeFileSync(
      register,
      `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hook).href)});\n`,
    );
    const agent = await startCli(['simulate', '--interval', '500ms'], {
      NODE_OPTIONS: `--import ${register}`,
      GPULSE_LOG_LEVEL: 'warn',
    });
    try {
      // Every collector has run (the slowest polled ones start at once) before the check.
      await agent.waitForMetrics((b) => b.includes('gpulse_collector_up{collector="cri"}'));
    } finally {
      await agent.stop();
    }
    const loads = agent
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('zod resolved in pid'));
    // The config child's load proves the hook works; the daemon's own pid must not show up.
    expect(loads.length).toBeGreaterThan(0);
    expect(loads.filter((l) => l.startsWith(`zod resolved in pid ${agent.proc.pid} `))).toEqual([]);
  });
});
