import type { Logger } from 'pino';
import { ChildStream, type StreamExit } from '../../agent/process/child-stream.js';
import { systemClock, type Clock } from '../../agent/core/clock.js';
import { QuietTimer } from '../../agent/core/quiet-timer.js';
import { CollectorError, NoDataError } from '../../agent/core/errors.js';
import { counter, gauge, SampleBuilder } from '../../agent/core/metric.js';
import { CommandError, runCommand, type SpawnFn } from '../../agent/process/process.js';
import type { Labels, StreamSink, StreamingCollector } from '../../agent/core/types.js';
import {
  normalizePciBusId,
  xidMeaning,
  xidSeverity,
  type XidRecord,
  type XidTotal,
} from '../xid.js';
import { dcgmCatalogue, isProfilingField, type DcgmField } from './catalogue.js';
import type { DcgmConfig } from './config.js';
import { dcgmReading, type DcgmGpuFact } from './dcgm-reading.js';
import { NVLINK_ERROR_FIELDS } from './nvlink-errors.js';
import { parseDiscovery, parseDmonLine, type DiscoveredGpu } from './parse-dcgmi.js';

/** Collector name: folder, config key, log field and `collector` label value. */
export const DCGM = 'dcgm';

const GPU = ['gpu', 'uuid'] as const;

/** Series only DCGM can give: profiling ratios and PCIe/NVLink traffic. */
export const dcgmMetrics = {
  graphicsEngineActive: gauge(
    'gpulse_gpu_graphics_engine_active_ratio',
    'Share of time the graphics or compute engine was active (DCGM PROF_GR_ENGINE_ACTIVE, 0-1).',
    GPU,
  ),
  smActive: gauge(
    'gpulse_gpu_sm_active_ratio',
    'Share of cycles an SM had at least one warp assigned, averaged over all SMs (DCGM PROF_SM_ACTIVE, 0-1).',
    GPU,
  ),
  smOccupancy: gauge(
    'gpulse_gpu_sm_occupancy_ratio',
    'Warps resident on an SM relative to the maximum, averaged over all SMs (DCGM PROF_SM_OCCUPANCY, 0-1).',
    GPU,
  ),
  tensorActive: gauge(
    'gpulse_gpu_tensor_active_ratio',
    'Share of cycles the tensor (HMMA) pipe was active (DCGM PROF_PIPE_TENSOR_ACTIVE, 0-1).',
    GPU,
  ),
  dramActive: gauge(
    'gpulse_gpu_dram_active_ratio',
    'Share of cycles the device memory interface was sending or receiving data (DCGM PROF_DRAM_ACTIVE, 0-1).',
    GPU,
  ),
  fp64Active: gauge(
    'gpulse_gpu_fp64_active_ratio',
    'Share of cycles the FP64 pipe was active (DCGM PROF_PIPE_FP64_ACTIVE, 0-1).',
    GPU,
  ),
  fp32Active: gauge(
    'gpulse_gpu_fp32_active_ratio',
    'Share of cycles the FP32 pipe was active (DCGM PROF_PIPE_FP32_ACTIVE, 0-1).',
    GPU,
  ),
  fp16Active: gauge(
    'gpulse_gpu_fp16_active_ratio',
    'Share of cycles the FP16 pipe was active, HMMA excluded (DCGM PROF_PIPE_FP16_ACTIVE, 0-1).',
    GPU,
  ),
  pcieBytes: counter(
    'gpulse_gpu_pcie_bytes_total',
    'PCIe traffic (headers and payload) sent (tx) or received (rx) since gpulse started; integrated by gpulse from the per-second rates DCGM samples (PROF_PCIE_TX/RX_BYTES), so an estimate between samples.',
    [...GPU, 'direction'],
  ),
  nvlinkBytes: counter(
    'gpulse_gpu_nvlink_bytes_total',
    'NVLink traffic (headers and payload) sent (tx) or received (rx) since gpulse started; integrated by gpulse from the per-second rates DCGM samples (PROF_NVLINK_TX/RX_BYTES), so an estimate between samples.',
    [...GPU, 'direction'],
  ),
  nvlinkErrors: counter(
    'gpulse_gpu_nvlink_errors_total',
    'NVLink errors over all links of the GPU since the driver loaded, by type: crc_flit (flow-control CRC), crc_data (data CRC), replay (link-level retries), recovery (link recoveries); DCGM NVLINK_*_ERROR_COUNT_TOTAL.',
    [...GPU, 'type'],
  ),
  restarts: counter(
    'gpulse_dcgm_restarts_total',
    'dcgmi dmon streams restarted after an exit or a hang.',
  ),
  streamUp: gauge('gpulse_dcgm_stream_up', 'Whether the dcgmi dmon stream is running (0/1).'),
  rejectedLines: counter(
    'gpulse_dcgm_rejected_lines_total',
    'Lines of dcgmi dmon output that did not parse (garbage, truncated rows, error texts).',
  ),
  watchedFields: gauge(
    'gpulse_dcgm_watched_fields',
    'DCGM fields the dmon stream watches, by kind (profiling fields need a datacenter GPU).',
    ['kind'],
  ),
} as const;

