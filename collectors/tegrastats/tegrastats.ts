import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import type { Logger } from 'pino';
import {
  ChildStream,
  type LineVerdict,
  type StreamExit,
} from '../../agent/process/child-stream.js';
import { systemClock, type Clock } from '../../agent/core/clock.js';
import { CollectorError, NoDataError } from '../../agent/core/errors.js';
import { SampleBuilder } from '../../agent/core/metric.js';
import type { SpawnFn } from '../../agent/process/process.js';
import type { StreamSink, StreamingCollector } from '../../agent/core/types.js';
import type { TegrastatsConfig } from './config.js';
import { resolveIdentity, type JetsonIdentity } from './identity.js';
import { parseTegrastatsLine } from './parse.js';
import { gpuReadingOf, tegrastatsHealthMetrics, tegrastatsSamples } from './series.js';

/** Collector name: folder, config key, log field and `collector` label value. */
export const TEGRASTATS = 'tegrastats';

/** What the collector needs from outside. */
export interface TegrastatsDeps {
  readonly clock?: Clock;
  readonly spawnFn?: SpawnFn;
  readonly env?: NodeJS.ProcessEnv;
  readonly random?: () => number;
  /** nvidia-smi to ask for the GPU's UUID (`-L`); undefined when the nvidia-smi collector is off. */
  readonly nvidiaSmi?: string;
}

/** Builds the tegrastats collector: one long-lived `tegrastats --interval <ms>`. */
export function createTegrastatsCollector(
  config: TegrastatsConfig,
  deps: TegrastatsDeps = {},
): StreamingCollector {
  return new TegrastatsCollector(config, deps);
}

