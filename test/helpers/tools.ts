import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, it, type TestFunction } from 'vitest';
import { which } from '../../agent/doctor/settings.js';

/** A program an integration suite needs, and the Debian package that provides it. */
export interface RequiredTool {
  readonly bin: string;
  readonly pkg: string;
}

/** The Debian package of each program an integration suite may need (`.ci/run` installs them). */
export const DEBIAN_PACKAGE = {
  busybox: 'busybox-static',
  containerd: 'containerd',
  ctr: 'containerd',
  'docker-compose': 'docker-compose',
  dockerd: 'docker.io',
  kubectl: 'kubernetes-client',
  mosquitto: 'mosquitto',
  mosquitto_passwd: 'mosquitto',
  openssl: 'openssl',
  podman: 'podman',
  prometheus: 'prometheus',
  'prometheus-node-exporter': 'prometheus-node-exporter',
  promtool: 'prometheus',
  python3: 'python3-scipy',
  runc: 'runc',
  script: 'bsdutils',
  sh: 'dash',
  'systemd-analyze': 'systemd',
  tar: 'tar',
} as const;

/** The programs named, each with its Debian package. */
export function tools(...bins: (keyof typeof DEBIAN_PACKAGE)[]): RequiredTool[] {
  return bins.map((bin) => ({ bin, pkg: DEBIAN_PACKAGE[bin] }));
}

/** Something else an integration suite needs: whether it holds here, and how to make it hold. */
export interface Precondition {
  readonly met: boolean;
  /** What is missing and the fix, e.g. "needs read access to /dev/kmsg (run as root)". */
  readonly why: string;
}

/** Absolute path of a program on PATH (or the given absolute path), if executable. */
export function findTool(bin: string): string | undefined {
  // Tests look in the sbin folders too: dockerd and friends live there and root's PATH may lack them.
  return which(bin, { PATH: [process.env.PATH ?? '', '/usr/sbin', '/sbin'].join(delimiter) });
}

/** The precondition that every program is installed; `why` names the Debian packages. */
export function toolsInstalled(tools: readonly RequiredTool[]): Precondition {
  const missing = tools.filter((t) => findTool(t.bin) === undefined);
  const pkgs = [...new Set(missing.map((t) => t.pkg))].join(' ');
  return {
    met: missing.length === 0,
    why: `needs ${missing.map((t) => t.bin).join(', ')} (Debian: apt-get install ${pkgs})`,
  };
}

/** The precondition that this process may read a path (e.g. /dev/kmsg, root-only on most hosts). */
export function readable(path: string, fix: string): Precondition {
  let met = true;
  try {
    accessSync(path, constants.R_OK);
  } catch {
    met = false;
  }
  return { met, why: `needs read access to ${path} (${fix})` };
}

/** The precondition that this process runs as root (to start processes as another user). */
export function runningAsRoot(what: string): Precondition {
  return {
    met: process.getuid?.() === 0,
    why: `must run as root to ${what} (run the tests as root, as .ci/run does)`,
  };
}

/**
 * The precondition that a built file exists and is newer than every non-test `.ts` source in
 * `sourceDirs`: tests that run the built program would otherwise test old code.
 */
export function builtAndFresh(entry: string, sourceDirs: readonly string[]): Precondition {
  const why = `needs ${entry} built from the current sources (run \`npm run build\`; npm test does)`;
  if (!existsSync(entry)) return { met: false, why };
  const built = statSync(entry).mtimeMs;
  const sources = sourceDirs.flatMap((dir) =>
    readdirSync(dir)
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
      .map((f) => join(dir, f)),
  );
  return { met: sources.every((f) => statSync(f).mtimeMs <= built), why };
}

/** The reasons of the preconditions that do not hold, as one sentence ('' when all hold). */
function unmet(preconditions: readonly Precondition[]): string {
  return preconditions
    .filter((p) => !p.met)
    .map((p) => p.why)
    .join('; ');
}

/** Under CI=true a skipped integration test is a failure: CI must run every one. */
function underCi(): boolean {
  return process.env.CI === 'true';
}

/**
 * An integration suite that needs preconditions. When one does not hold it is skipped with a
 * message saying what is missing and how to fix it, except under CI=true, where a skipped
 * integration suite is a failure.
 */
export function describeWhen(
  name: string,
  preconditions: readonly Precondition[],
  body: () => void,
): void {
  const why = unmet(preconditions);
  if (why === '') {
    describe(name, body);
    return;
  }
  if (underCi()) {
    describe(name, () => {
      it(`cannot run: ${why}`, () => {
        throw new Error(`integration suite "${name}" ${why}; CI must not skip it`);
      });
    });
    return;
  }
  console.warn(`skipping integration suite "${name}": ${why}`);
  describe.skip(name, body);
}

/** One integration test that needs preconditions: skipped with its fix, failed under CI=true. */
export function itWhen(
  name: string,
  preconditions: readonly Precondition[],
  fn: TestFunction,
  timeout?: number,
): void {
  const why = unmet(preconditions);
  if (why === '') {
    it(name, fn, timeout);
    return;
  }
  if (underCi()) {
    it(name, () => {
      throw new Error(`integration test "${name}" ${why}; CI must not skip it`);
    });
    return;
  }
  console.warn(`skipping integration test "${name}": ${why}`);
  it.skip(`${name} (skipped: ${why})`, fn, timeout);
}

/**
 * An integration suite that needs real programs. Without them it is skipped with a message naming
 * the Debian packages, except under CI=true, where a skipped integration suite is a failure.
 */
export function describeWithTools(
  name: string,
  tools: readonly RequiredTool[],
  body: () => void,
): void {
  describeWhen(name, [toolsInstalled(tools)], body);
}

/** One integration test that needs real programs (see describeWithTools). */
export function itWithTools(
  name: string,
  tools: readonly RequiredTool[],
  fn: TestFunction,
  timeout?: number,
): void {
  itWhen(name, [toolsInstalled(tools)], fn, timeout);
}