const RATIOS: readonly [string, (typeof dcgmMetrics)[keyof typeof dcgmMetrics]][] = [
  ['DCGM_FI_PROF_GR_ENGINE_ACTIVE', dcgmMetrics.graphicsEngineActive],
  ['DCGM_FI_PROF_SM_ACTIVE', dcgmMetrics.smActive],
  ['DCGM_FI_PROF_SM_OCCUPANCY', dcgmMetrics.smOccupancy],
  ['DCGM_FI_PROF_PIPE_TENSOR_ACTIVE', dcgmMetrics.tensorActive],
  ['DCGM_FI_PROF_DRAM_ACTIVE', dcgmMetrics.dramActive],
  ['DCGM_FI_PROF_PIPE_FP64_ACTIVE', dcgmMetrics.fp64Active],
  ['DCGM_FI_PROF_PIPE_FP32_ACTIVE', dcgmMetrics.fp32Active],
  ['DCGM_FI_PROF_PIPE_FP16_ACTIVE', dcgmMetrics.fp16Active],
];

/** Rate fields (bytes per second) gpulse integrates into byte counters. */
const RATE_FIELDS = [
  ['pcie', 'tx', 'DCGM_FI_PROF_PCIE_TX_BYTES'],
  ['pcie', 'rx', 'DCGM_FI_PROF_PCIE_RX_BYTES'],
  ['nvlink', 'tx', 'DCGM_FI_PROF_NVLINK_TX_BYTES'],
  ['nvlink', 'rx', 'DCGM_FI_PROF_NVLINK_RX_BYTES'],
] as const;

/** What the collector needs from outside. */
export interface DcgmDeps {
  readonly clock?: Clock;
  readonly spawnFn?: SpawnFn;
  readonly env?: NodeJS.ProcessEnv;
  readonly random?: () => number;
}

/** Builds the DCGM collector: `dcgmi discovery -l` once, then a long-lived `dcgmi dmon`. */
export function createDcgmCollector(config: DcgmConfig, deps: DcgmDeps = {}): StreamingCollector {
  return new DcgmCollector(config, deps);
}

// Rows of one dmon tick arrive together; a tick is complete after this quiet time.
const BLOCK_QUIET_MS = 40;
const RECENT_XIDS = 500;

interface RateState {
  at: number;
  rate: number;
  total: number;
}

/** How a dcgmi failure is reported. */
interface Failure {
  readonly reason: string;
  readonly message: string;
  /** "DCGM is not here" (a state in auto mode), not a failure. */
  readonly absent: boolean;
}

class DcgmCollector implements StreamingCollector {
  readonly kind = 'streaming';
  readonly name = DCGM;
  private readonly clock: Clock;
  private sink: StreamSink | undefined;
  private log: Logger | undefined;
  private stream: ChildStream | undefined;
  private gpus = new Map<number, DiscoveredGpu>();
  private fields: DcgmField[] = [];
  private columns: DcgmField[] = [];
  private block = new Map<number, (number | undefined)[]>();
  private blockAt = 0;
  private readonly blockQuiet: QuietTimer;
  private lastText: string | undefined;
  private rejected = 0;
  /** Restarts of streams replaced since (profiling dropped). */
  private restartBase = 0;
  private rediscovering = false;
  private lastRediscoverAt = -Infinity;
  private stopped = false;
  private profilingDropped = false;
  private readonly rates = new Map<string, RateState>();
  private readonly lastXid = new Map<number, { value: number; since: number }>();
  private xidSeq = 0;
  private recentXids: XidRecord[] = [];
  private readonly xidTotals = new Map<string, XidTotal>();

  constructor(
    private readonly config: DcgmConfig,
    private readonly deps: DcgmDeps,
  ) {
    this.clock = deps.clock ?? systemClock;
    this.blockQuiet = new QuietTimer(this.clock, BLOCK_QUIET_MS, () => this.flushBlock());
  }