/** Where `binary` resolves (a path, or a name looked up on PATH); undefined when nowhere. */
export async function findExecutable(
  binary: string,
  pathVar: string | undefined,
): Promise<string | undefined> {
  const candidates = binary.includes('/')
    ? [binary]
    : (pathVar ?? '')
        .split(delimiter)
        .filter((d) => d !== '')
        .map((d) => join(d, binary));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function notFoundMessage(binary: string): string {
  return (
    `no Jetson found: \`${binary}\` is not installed or not on PATH. On a Jetson, run as a user ` +
    'that may run tegrastats, or set GPULSE_TEGRASTATS (--tegrastats) to its path (in a ' +
    'container, mount /usr/bin/tegrastats); `gpulse simulate --profile jetson-orin` simulates one.'
  );
}

class TegrastatsCollector implements StreamingCollector {
  readonly kind = 'streaming';
  readonly name = TEGRASTATS;
  private readonly clock: Clock;
  private sink: StreamSink | undefined;
  private log: Logger | undefined;
  private stream: ChildStream | undefined;
  private identity: JetsonIdentity | undefined;
  private rejected = 0;
  private unknownFields = 0;
  private readonly unknownSeen = new Set<string>();
  private lastOutput = '';
  private stopped = false;

  constructor(
    private readonly config: TegrastatsConfig,
    private readonly deps: TegrastatsDeps,
  ) {
    this.clock = deps.clock ?? systemClock;
  }

  async start(sink: StreamSink, log: Logger): Promise<void> {
    this.sink = sink;
    this.log = log;
    this.stopped = false;
    const env = this.deps.env ?? process.env;
    const { binary, mode } = this.config;
    // Checked before anything else so a host without tegrastats (not a Jetson) costs no process.
    if ((await findExecutable(binary, env.PATH)) === undefined) {
      const message = notFoundMessage(binary);
      if (mode === 'auto') throw new NoDataError('binary_not_found', message);
      throw new CollectorError('binary_not_found', message);
    }
    this.identity ??= await resolveIdentity({
      root: this.config.root,
      model: this.config.model,
      uuid: this.config.uuid,
      nvidiaSmi: this.deps.nvidiaSmi,
      timeoutMs: this.config.timeout,
      env,
      spawnFn: this.deps.spawnFn,
    });
    if (this.stopped) return;
    log.info(
      {
        binary,
        model: this.identity.model,
        uuid: this.identity.uuid,
        from: this.identity.uuidSource,
      },
      'starting tegrastats',
    );
    const stream = new ChildStream({
      command: binary,
      args: ['--interval', String(this.config.interval)],
      env,
      stallMs: this.config.stallIntervals * this.config.interval,
      clock: this.clock,
      spawnFn: this.deps.spawnFn,
      random: this.deps.random,
      onLine: (line) => this.onLine(line),
      onStart: () => this.reportHealth(),
      onExit: (exit) => this.onExit(exit),
    });
    this.stream = stream;
    stream.start();
    this.reportHealth();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.stream?.stop();
    this.stream = undefined;
  }

  private onLine(line: string): LineVerdict {
    if (this.stopped || line.trim() === '' || !this.identity) return 'ignored';
    const started = this.clock.now();
    const reading = parseTegrastatsLine(line);
    if (!reading) {
      this.rejected++;
      // Keep the tool's own words: an error message explains the exit that usually follows.
      this.lastOutput = line.trim().slice(0, 400);
      this.sink?.countError('parse_error');
      this.reportHealth();
      return 'rejected';
    }
    if (reading.unknown.length > 0) this.noteUnknown(reading.unknown);
    const gpu = gpuReadingOf(reading, this.identity);
    this.sink?.ok(
      { samples: tegrastatsSamples(reading, this.identity, gpu), facts: { gpus: [gpu] } },
      this.clock.now() - started,
    );
    return 'accepted';
  }

  private noteUnknown(fields: readonly string[]): void {
    this.unknownFields += fields.length;
    const fresh = fields.filter((f) => !this.unknownSeen.has(f));
    // Once per field name, not once per line: a newer JetPack prints it every interval.
    if (fresh.length > 0 && this.unknownSeen.size < 100) {
      for (const f of fresh) this.unknownSeen.add(f);
      this.log?.info(
        { fields: fresh },
        'tegrastats printed fields this agent does not know; they are skipped, the rest is kept',
      );
    }
    this.reportHealth();
  }

  private onExit(exit: StreamExit): void {
    this.reportHealth();
    if (this.stopped) return;
    const binary = this.config.binary;
    const said = [this.lastOutput, exit.stderr].filter(Boolean).join(' / ').slice(0, 400);
    const suffix = said ? `: "${said}"` : '';
    this.lastOutput = '';
    let reason: string;
    let message: string;
    if (exit.kind === 'spawn_error') {
      if (exit.spawnReason === 'not_found') {
        if (this.config.mode === 'auto') {
          this.sink?.noData('binary_not_found', notFoundMessage(binary));
          return;
        }
        reason = 'binary_not_found';
        message = notFoundMessage(binary);
      } else {
        reason = exit.spawnReason ?? 'spawn_failed';
        message = `${binary} could not start (${reason}): ${exit.stderr}`;
      }
    } else if (exit.kind === 'stall') {
      reason = 'hang';
      message = `${binary} printed nothing for ${this.config.stallIntervals} intervals and was killed; restarting`;
    } else if (exit.kind === 'line_too_long') {
      reason = 'garbage_output';
      message = `${binary} printed an endless line; restarting`;
    } else if (exit.kind === 'garbage') {
      reason = 'garbage_output';
      message = `${binary} printed only lines that do not parse (${exit.rejected} rejected, none accepted)${suffix}; restarting with backoff`;
    } else if (exit.code === null) {
      reason = 'killed';
      message = `${binary} was killed by ${exit.signal ?? 'a signal'}${suffix}; restarting`;
    } else if (exit.code === 0) {
      reason = 'stream_ended';
      message = `${binary} ended its output unexpectedly${suffix}; restarting`;
    } else {
      reason = `exit_${exit.code}`;
      message = `${binary} failed (exit ${exit.code})${suffix}; restarting`;
    }
    this.sink?.fail(reason, message);
  }

  private reportHealth(): void {
    const m = tegrastatsHealthMetrics;
    const b = new SampleBuilder();
    if (this.stream) {
      b.add(m.restarts, {}, this.stream.restarts);
      b.add(m.streamUp, {}, this.stream.running);
    }
    b.add(m.rejectedLines, {}, this.rejected);
    b.add(m.unknownFields, {}, this.unknownFields);
    this.sink?.health(b.build());
  }
}
