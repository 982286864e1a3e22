// The README runs as written. Every `sh` block carries a marker comment just above it:
//   <!-- readme-test: run -->                       run with bash -e in the checkout; exit 0
//   <!-- readme-test: run, may exit 1: WHY -->      exit 0 or 1 (gpulse doctor on a host without a GPU)
//   <!-- readme-test: run, needs TOOL -->           run where TOOL is installed
//   <!-- readme-test: run against gpulse simulate --> run while a simulated agent serves :9489
//   <!-- readme-test: skip: WHY -->                 not run here (a GPU host, a cluster, a TLS broker ...)
// YAML blocks are checked as what they claim to be (`gpulse config`, `prometheus config`), `output`
// blocks are run and compared, and every gpulse command line in any block, skipped ones included,
// must use flags its command's --help lists. Ports (9489, 9490, 1883, 8000) and /tmp/gpulse-*
// paths are moved to free ports and a temporary directory so the examples run beside anything else.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../agent/config.js';
import { SIMULATED_PROFILES } from '../agent/simulate-options.js';
import {
  CLI,
  freePort,
  REPO_ROOT,
  requireBuild,
  startCli,
  type CliProcess,
} from './helpers/cli.js';
import { findTool, itWithTools, type RequiredTool, tools } from './helpers/tools.js';

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

/** One fenced block of the README with the marker comment above it. */
interface Block {
  readonly lang: string;
  readonly line: number;
  readonly marker: string | undefined;
  readonly text: string;
}

/** The fenced blocks of a Markdown text, in order. */
export function fencedBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i] ?? '');
    if (!open) continue;
    const end = lines.findIndex((l, j) => j > i && l.startsWith('```'));
    if (end < 0) throw new Error(`README.md:${i + 1}: a code block is never closed`);
    let k = i - 1;
    while (k >= 0 && (lines[k] ?? '').trim() === '') k--;
    const marker = /^<!-- readme-test: (.*) -->$/.exec(lines[k] ?? '')?.[1];
    blocks.push({
      lang: open[1] ?? '',
      line: i + 1,
      marker,
      text: lines.slice(i + 1, end).join('\n'),
    });
    i = end;
  }
  return blocks;
}

const blocks = fencedBlocks(README);
const shell = blocks.filter((b) => b.lang === 'sh');

/** The Debian package of each program a `run, needs TOOL` block may name. */
const PACKAGE_OF: Readonly<Record<string, string>> = { mosquitto: 'mosquitto', python3: 'python3' };

/** A program a README block needs, with its Debian package (the test above checks it is known). */
function neededTool(bin: string): RequiredTool {
  return { bin, pkg: PACKAGE_OF[bin] ?? `the package that has ${bin}` };
}