  async start(sink: StreamSink, log: Logger): Promise<void> {
    this.sink = sink;
    this.log = log;
    this.stopped = false;
    this.fields = this.selectFields();
    if (this.fields.length === 0) {
      throw new CollectorError(
        'no_fields',
        'collectors.dcgm.fields names no DCGM field gpulse knows',
      );
    }
    await this.discover();
    log.info(
      { gpus: this.gpus.size, fields: this.fields.length, binary: this.config.binary },
      'starting dcgmi dmon stream',
    );
    this.startStream();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.blockQuiet.cancel();
    await this.stream?.stop();
    this.stream = undefined;
  }

  private selectFields(): DcgmField[] {
    const catalogue = dcgmCatalogue();
    const wanted = this.config.fields;
    const chosen =
      wanted.length === 0 ? [...catalogue] : catalogue.filter((f) => wanted.includes(f.name));
    const unknown = wanted.filter((n) => !catalogue.some((f) => f.name === n));
    if (unknown.length > 0) {
      this.log?.warn(
        { unknown },
        'collectors.dcgm.fields names fields gpulse does not know; ignored',
      );
    }
    return chosen.filter(
      (f) => !(isProfilingField(f) && (this.config.profiling === 'off' || this.profilingDropped)),
    );
  }

  /** Probes the host engine and learns each GPU's identity. */
  private async discover(): Promise<void> {
    const { binary, host } = this.config;
    let result;
    try {
      result = await runCommand(binary, ['discovery', '-l', '--host', host], {
        timeoutMs: this.config.timeout,
        env: this.deps.env,
        spawnFn: this.deps.spawnFn,
      });
    } catch (err) {
      if (err instanceof CommandError) throw this.toError(this.spawnFailure(err));
      throw err;
    }
    const said = `${result.stdout}\n${result.stderr}`;
    if (result.code !== 0) throw this.toError(this.exitFailure(result.code, result.signal, said));
    const gpus = parseDiscovery(result.stdout);
    if (gpus.length === 0) {
      throw this.toError({
        reason: 'no_devices',
        message: `the DCGM host engine at ${host} sees no GPU`,
        absent: true,
      });
    }
    this.gpus = new Map(gpus.map((g) => [g.gpuId, g]));
  }

  /** A GPU id discovery did not list (hot-plug, reset): learn its identity again, once at a time. */
  private rediscover(): void {
    const now = this.clock.now();
    if (this.rediscovering || now - this.lastRediscoverAt < 60_000) return;
    this.rediscovering = true;
    this.lastRediscoverAt = now;
    this.discover()
      .catch((err: unknown) => this.log?.debug({ err: String(err) }, 'dcgmi discovery failed'))
      .finally(() => {
        this.rediscovering = false;
      });
  }

  private spawnFailure(err: CommandError): Failure {
    const binary = this.config.binary;
    if (err.reason === 'not_found') {
      return {
        reason: 'binary_not_found',
        message: `${binary} not found: DCGM is not installed here, so DCGM profiling metrics are off (install datacenter-gpu-manager, or set GPULSE_DCGMI to dcgmi's path; GPULSE_DCGM_MODE=off silences this)`,
        absent: true,
      };
    }
    if (err.reason === 'permission_denied') {
      return {
        reason: 'permission_denied',
        message: `${binary} is not executable by this user: ${err.message}`,
        absent: false,
      };
    }
    if (err.reason === 'timeout') {
      return {
        reason: 'hang',
        message: `${err.message} (host engine not answering?); retrying with backoff`,
        absent: false,
      };
    }
    return { reason: 'spawn_failed', message: err.message, absent: false };
  }

  private exitFailure(code: number | null, signal: string | null, said: string): Failure {
    const binary = this.config.binary;
    const words = said.trim().split('\n').filter(Boolean).slice(-2).join(' / ').slice(0, 300);
    if (/Unable to connect to host engine|unable to establish a connection/i.test(said)) {
      return {
        reason: 'no_host_engine',
        message: `no DCGM host engine answers at ${this.config.host}: start it (systemctl start nvidia-dcgm, or nv-hostengine), or set GPULSE_DCGM_HOST; GPULSE_DCGM_MODE=off silences this`,
        absent: true,
      };
    }
    if (/Profiling is not supported/i.test(said)) {
      return { reason: 'profiling_not_supported', message: `${binary}: "${words}"`, absent: false };
    }
    if (/No data returned from the hostengine/i.test(said)) {
      return {
        reason: 'no_devices',
        message: `the DCGM host engine returns no GPU data: "${words}"`,
        absent: true,
      };
    }
    if (code === null) {
      return {
        reason: 'killed',
        message: `${binary} was killed by ${signal ?? 'a signal'}`,
        absent: false,
      };
    }
    return {
      reason: code === 0 ? 'stream_ended' : `exit_${code}`,
      message: `${binary} ${code === 0 ? 'ended its output' : `failed (exit ${code})`}${words ? `: "${words}"` : ''}`,
      absent: false,
    };
  }

