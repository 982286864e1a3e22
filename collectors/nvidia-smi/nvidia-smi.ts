import type { Logger } from 'pino';
import {
  ChildStream,
  type LineVerdict,
  type StreamExit,
} from '../../agent/process/child-stream.js';
import { systemClock, type Clock, type TimerHandle } from '../../agent/core/clock.js';
import { CollectorError, NoDataError, errorMessage } from '../../agent/core/errors.js';
import type { GpuProcess, GpuProcessUtilization, GpuReading } from '../../agent/core/facts.js';
import { counter, gauge, SampleBuilder } from '../../agent/core/metric.js';
import { CommandError, runCommand, type SpawnFn } from '../../agent/process/process.js';
import {
  attributeProcesses,
  ProcessContainers,
} from '../../agent/attribution/process-containers.js';
import { QuietTimer } from '../../agent/core/quiet-timer.js';
import type { StreamSink, StreamingCollector } from '../../agent/core/types.js';
import { gpuReadingSamples } from '../gpu-series.js';
import type { NvidiaSmiConfig } from './config.js';
import { classifyExit, notFoundMessage } from './exit-codes.js';
import { isIntegratedGpuName } from './integrated.js';
import {
  LostGpuTracker,
  parseDeviceHandleError,
  type DeviceHandleError,
  type PlacedHandleError,
} from './lost-gpu.js';
import { mergeXmlExtras, type XmlExtras } from './merge.js';
import {
  COMPUTE_APPS_FIELDS,
  parseComputeAppsRow,
  parseHelpQueryGpu,
  parseQueryGpuRow,
  selectQueryFields,
  splitCsvLine,
} from './parse-csv.js';
import { migLayoutKey, parseMigListing, withMigNames, type MigListing } from './parse-list.js';
import { parseNvidiaSmiXml } from './parse-xml.js';
import { PmonSampler } from './pmon.js';

/** Collector name: folder, config key, log field and `collector` label value. */
export const NVIDIA_SMI = 'nvidia-smi';

const metrics = {
  restarts: counter(
    'gpulse_nvidia_smi_restarts_total',
    'nvidia-smi streams restarted after an exit or a hang.',
    ['stream'],
  ),
  streamUp: gauge(
    'gpulse_nvidia_smi_stream_up',
    'Whether each long-lived nvidia-smi stream is running (0/1).',
    ['stream'],
  ),
  rejectedLines: counter(
    'gpulse_nvidia_smi_rejected_lines_total',
    'Output lines of nvidia-smi that did not parse (garbage, truncated rows).',
    ['stream'],
  ),
} as const;

type StreamName = 'query-gpu' | 'compute-apps' | 'xml' | 'pmon';

/** What the collector needs from outside. */
export interface NvidiaSmiDeps {
  readonly clock?: Clock;
  readonly spawnFn?: SpawnFn;
  readonly env?: NodeJS.ProcessEnv;
  readonly random?: () => number;
  /** The host's /proc: GPU processes are attributed to containers from `<procRoot>/<pid>/cgroup`. */
  readonly procRoot?: string;
}

/** Builds the nvidia-smi collector: long-lived CSV streams plus a slow `-q -x` stream. */
export function createNvidiaSmiCollector(
  config: NvidiaSmiConfig,
  deps: NvidiaSmiDeps = {},
): StreamingCollector {
  return new NvidiaSmiCollector(config, deps);
}

// Lines of one -lms tick arrive within milliseconds; a block is complete after this quiet time.
const BLOCK_QUIET_MS = 40;
/** A `-q -x` document larger than this is garbage (a real one of 8 GPUs is well under 1 MiB). */
export const MAX_XML_DOCUMENT_BYTES = 16 * 1024 * 1024;
/** Longest wait for the first -q -x document before the info series goes out without it. */
const IDENTITY_WAIT_MS = 30_000;