describe('README code blocks', () => {
  it('each sh block says whether it runs, and why not when it does not', () => {
    const unmarked = shell.filter((b) => !/^(run\b|skip: \S)/.test(b.marker ?? ''));
    expect(unmarked.map((b) => `README.md:${b.line}`)).toEqual([]);
    // A needed program names its Debian package when it is missing: add new ones to PACKAGE_OF.
    const needs = shell
      .filter((b) => b.marker?.startsWith('run'))
      .flatMap((b) => /needs (\S+)/.exec(b.marker ?? '')?.[1] ?? []);
    expect(needs.filter((bin) => PACKAGE_OF[bin] === undefined)).toEqual([]);
    expect(shell.filter((b) => b.marker?.startsWith('run')).length).toBeGreaterThanOrEqual(8);
  });

  for (const b of blocks.filter((x) => x.marker === 'prometheus config')) {
    const where = `README.md:${b.line}`;
    itWithTools(
      `${where} is a Prometheus configuration promtool accepts`,
      tools('promtool'),
      async () => {
        const dir = mkdtempSync(join(tmpdir(), 'gpulse-readme-prom-'));
        try {
          writeFileSync(join(dir, 'prometheus.yml'), b.text);
          const r = await run(findTool('promtool')!, [
            'check',
            'config',
            join(dir, 'prometheus.yml'),
          ]);
          expect(r.code, r.stdout + r.stderr).toBe(0);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );
  }

  it.each(
    blocks
      .filter((b) => b.marker === 'gpulse config')
      .map((b) => [`README.md:${b.line}`, b.text] as const),
  )('%s is a valid gpulse.yaml', (_where, text) => {
    expect(() => loadConfig({ file: { name: 'README.md', text } })).not.toThrow();
  });

  // Not integration tests: blocks that cannot run on any test machine (a GPU host, a cluster, a
  // TLS broker with a device's certificates). CI skips them too; the reason is the test's name.
  for (const b of blocks.filter((x) => x.lang === 'sh' && x.marker?.startsWith('skip: '))) {
    it.skip(`README.md:${b.line} not run here: ${b.marker?.slice('skip: '.length) ?? ''}`, () => {
      // Documented, not run: the reason is the test's name.
    });
  }
});

/** Every gpulse invocation in the README (any block, skipped ones too) with the flags it uses. */
function invocations(): { where: string; command: string[]; flags: string[] }[] {
  const out: { where: string; command: string[]; flags: string[] }[] = [];
  for (const b of blocks.filter((x) => x.lang === 'sh' || x.lang === 'text')) {
    const joined = b.text.replace(/\\\n\s*/g, ' ');
    for (const line of joined.split('\n')) {
      // Commands chained on one line (`cmd & other`, `a | b`) are checked one by one.
      for (const part of line.replace(/#.*$/, '').split(/&&|\|\||[|;&]/)) {
        const m = /(?:^|\s|\$ )(?:npx )?(gpulse(?:-edge|-gateway)?)\s+(.*)$/.exec(part);
        if (!m) continue;
        const words = (m[2] ?? '').trim().split(/\s+/);
        const tool = m[1] ?? 'gpulse';
        let command: string[];
        if (tool === 'gpulse-edge') command = ['run'];
        else if (tool === 'gpulse-gateway') command = ['gateway'];
        else if (['drift', 'model'].includes(words[0] ?? '')) {
          // `gpulse model keygen | publish | apply` in a synopsis names several at once.
          if (!/^[a-z]+$/.test(words[1] ?? '') || words[2] === '|') continue;
          command = words.slice(0, 2);
        } else if (/^[a-z]+$/.test(words[0] ?? '')) command = words.slice(0, 1);
        else continue;
        const flags = [...(m[2] ?? '').matchAll(/(?:^|[\s[|])(--[a-z][a-z0-9-]*)/g)]
          .map((f) => f[1] ?? '')
          .filter((f) => f !== '--help' && f !== '--version');
        out.push({ where: `README.md:${b.line}`, command, flags });
      }
    }
  }
  return out;
}

function run(
  file: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: REPO_ROOT, env: options.env, encoding: 'utf8', timeout: options.timeoutMs ?? 60_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('README command lines', () => {
  const calls = invocations();
  const commands = [...new Set(calls.map((c) => c.command.join(' ')))];

  // One --help per command (a second each on an idle machine; far more under a loaded CI).
  it('name commands that exist, with flags their --help lists', { timeout: 180_000 }, async () => {
    requireBuild();
    expect(commands).toEqual(
      expect.arrayContaining(['run', 'simulate', 'gateway', 'doctor', 'model apply']),
    );
    const problems: string[] = [];
    for (const command of commands) {
      const help = await run(process.execPath, [CLI, ...command.split(' '), '--help']);
      if (help.code !== 0) {
        problems.push(`gpulse ${command}: --help failed: ${help.stderr}`);
        continue;
      }
      for (const c of calls.filter((x) => x.command.join(' ') === command)) {
        for (const flag of c.flags) {
          if (!new RegExp(`(^|[\\s,])${flag}\\b`, 'm').test(help.stdout))
            problems.push(`${c.where}: gpulse ${command} has no ${flag}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('name every simulated profile, as gpulse simulate accepts them', () => {
    const row = README.split('\n').find((l) => l.startsWith('| `--profile NAME` |')) ?? '';
    const named = [...row.matchAll(/`([a-z0-9-]+)`/g)].map((m) => m[1]);
    expect(named).toEqual([...SIMULATED_PROFILES]);
  });

  it("`npx gpulse` is the checkout's own command after npm ci", { timeout: 300_000 }, async () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      version: string;
      bin: Record<string, string>;
      scripts: Record<string, string>;
    };
    expect(pkg.bin.gpulse).toBe('dist/agent/main.js');
    expect(pkg.scripts.prepare).toBe('npm run build');
    // --offline: the checkout's own command, never a package of that name from the registry.
    const r = await run('npx', ['--offline', 'gpulse', '--version'], { timeoutMs: 300_000 });
    expect(r.stdout).toBe(`${pkg.version}\n`);
  });
});

describe('README examples, run', () => {
  const work = mkdtempSync(join(tmpdir(), 'gpulse-readme-'));
  const ports = new Map<string, string>();
  let agent: CliProcess | undefined;

  beforeAll(async () => {
    requireBuild();
    for (const p of ['9489', '9490', '1883', '8000']) ports.set(p, String(await freePort()));
  });
  afterAll(async () => {
    await agent?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** The block as it runs here: free ports, a private temporary directory. */
  function localised(text: string): string {
    let out = text.replaceAll('/tmp/gpulse-', `${work}/gpulse-`);
    for (const [from, to] of ports) out = out.replace(new RegExp(`\\b${from}\\b`, 'g'), to);
    return out;
  }

  /** The environment without the caller's GPULSE_* settings, which would change what runs. */
  function cleanEnv(): NodeJS.ProcessEnv {
    return Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('GPULSE_') && k !== 'CI'),
    );
  }

  /**
   * `npx gpulse` runs the package's bin, dist/agent/main.js (the test above checks npx resolves
   * it so, offline): called directly, an example does not pay npm's start-up for every command.
   */
  const NPX_SHIM = `npx() { if [ "$1" = gpulse ]; then shift; node ${CLI} "$@"; else command npx "$@"; fi; }\n`;

  /** Runs a block with bash -e in its own process group, killed as a whole at the end. */
  function runBlock(script: string): Promise<{ code: number | null; out: string }> {
    return new Promise((resolve) => {
      const child = spawn('bash', ['-e', '-c', NPX_SHIM + script], {
        cwd: REPO_ROOT,
        // An agent started without --listen takes its default port, moved like the others.
        env: { ...cleanEnv(), GPULSE_LISTEN: `127.0.0.1:${ports.get('9489') ?? ''}` },
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const limit = setTimeout(() => killGroup(child.pid), 240_000);
      let code: number | null = null;
      child.once('exit', (c) => {
        code = c;
        // Background jobs the block did not stop (it failed before its `kill`) go with it.
        killGroup(child.pid);
      });
      child.once('close', () => {
        clearTimeout(limit);
        resolve({ code, out });
      });
    });
  }

  function killGroup(pid: number | undefined): void {
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }

  const runnable = blocks.filter((b) => b.marker?.startsWith('run') || b.marker === 'output');
  for (const b of runnable) {
    const marker = b.marker ?? '';
    const needs = /needs (\S+)/.exec(marker)?.[1];
    const title = `README.md:${b.line} (${marker})`;
    itWithTools(
      title,
      needs === undefined ? [] : [neededTool(needs)],
      async () => {
        if (marker === 'output') {
          const [first = '', ...expected] = b.text.split('\n');
          const command = first.replace(/^\$ /, '');
          const r = await run('bash', ['-c', `${NPX_SHIM}${command} 2>&1`], { env: cleanEnv() });
          expect(r.stdout).toBe(`${expected.join('\n')}\n`);
          return;
        }
        // The agent such a block talks to runs for that block only: others start their own on 9489.
        if (marker.includes('against gpulse simulate'))
          agent = await startCli(['simulate'], {}, { port: Number(ports.get('9489')) });
        const script = localised(b.text);
        writeFileSync(join(work, `block-${b.line}.sh`), script);
        const r = await runBlock(script).finally(async () => {
          await agent?.stop();
          agent = undefined;
        });
        const allowed = marker.includes('may exit 1') ? [0, 1] : [0];
        expect(allowed, `exit ${r.code}:\n${r.out}`).toContain(r.code);
        // A stack trace, a shell that cannot find a command, or an API error body fail the example.
        expect(r.out).not.toMatch(/command not found|"error":|^(Type|Range)?Error: /m);
      },
      300_000,
    );
  }
});