  private toError(f: Failure): Error {
    return f.absent && this.config.mode === 'auto'
      ? new NoDataError(f.reason, f.message)
      : new CollectorError(f.reason, f.message);
  }

  private startStream(): void {
    this.restartBase += this.stream?.restarts ?? 0;
    const ids = this.fields.map((f) => f.id).join(',');
    this.columns = this.fields;
    const stream = new ChildStream({
      command: this.config.binary,
      args: ['dmon', '-e', ids, '-d', String(this.config.interval), '--host', this.config.host],
      env: this.deps.env,
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

  private onLine(line: string): void {
    const parsed = parseDmonLine(line);
    switch (parsed.kind) {
      case 'blank':
      case 'units':
        return;
      case 'header': {
        // The header says which column is which; map by short name, fall back to the request order.
        const byShort = new Map(this.fields.map((f) => [f.shortName, f]));
        const mapped = parsed.columns.map((c) => byShort.get(c));
        this.columns =
          mapped.length > 0 && mapped.every((f) => f !== undefined) ? mapped : this.fields;
        return;
      }
      case 'text':
        this.lastText = parsed.text;
        this.reject();
        return;
      case 'row': {
        if (parsed.entity !== 'GPU') return;
        if (!this.gpus.has(parsed.entityId)) this.rediscover();
        if (parsed.values.length !== this.columns.length) {
          this.reject();
          return;
        }
        // The same GPU again means the previous tick is complete.
        if (this.block.has(parsed.entityId)) this.flushBlock();
        if (this.block.size === 0) this.blockAt = this.clock.now();
        this.block.set(parsed.entityId, [...parsed.values]);
        this.blockQuiet.poke();
        return;
      }
    }
  }

  private reject(): void {
    this.rejected++;
    this.sink?.countError('parse_error');
    this.reportHealth();
  }

  private flushBlock(): void {
    this.blockQuiet.cancel();
    if (this.block.size === 0 || this.stopped) return;
    const at = this.blockAt;
    const facts: DcgmGpuFact[] = [];
    for (const [gpuId, values] of [...this.block.entries()].sort((a, b) => a[0] - b[0])) {
      const fields: Record<string, number> = {};
      this.columns.forEach((f, i) => {
        const v = values[i];
        if (v !== undefined) fields[f.name] = v;
      });
      const identity = this.gpus.get(gpuId) ?? { gpuId };
      const reading = dcgmReading(identity, fields);
      this.integrate(reading.uuid, fields, at);
      this.watchXid(gpuId, identity, reading.index, fields.DCGM_FI_DEV_XID_ERRORS, at);
      const xidSince = this.lastXid.get(gpuId)?.since;
      facts.push({ gpuId, at, reading, fields, ...(xidSince !== undefined ? { xidSince } : {}) });
    }
    this.block = new Map();
    this.sink?.ok(
      {
        samples: this.samples(facts),
        facts: {
          dcgmGpus: facts,
          xidErrors: [...this.recentXids],
          xidTotals: [...this.xidTotals.values()],
        },
      },
      Math.max(0, this.clock.now() - at),
    );
  }

  /** Trapezoid integration of byte rates; a gap longer than the stall limit is not bridged. */
  private integrate(uuid: string, fields: Readonly<Record<string, number>>, at: number): void {
    const maxGap = (this.config.stallIntervals + 1) * this.config.interval;
    for (const [bus, direction, name] of RATE_FIELDS) {
      const rate = fields[name];
      if (rate === undefined) continue;
      const key = `${uuid}|${bus}|${direction}`;
      const prev = this.rates.get(key);
      let total = prev?.total ?? 0;
      if (prev && at > prev.at && at - prev.at <= maxGap) {
        total += ((prev.rate + rate) / 2) * ((at - prev.at) / 1000);
      }
      this.rates.set(key, { at, rate, total });
    }
  }

  /**
   * DCGM's XID_ERRORS field holds the last Xid of the GPU. Its first value is history; each
   * later change to a non-zero value is a new Xid (a repeat of the same Xid is invisible here,
   * which is why the kernel log is the preferred source).
   */
  private watchXid(
    gpuId: number,
    identity: DiscoveredGpu,
    index: number,
    value: number | undefined,
    at: number,
  ): void {
    if (value === undefined) return;
    const prev = this.lastXid.get(gpuId)?.value;
    if (value === prev) return;
    this.lastXid.set(gpuId, { value, since: at });
    if (prev === undefined || value === 0) return;
    const severity = xidSeverity(value);
    const pciBusId = normalizePciBusId(identity.pciBusId);
    const record: XidRecord = {
      seq: ++this.xidSeq,
      source: 'dcgm',
      at,
      xid: value,
      severity,
      ...(pciBusId ? { pciBusId } : {}),
      ...(identity.uuid ? { gpuUuid: identity.uuid } : {}),
      gpuIndex: index,
      text: xidMeaning(value) ?? `Xid ${value}`,
    };
    this.recentXids.push(record);
    if (this.recentXids.length > RECENT_XIDS) this.recentXids = this.recentXids.slice(-RECENT_XIDS);
    const key = `${gpuId}|${value}`;
    const total = this.xidTotals.get(key);
    this.xidTotals.set(key, {
      source: 'dcgm',
      ...(pciBusId ? { pciBusId } : {}),
      ...(identity.uuid ? { gpuUuid: identity.uuid } : {}),
      gpuIndex: index,
      xid: value,
      severity,
      count: (total?.count ?? 0) + 1,
    });
  }

  private samples(facts: readonly DcgmGpuFact[]) {
    const b = new SampleBuilder();
    for (const fact of facts) {
      const l: Labels = { gpu: String(fact.reading.index), uuid: fact.reading.uuid };
      for (const [name, desc] of RATIOS) b.add(desc, l, fact.fields[name]);
      for (const [name, type] of Object.entries(NVLINK_ERROR_FIELDS)) {
        b.add(dcgmMetrics.nvlinkErrors, { ...l, type }, fact.fields[name]);
      }
      for (const [bus, direction] of RATE_FIELDS) {
        const state = this.rates.get(`${fact.reading.uuid}|${bus}|${direction}`);
        b.add(
          bus === 'pcie' ? dcgmMetrics.pcieBytes : dcgmMetrics.nvlinkBytes,
          { ...l, direction },
          state?.total,
        );
      }
    }
    return b.build();
  }

  private onExit(exit: StreamExit): void {
    this.block = new Map();
    if (this.stopped) return;
    const said = [this.lastText, exit.stderr].filter(Boolean).join('\n');
    this.lastText = undefined;
    let failure: Failure;
    if (exit.kind === 'spawn_error') {
      failure = this.spawnFailure(
        new CommandError(
          exit.stderr,
          (exit.spawnReason ?? 'spawn_failed') as CommandError['reason'],
        ),
      );
    } else if (exit.kind === 'stall') {
      failure = {
        reason: 'hang',
        message: `${this.config.binary} dmon printed nothing for ${this.config.stallIntervals} intervals and was killed (host engine hung?); restarting`,
        absent: false,
      };
    } else if (exit.kind === 'line_too_long') {
      failure = {
        reason: 'garbage_output',
        message: `${this.config.binary} printed an endless line; restarting`,
        absent: false,
      };
    } else {
      failure = this.exitFailure(exit.code, exit.signal, said);
    }
    if (
      failure.reason === 'profiling_not_supported' &&
      this.config.profiling === 'auto' &&
      !this.profilingDropped
    ) {
      // GeForce and pre-Volta GPUs have no profiling module: keep the device fields.
      this.profilingDropped = true;
      this.log?.warn(
        { said: failure.message },
        'DCGM profiling (SM/tensor/DRAM activity) is not supported on these GPUs; watching device fields only',
      );
      this.fields = this.selectFields();
      void this.stream?.stop().then(() => {
        if (!this.stopped) this.startStream();
      });
      return;
    }
    if (failure.absent && this.config.mode === 'auto')
      this.sink?.noData(failure.reason, failure.message);
    else this.sink?.fail(failure.reason, failure.message);
    this.reportHealth();
  }

  private reportHealth(): void {
    const b = new SampleBuilder();
    const profiling = this.fields.filter(isProfilingField).length;
    b.add(dcgmMetrics.restarts, {}, this.restartBase + (this.stream?.restarts ?? 0))
      .add(dcgmMetrics.streamUp, {}, this.stream?.running ?? false)
      .add(dcgmMetrics.rejectedLines, {}, this.rejected)
      .add(dcgmMetrics.watchedFields, { kind: 'profiling' }, profiling)
      .add(dcgmMetrics.watchedFields, { kind: 'device' }, this.fields.length - profiling);
    this.sink?.health(b.build());
  }
}