class NvidiaSmiCollector implements StreamingCollector {
  readonly kind = 'streaming';
  readonly name = NVIDIA_SMI;
  private readonly clock: Clock;
  private sink: StreamSink | undefined;
  private log: Logger | undefined;
  private streams = new Map<StreamName, ChildStream>();
  private fields: string[] = [];
  private block: GpuReading[] = [];
  /** Handle errors of the current block: GPUs nvidia-smi could not open. */
  private handles: PlacedHandleError[] = [];
  private readonly lostGpus = new LostGpuTracker();
  /**
   * Whether the identity is complete: the CUDA version comes only with the slower -q -x
   * document, and an info series whose labels change seconds after start is two series.
   */
  private identityComplete = false;
  private firstBlockAt: number | undefined;
  private blockStartedAt = 0;
  private readonly blockQuiet: QuietTimer;
  private appsBlock: GpuProcess[] = [];
  private readonly appsQuiet: QuietTimer;
  private processes: GpuProcess[] = [];
  private lastAppsAt = 0;
  private xmlLines: string[] = [];
  private xmlBytes = 0;
  private xmlExtras: XmlExtras = new Map();
  /** MIG profiles and UUIDs from `nvidia-smi -L`, asked again when the MIG layout changes. */
  private migListing: MigListing = new Map();
  private migListingKey = '';
  private listingMig = false;
  private lastOutput = new Map<StreamName, string>();
  private rejected = new Map<StreamName, number>();
  private stopped = false;
  /** Set once nvidia-smi turned out to see only an integrated Jetson GPU (see integrated.ts). */
  private stoodDown = false;
  private integratedNoted = false;
  private reprobeTimer: TimerHandle | undefined;
  private containers: ProcessContainers | undefined;
  private utilization: GpuProcessUtilization[] = [];
  private lastPmonAt = 0;
  private readonly pmonQuiet: QuietTimer;
  private readonly pmon = new PmonSampler((sample) => {
    this.utilization = this.containers ? attributeProcesses(sample, this.containers) : sample;
    this.lastPmonAt = this.clock.now();
  });

  constructor(
    private readonly config: NvidiaSmiConfig,
    private readonly deps: NvidiaSmiDeps,
  ) {
    this.clock = deps.clock ?? systemClock;
    // Without -q -x nothing will complete the identity: the CSV has all there is.
    this.identityComplete = config.xmlInterval <= 0;
    this.blockQuiet = new QuietTimer(this.clock, BLOCK_QUIET_MS, () => this.flushBlock());
    this.appsQuiet = new QuietTimer(this.clock, BLOCK_QUIET_MS, () => this.flushApps());
    // The last sample of a pmon burst has no successor to end it: a quiet moment does.
    this.pmonQuiet = new QuietTimer(this.clock, BLOCK_QUIET_MS, () => this.pmon.flush());
  }

