import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, vi } from 'vitest';
import { systemClock } from '../../agent/core/clock.js';
import { CollectorRunner } from '../../agent/core/collector-runner.js';
import { StateStore } from '../../agent/core/state-store.js';
import type { CollectContext, Collector, CollectorState, Sample } from '../../agent/core/types.js';
import { captureLogger, silentLogger } from './log-sink.js';

/** One collector running under the agent's own runner and store, as a test drives it. */
export interface CollectorRun {
  readonly store: StateStore;
  /** Log records written so far. */
  readonly records: Record<string, unknown>[];
  /** The collector's state in the store now. */
  readonly state: () => CollectorState;
  /** Waits (vi.waitFor) until `pred` holds for the state, and returns that state. */
  readonly until: (
    pred: (s: CollectorState) => boolean,
    timeoutMs?: number,
  ) => Promise<CollectorState>;
}

/** Stand-in programs and collector runs of one test file, cleaned up by vitest hooks. */
export interface CollectorHarness {
  /** The folder the stand-ins (and whatever they write) live in. */
  readonly dir: string;
  /**
   * Writes an executable stand-in for a GPU tool: `script` is JavaScript run by this Node.
   * Real processes, so exits, hangs and garbage are real too.
   */
  standIn(name: string, script: string): string;
  /** Starts `collector` under a CollectorRunner (stopped after each test). */
  run(collector: Collector, options?: { readonly timeoutMs?: number }): CollectorRun;
}

/** What the state looked like when a wait gave up (without the bulky output). */
function shown(s: CollectorState | undefined): string {
  if (s === undefined) return 'no state yet';
  return JSON.stringify({ ...s, output: undefined, health: undefined, errors: [...s.errors] });
}

/**
 * The harness of the collector tests: call once at the top of a test file. Registers an afterEach
 * that stops the runners of each test and an afterAll that removes the stand-ins' folder.
 */
export function collectorHarness(prefix: string): CollectorHarness {
  const dir = mkdtempSync(join(tmpdir(), `gpulse-${prefix}-`));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await Promise.all(stops.splice(0).map((s) => s()));
  });
  return {
    dir,
    standIn(name, script) {
      const path = join(dir, name);
      writeFileSync(path, `#!${process.execPath}\n${script}`);
      chmodSync(path, 0o755);
      return path;
    },
    run(collector, options = {}) {
      const { log, records } = captureLogger();
      const store = new StateStore({ clock: systemClock, log });
      const runner = new CollectorRunner([collector], {
        clock: systemClock,
        log,
        store,
        random: () => 0.5,
      });
      runner.start();
      stops.push(() => runner.stop());
      const state = (): CollectorState => store.current().collectors.get(collector.name)!;
      const until = (pred: (s: CollectorState) => boolean, timeoutMs = options.timeoutMs ?? 8000) =>
        vi.waitFor(
          () => {
            const s = store.current().collectors.get(collector.name);
            if (s === undefined || !pred(s)) throw new Error(`state not reached; now ${shown(s)}`);
            return s;
          },
          { timeout: timeoutMs, interval: 25 },
        );
      return { store, records, state, until };
    },
  };
}

/** The value of the first series `name` whose labels include `labels` (undefined when absent). */
export function sampleValue(
  samples: readonly Sample[],
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  return samples.find(
    (s) => s.desc.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;
}

/** A context for calling a polling collector's collect() directly, without a runner. */
export function collectContext(
  now: () => number = () => Date.now(),
  log = silentLogger(),
): CollectContext {
  return { signal: new AbortController().signal, log, now };
}