  async start(sink: StreamSink, log: Logger): Promise<void> {
    this.sink = sink;
    this.log = log;
    this.stopped = false;
    if (this.deps.procRoot) {
      this.containers = new ProcessContainers({
        procRoot: this.deps.procRoot,
        now: () => this.clock.now(),
        log,
      });
    }
    const known = await this.probe();
    this.fields = selectQueryFields(known, this.config.excludeFields);
    if (this.fields.length === 0) {
      throw new CollectorError(
        'parse_error',
        `${this.config.binary} --help-query-gpu listed no usable fields`,
      );
    }
    log.info(
      { fields: this.fields.length, binary: this.config.binary },
      'starting nvidia-smi streams',
    );
    this.startStreams();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const q of [this.blockQuiet, this.appsQuiet, this.pmonQuiet]) q.cancel();
    if (this.reprobeTimer) this.clock.clearTimeout(this.reprobeTimer);
    await Promise.all([...this.streams.values()].map((s) => s.stop()));
    this.streams.clear();
  }

  /** Asks the driver which --query-gpu fields it knows (old drivers reject unknown ones). */
  private async probe(): Promise<string[]> {
    const binary = this.config.binary;
    try {
      const result = await runCommand(binary, ['--help-query-gpu'], {
        timeoutMs: this.config.timeout,
        env: this.deps.env,
        spawnFn: this.deps.spawnFn,
      });
      if (result.code !== 0) {
        const failure = classifyExit(
          binary,
          result.code,
          result.signal,
          result.stdout + result.stderr,
        );
        throw this.failureError(failure.reason, failure.message, failure.noGpu);
      }
      const known = parseHelpQueryGpu(result.stdout);
      if (known.length === 0) {
        throw new CollectorError(
          'parse_error',
          `${binary} --help-query-gpu printed no field names; is ${binary} really nvidia-smi?`,
        );
      }
      return known;
    } catch (err) {
      if (err instanceof CommandError) {
        if (err.reason === 'not_found')
          throw this.failureError('binary_not_found', notFoundMessage(binary), true);
        if (err.reason === 'permission_denied') {
          throw new CollectorError(
            'permission_denied',
            `${binary} is not executable by this user: ${err.message}`,
          );
        }
        if (err.reason === 'timeout') {
          throw new CollectorError('hang', `${err.message} (hung driver?); retrying with backoff`);
        }
        throw new CollectorError('spawn_failed', err.message);
      }
      throw err;
    }
  }

  private failureError(reason: string, message: string, noGpu: boolean): Error {
    if (noGpu && this.config.mode === 'auto') return new NoDataError(reason, message);
    return new CollectorError(reason, message);
  }

  private startStreams(): void {
    const interval = String(this.config.interval);
    const stallMs = this.config.stallIntervals * this.config.interval;
    this.addStream(
      'query-gpu',
      [`--query-gpu=${this.fields.join(',')}`, '--format=csv,noheader,nounits', '-lms', interval],
      stallMs,
      (line) => this.onGpuLine(line),
    );
    if (this.config.processes === 'on') {
      // No watchdog: a host without GPU processes prints nothing, which is not a hang.
      this.addStream(
        'compute-apps',
        [
          `--query-compute-apps=${COMPUTE_APPS_FIELDS.join(',')}`,
          '--format=csv,noheader,nounits',
          '-lms',
          interval,
        ],
        0,
        (line) => this.onAppsLine(line),
      );
    }
    if (this.config.xmlInterval > 0) {
      const seconds = Math.max(1, Math.round(this.config.xmlInterval / 1000));
      // -q -x can take seconds on big machines; allow for that on top of the silent intervals.
      const xmlStall = this.config.stallIntervals * seconds * 1000 + 30_000;
      this.addStream('xml', ['-q', '-x', '-l', String(seconds)], xmlStall, (line) =>
        this.onXmlLine(line),
      );
    }
    for (const s of this.streams.values()) s.start();
    this.reportHealth();
  }

  /**
   * pmon starts once the GPUs answer: a fourth nvidia-smi process at start-up would only slow
   * the first sample of the others (each real one loads NVML; each simulated one a node).
   */
  private startPmon(): void {
    if (this.config.pmon !== 'on' || this.stopped || this.streams.has('pmon')) return;
    // pmon samples per whole second (1-10); each sample prints every process (or a "-" row).
    const seconds = Math.min(10, Math.max(1, Math.round(this.config.interval / 1000)));
    this.addStream(
      'pmon',
      ['pmon', '-d', String(seconds)],
      this.config.stallIntervals * seconds * 1000,
      (line) => this.onPmonLine(line),
    );
    this.streams.get('pmon')?.start();
  }

  private onPmonLine(line: string): LineVerdict {
    // pmon names a GPU it could not open before its header; the query-gpu stream reports it.
    if (parseDeviceHandleError(line)) return 'accepted';
    if (!this.pmon.push(line)) return this.reject('pmon', line);
    this.pmonQuiet.poke();
    return 'accepted';
  }

  private addStream(
    name: StreamName,
    args: string[],
    stallMs: number,
    onLine: (line: string) => LineVerdict,
  ): void {
    const stream = new ChildStream({
      command: this.config.binary,
      args,
      env: this.deps.env,
      stallMs,
      clock: this.clock,
      spawnFn: this.deps.spawnFn,
      random: this.deps.random,
      onLine,
      onStart: () => this.reportHealth(),
      onExit: (exit) => this.onStreamExit(name, exit),
    });
    this.streams.set(name, stream);
  }

  private onGpuLine(line: string): LineVerdict {
    if (line.trim() === '') return 'ignored';
    const handle = parseDeviceHandleError(line);
    if (handle) {
      this.onHandleError(handle);
      return 'accepted';
    }
    const cells = splitCsvLine(line);
    // Drivers without an `index` field (very old ones) list GPUs in index order: use the position.
    let reading = parseQueryGpuRow(cells, this.fields, this.block.length);
    if (!reading) return this.reject('query-gpu', line);
    // A GPU seen twice means the previous tick is complete (by index; by uuid when the driver
    // has no index field).
    const key = this.fields.includes('index') ? 'index' : 'uuid';
    if (this.block.some((g) => g[key] === reading?.[key])) {
      this.flushBlock();
      reading = parseQueryGpuRow(cells, this.fields, 0) ?? reading;
    }
    if (this.block.length === 0 && this.handles.length === 0)
      this.blockStartedAt = this.clock.now();
    this.block.push(reading);
    this.blockQuiet.poke();
    return 'accepted';
  }

  /** A GPU nvidia-smi could not open, printed in its row's place: part of the block, not garbage. */
  private onHandleError(handle: DeviceHandleError): void {
    const same = (h: PlacedHandleError) =>
      h.pciBusId === handle.pciBusId && h.index === handle.index;
    if (this.handles.some(same)) this.flushBlock();
    if (this.block.length === 0 && this.handles.length === 0)
      this.blockStartedAt = this.clock.now();
    this.handles.push({ ...handle, position: this.block.length + this.handles.length });
    this.blockQuiet.poke();
  }

  private onAppsLine(line: string): LineVerdict {
    if (line.trim() === '' || /no running processes/i.test(line)) return 'ignored';
    // A lost GPU's line where its processes would be: they are gone with it.
    if (parseDeviceHandleError(line)) return 'accepted';
    const proc = parseComputeAppsRow(splitCsvLine(line), COMPUTE_APPS_FIELDS);
    if (!proc) return this.reject('compute-apps', line);
    // A process seen twice means the previous tick is complete: ticks read late (a starved
    // event loop) arrive back to back, within the quiet time.
    if (this.appsBlock.some((p) => p.pid === proc.pid && p.gpuUuid === proc.gpuUuid)) {
      this.flushApps();
    }
    this.appsBlock.push(proc);
    this.appsQuiet.poke();
    return 'accepted';
  }

  private onXmlLine(line: string): LineVerdict {
    if (line.startsWith('<?xml')) {
      this.xmlLines = [];
      this.xmlBytes = 0;
    }
    this.xmlLines.push(line);
    this.xmlBytes += line.length + 1;
    if (this.xmlBytes > MAX_XML_DOCUMENT_BYTES) {
      // Endless output that never closes the document: drop it, count it, restart the stream.
      this.xmlLines = [];
      this.xmlBytes = 0;
      this.sink?.countError('xml_too_large');
      return 'garbage';
    }
    if (!line.includes('</nvidia_smi_log>')) return 'ignored';
    const text = this.xmlLines.join('\n');
    this.xmlLines = [];
    this.xmlBytes = 0;
    // A whole document came: whatever it says, the identity is as complete as it gets.
    this.identityComplete = true;
    try {
      const doc = parseNvidiaSmiXml(text);
      this.xmlExtras = new Map(
        doc.gpus.map((g) => [
          g.uuid,
          {
            gpu: withMigNames(g, this.migListing),
            processes: doc.processes,
            cudaVersion: doc.cudaVersion,
          },
        ]),
      );
      const layout = migLayoutKey(doc.gpus);
      if (layout !== '' && layout !== this.migListingKey) this.listMig(layout);
    } catch (err) {
      this.sink?.countError('xml_parse_error');
      this.log?.warn(
        { err: errorMessage(err) },
        'nvidia-smi -q -x output did not parse; CSV values still served',
      );
      return 'rejected';
    }
    return 'accepted';
  }

  /** Runs `nvidia-smi -L` for the MIG profile names and UUIDs that `-q -x` does not give. */
  private listMig(layout: string): void {
    if (this.listingMig) return;
    this.listingMig = true;
    runCommand(this.config.binary, ['-L'], {
      timeoutMs: this.config.timeout,
      env: this.deps.env,
      spawnFn: this.deps.spawnFn,
    })
      .then((result) => {
        // With a GPU lost, -L still lists the others but exits non-zero: use what it listed.
        const listing = parseMigListing(result.stdout);
        if (listing.size === 0) throw new Error(`exit ${result.code ?? result.signal}`);
        this.migListing = listing;
        this.migListingKey = layout;
        this.xmlExtras = new Map(
          [...this.xmlExtras].map(([uuid, x]) => [
            uuid,
            { ...x, gpu: withMigNames(x.gpu, this.migListing) },
          ]),
        );
      })
      .catch((err: unknown) => {
        // Asked again with the next -q -x document; MIG series keep their ids meanwhile.
        this.sink?.countError('list_failed');
        this.log?.debug({ err: errorMessage(err) }, 'nvidia-smi -L failed; MIG profiles unknown');
      })
      .finally(() => {
        this.listingMig = false;
      });
  }

  private reject(stream: StreamName, line: string): 'rejected' {
    this.rejected.set(stream, (this.rejected.get(stream) ?? 0) + 1);
    // Keep the tool's own words: an error text ("NVIDIA-SMI has failed ...") explains the exit that follows.
    if (line.trim() !== '') this.lastOutput.set(stream, line.trim());
    // Like the extra streams' other errors, theirs carry the stream's name: only a GPU line that
    // does not parse is a failed reading of the GPUs (nvidia_smi_failed_scrapes_total counts those).
    this.sink?.countError(stream === 'query-gpu' ? 'parse_error' : `${stream}_parse_error`);
    this.reportHealth();
    return 'rejected';
  }

  private flushApps(): void {
    // Also called directly when a tick ends early: its pending quiet timer must not fire later
    // on an empty block (that would report "no processes" between two ticks).
    this.appsQuiet.cancel();
    this.processes = this.containers
      ? attributeProcesses(this.appsBlock, this.containers)
      : this.appsBlock;
    this.appsBlock = [];
    this.lastAppsAt = this.clock.now();
  }

  private flushBlock(): void {
    this.blockQuiet.cancel();
    if ((this.block.length === 0 && this.handles.length === 0) || this.stopped || this.stoodDown)
      return;
    const block = this.block;
    const handles = this.handles;
    this.block = [];
    this.handles = [];
    // An integrated Jetson GPU reports nearly nothing here; the tegrastats collector owns it,
    // so it never appears twice (once per collector) or as a GPU without values.
    const integrated = block.filter((g) => isIntegratedGpuName(g.name));
    const readings = block.filter((g) => !isIntegratedGpuName(g.name));
    if (integrated.length > 0) {
      if (readings.length === 0 && handles.length === 0) {
        this.standDown(integrated.map((g) => g.name ?? '').join(', '));
        return;
      }
      if (!this.integratedNoted) {
        this.integratedNoted = true;
        this.log?.info(
          { gpus: integrated.map((g) => g.uuid) },
          'integrated Jetson GPU left to the tegrastats collector',
        );
      }
    }
    const now = this.clock.now();
    // The apps stream is silent when no process holds GPU memory: silence means "none".
    if (now - this.lastAppsAt > 2.5 * this.config.interval) this.processes = [];
    this.startPmon();
    const gpus = mergeXmlExtras(readings, this.xmlExtras);
    // Identities as merged (the CUDA version comes from -q -x), so a lost GPU keeps all of it.
    const lost = this.lostGpus.update([...gpus, ...integrated], handles, now);
    const byUuid = new Map(gpus.map((g) => [g.uuid, g.index]));
    const left = new Set(integrated.map((g) => g.uuid));
    const processes = this.processes
      .filter((p) => !left.has(p.gpuUuid))
      .map((p) => ({
        ...p,
        gpuIndex: p.gpuIndex ?? byUuid.get(p.gpuUuid),
      }));
    const pmonSeconds = Math.min(10, Math.max(1, Math.round(this.config.interval / 1000)));
    this.firstBlockAt ??= now;
    // A -q -x that takes longer than this (a hung driver) does not hold the info series forever.
    if (now - this.firstBlockAt >= IDENTITY_WAIT_MS) this.identityComplete = true;
    if (now - this.lastPmonAt > 2.5 * pmonSeconds * 1000) this.utilization = [];
    this.sink?.ok(
      {
        // A lost GPU's series (up 0) come from GPU health, which joins it with DCGM's view.
        samples: gpuReadingSamples(gpus, { info: this.identityComplete }),
        facts: {
          gpus,
          lostGpus: lost,
          gpuProcesses: processes,
          gpuProcessUtilization: this.utilization,
        },
      },
      Math.max(0, now - this.blockStartedAt),
    );
  }

  /**
   * nvidia-smi sees only integrated Jetson GPUs: stop its streams for good (on a constrained
   * device they cost CPU for N/A values) and say which collector reports the GPU instead.
   */
  private standDown(names: string): void {
    this.stoodDown = true;
    this.appsQuiet.cancel();
    if (this.reprobeTimer) this.clock.clearTimeout(this.reprobeTimer);
    void Promise.all([...this.streams.values()].map((s) => s.stop())).then(() => {
      this.streams.clear();
      this.reportHealth();
    });
    this.sink?.noData(
      'integrated_gpu',
      `${this.config.binary} sees only the integrated Jetson GPU (${names}), whose values it ` +
        'reports as N/A; the tegrastats collector reports that GPU (collectors.tegrastats), ' +
        'so the nvidia-smi streams were stopped',
    );
  }

  private onStreamExit(name: StreamName, exit: StreamExit): void {
    this.reportHealth();
    if (this.stopped || this.stoodDown) return;
    const binary = this.config.binary;
    if (name === 'query-gpu') {
      // What it printed before it ended is a block like any other (a lost GPU's line included).
      this.flushBlock();
      this.block = [];
      this.handles = [];
      if (exit.kind === 'exit' && exit.code !== 0 && this.lostGpus.current().length > 0) {
        // nvidia-smi ends with NVML's error for a GPU it cannot open, after the others' rows:
        // the lost GPU is reported as such, the others keep their values until the restart.
        this.sink?.countError(
          `query-gpu_${classifyExit(binary, exit.code, exit.signal, '').reason}`,
        );
        this.log?.debug({ code: exit.code }, 'nvidia-smi ended after a lost GPU; restarting');
        return;
      }
      let failure;
      if (exit.kind === 'spawn_error') {
        failure =
          exit.spawnReason === 'not_found'
            ? { reason: 'binary_not_found', message: notFoundMessage(binary), noGpu: true }
            : {
                reason: exit.spawnReason ?? 'spawn_failed',
                message: `${binary}: ${exit.stderr}`,
                noGpu: false,
              };
      } else if (exit.kind === 'stall') {
        failure = {
          reason: 'hang',
          message: `${binary} printed nothing for ${this.config.stallIntervals} intervals and was killed (hung driver?); restarting`,
          noGpu: false,
        };
        // A hung driver hangs every stream; restart the process list too.
        this.streams.get('compute-apps')?.restartNow();
      } else if (exit.kind === 'line_too_long') {
        failure = {
          reason: 'garbage_output',
          message: `${binary} printed an endless line; restarting`,
          noGpu: false,
        };
      } else if (exit.kind === 'garbage') {
        failure = {
          reason: 'garbage_output',
          message: `${binary} printed only lines that do not parse (${exit.rejected} rejected, none accepted, e.g. ${JSON.stringify((this.lastOutput.get(name) ?? '').slice(0, 200))}); restarting with backoff`,
          noGpu: false,
        };
      } else {
        const said = [this.lastOutput.get(name), exit.stderr].filter(Boolean).join('\n');
        failure = classifyExit(binary, exit.code, exit.signal, said);
      }
      this.lastOutput.delete(name);
      if (failure.noGpu && this.config.mode === 'auto')
        this.sink?.noData(failure.reason, failure.message);
      else this.sink?.fail(failure.reason, failure.message);
      if (failure.reason === 'invalid_argument') this.reprobe();
      return;
    }
    // The process list and -q -x are extras: their failures are counted, the CSV values stay.
    if (name === 'compute-apps') this.processes = [];
    // No document is coming soon: the identity is what the CSV says.
    if (name === 'xml') this.identityComplete = true;
    if (name === 'pmon') this.utilization = [];
    const reason =
      exit.kind === 'stall'
        ? 'hang'
        : exit.kind === 'garbage' || exit.kind === 'line_too_long'
          ? 'garbage_output'
          : exit.kind === 'spawn_error'
            ? (exit.spawnReason ?? 'spawn_failed')
            : classifyExit(binary, exit.code, exit.signal, '').reason;
    this.sink?.countError(`${name}_${reason}`);
    this.log?.debug(
      { stream: name, reason, stderr: exit.stderr },
      'nvidia-smi stream ended; restarting',
    );
  }

  /** The driver rejected our field list (driver changed under us): ask it again what it knows. */
  private reprobe(): void {
    if (this.reprobeTimer || this.stoodDown) return;
    void Promise.all([...this.streams.values()].map((s) => s.stop())).then(() => {
      this.streams.clear();
      this.reprobeTimer = this.clock.setTimeout(() => {
        this.reprobeTimer = undefined;
        if (this.stopped || !this.sink || !this.log) return;
        this.start(this.sink, this.log).catch((err: unknown) => {
          this.sink?.fail('invalid_argument', errorMessage(err));
          this.reprobe();
        });
      }, 5000);
    });
  }

  private reportHealth(): void {
    const b = new SampleBuilder();
    for (const [name, stream] of this.streams) {
      b.add(metrics.restarts, { stream: name }, stream.restarts);
      b.add(metrics.streamUp, { stream: name }, stream.running);
    }
    // Every running stream has its counter from the start (0), so rate() sees the first one.
    for (const name of new Set([...this.streams.keys(), ...this.rejected.keys()]))
      b.add(metrics.rejectedLines, { stream: name }, this.rejected.get(name) ?? 0);
    this.sink?.health(b.build());
  }
}
