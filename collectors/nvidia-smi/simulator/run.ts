import { jetsonDevice } from '../../simulation/jetson.js';
import {
  NO_SCENARIO,
  parseScenario,
  type LostError,
  type Scenario,
} from '../../simulation/scenarios.js';
import {
  parseProcessList,
  scenarioFailure,
  syntheticProcesses,
  type ProcessSpec,
  type WorldFailure,
} from '../../simulation/world.js';
import { parseArgs, SmiUsageError, type SmiInvocation } from './args.js';
import { resolveField, type QueryField } from './fields.js';
import { JetsonSmiSource } from './jetson.js';
import { headerLine, rowLine, type CsvFormat } from './output.js';
import { PMON_HEADER, pmonBlock } from './pmon.js';
import { DEFAULT_PROFILE, defaultProcesses, loadProfile, ProfileSource } from './profiles.js';
import { captureSource, type GpuRow, type Reading, type SmiSource } from './source.js';
import {
  intEnv,
  sleepUntil,
  type SimEnv,
  type SimulatedToolIo,
} from '../../simulation/tool-process.js';

/** The process's outside world, injected so tests run the simulator in-process. */
export type NvidiaSmiIo = SimulatedToolIo;

/** Environment as `process.env` gives it. */
export type { SimEnv };

/** nvidia-smi's text and exit status when the kernel driver is not loaded (NVML_ERROR_DRIVER_NOT_LOADED). */
export const NO_DRIVER_MESSAGE =
  "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n\n";
/** Exit status for a missing driver. */
export const EXIT_NO_DRIVER = 9;
/** nvidia-smi's text when no GPU matches (NVML_ERROR_NOT_FOUND). */
export const NO_DEVICES_MESSAGE = 'No devices were found\n';
/** Exit status when no GPU matches. */
export const EXIT_NO_DEVICES = 6;
/** Exit status for a lost GPU (NVML_ERROR_GPU_IS_LOST). */
export const EXIT_GPU_LOST = 15;
/** Exit status for NVML_ERROR_UNKNOWN ("Unknown Error"): `255 - Other error` in `nvidia-smi -h`. */
export const EXIT_UNKNOWN_ERROR = 255;
/** Exit status for bad arguments and unknown fields (NVML_ERROR_INVALID_ARGUMENT). */
export const EXIT_USAGE = 2;
/** Exit status for the simulator's own configuration errors ("other error"). */
export const EXIT_CONFIG = 255;

/** NVML's error string and nvidia-smi's exit status for each answer a lost GPU's handle gets. */
const LOST_ERRORS: Readonly<Record<LostError, { readonly text: string; readonly code: number }>> = {
  unknown: { text: 'Unknown Error', code: EXIT_UNKNOWN_ERROR },
  lost: { text: 'GPU is lost.  Reboot the system to recover this GPU', code: EXIT_GPU_LOST },
};

/** The exit status of a run that printed a lost GPU's line. */
export function lostGpuExitCode(error: LostError): number {
  return LOST_ERRORS[error].code;
}

/**
 * The line nvidia-smi prints in place of a GPU whose handle it cannot get, in the shape of the
 * GPU's driver (see `../lost-gpu.ts` for the reports each shape comes from): recent drivers name
 * the index and the bus (`GPU1: 0000:34:00.0: Unknown Error`), 525-560 the bus alone
 * (`GPU0000:17:00.0: ...`), older ones with a space (`GPU 0000:0B:00.0: ...`); `-L` prints
 * `gpu 0000:18:00.0` (NordicHPC/sonar#72). The switch at 570 is an estimate: the 560 reports
 * still have the bus-only form, the 590/610 ones the indexed form.
 */
export function gpuLostMessage(
  gpu: Pick<GpuRow, 'index' | 'busId' | 'cells'>,
  error: LostError,
  form: 'query' | 'list' = 'query',
): string {
  // The handle message prints the bus id with a 4-digit domain (0000:17:00.0).
  const bus = gpu.busId?.replace(/^0000(?=[0-9A-Fa-f]{4}:)/, '') ?? 'N/A';
  const driver = gpu.cells.get('driver_version') ?? '';
  const major = Number(/^(\d+)\./.exec(driver)?.[1] ?? 'NaN');
  const who =
    form === 'list'
      ? `gpu ${bus}`
      : Number.isNaN(major) || major >= 570
        ? `GPU${gpu.index}: ${bus}`
        : major >= 525
          ? `GPU${bus}`
          : `GPU ${bus}`;
  return `Unable to determine the device handle for ${who}: ${LOST_ERRORS[error].text}\n`;
}

/** The simulated machine an invocation talks to, built from the environment. */
export interface SimSetup {
  readonly source: SmiSource;
  readonly scenario: Scenario;
  readonly startMs: number;
}

/** Reads GPULSE_SIM_* and builds the source; throws on malformed settings. */
export function simSetup(env: SimEnv, nowMs: number): SimSetup {
  const startMs = intEnv(env, 'GPULSE_SIM_START', nowMs);
  const seed = intEnv(env, 'GPULSE_SIM_SEED', 1);
  const scenario = env.GPULSE_SIM_SCENARIO ? parseScenario(env.GPULSE_SIM_SCENARIO) : NO_SCENARIO;
  const capture = env.GPULSE_SIM_CAPTURE;
  if (capture !== undefined && capture !== '') {
    const apps = env.GPULSE_SIM_APPS_CAPTURE;
    return { source: captureSource(capture, apps === '' ? undefined : apps), scenario, startMs };
  }
  const profileName = env.GPULSE_SIM_PROFILE || DEFAULT_PROFILE;
  const jetson = jetsonDevice(profileName);
  if (jetson !== undefined) {
    const { nvidiaSmiCapture } = jetson;
    if (nvidiaSmiCapture === undefined) {
      throw new Error(
        `profile ${profileName}: its JetPack ships no nvidia-smi (the agent reads tegrastats there)`,
      );
    }
    return { source: new JetsonSmiSource({ ...jetson, nvidiaSmiCapture }), scenario, startMs };
  }
  const profile = loadProfile(profileName);
  const explicit = parseProcessList(env.GPULSE_SIM_PROCESSES ?? '');
  const stray = explicit.find((p) => p.gpuIndex >= profile.gpus.length);
  if (stray !== undefined) {
    throw new Error(
      `GPULSE_SIM_PROCESSES: pid ${stray.pid} on GPU ${stray.gpuIndex}, but profile ` +
        `${profile.name} has ${profile.gpus.length} GPU(s)`,
    );
  }
  const countText = env.GPULSE_SIM_PROCESS_COUNT;
  const synthetic =
    countText === undefined || countText === ''
      ? []
      : syntheticProcesses(intEnv(env, 'GPULSE_SIM_PROCESS_COUNT', 0), profile.gpus, seed);
  const named = env.GPULSE_SIM_PROCESSES !== undefined || countText !== undefined;
  const processes: ProcessSpec[] = named ? [...explicit, ...synthetic] : defaultProcesses(profile);
  const source = new ProfileSource(profile, {
    gpus: profile.gpus,
    processes,
    seed,
    startMs,
    scenario,
  });
  return { source, scenario, startMs };
}

function normaliseBusId(id: string): string | undefined {
  const m = /^(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i.exec(id.trim());
  if (!m) return undefined;
  const domain = parseInt(m[1] ?? '0', 16);
  return `${domain}:${parseInt(m[2] ?? '0', 16)}:${parseInt(m[3] ?? '0', 16)}.${m[4]}`;
}

/** Indexes of the GPUs `-i` names (index, UUID, MIG UUID or PCI bus id); undefined: none match. */
export function selectGpus(
  gpus: readonly GpuRow[],
  ids: readonly string[] | undefined,
): number[] | undefined {
  if (ids === undefined) return gpus.map((g) => g.index);
  const out: number[] = [];
  for (const id of ids) {
    const bus = normaliseBusId(id);
    const match = gpus.find(
      (g) =>
        (/^\d+$/.test(id) && g.index === Number(id)) ||
        g.uuid === id ||
        g.migUuids.includes(id) ||
        (bus !== undefined && g.busId !== undefined && normaliseBusId(g.busId) === bus),
    );
    if (match === undefined) return undefined;
    if (!out.includes(match.index)) out.push(match.index);
  }
  return out;
}

/** One block of output, or how the invocation ends. */
type Emission =
  | { readonly kind: 'text'; readonly text: string; readonly code: number }
  | { readonly kind: 'exit'; readonly text: string; readonly code: number }
  | { readonly kind: 'hang'; readonly untilMs: number };

/** What one block is printed from. */
interface Frame {
  readonly reading: Reading;
  /** GPUs the invocation asked for (all, or `-i`), in index order. */
  readonly selected: readonly number[];
  /** Of those, the GPUs whose handle NVML cannot get (a gpu-lost episode). */
  readonly lost: readonly GpuRow[];
  readonly lostError: LostError;
  readonly nowMs: number;
  /** The first block of a loop (headers print once). */
  readonly first: boolean;
}

/** The selected GPUs nvidia-smi can open. */
function healthy(frame: Frame): number[] {
  return frame.selected.filter((i) => !frame.lost.some((g) => g.index === i));
}

/** A failure that ends the invocation (or blocks it); a lost GPU does not, it is printed. */
function failureEmission(failure: WorldFailure | undefined): Emission | undefined {
  switch (failure?.kind) {
    case undefined:
    case 'gpu-lost':
      return undefined;
    case 'hang':
      return { kind: 'hang', untilMs: failure.untilMs };
    case 'no-driver':
      return { kind: 'exit', text: NO_DRIVER_MESSAGE, code: EXIT_NO_DRIVER };
    case 'no-devices':
      return { kind: 'exit', text: NO_DEVICES_MESSAGE, code: EXIT_NO_DEVICES };
  }
}

function resolveAll(
  known: readonly QueryField[],
  requested: readonly string[],
): QueryField[] | string {
  const out: QueryField[] = [];
  for (const name of requested) {
    const field = resolveField(known, name);
    if (field === undefined) return `Field "${name}" is not a valid field to query.\n\n`;
    out.push(field);
  }
  return out;
}

/** Runs one nvidia-smi command line; resolves with the exit status. */
export async function runNvidiaSmi(
  argv: readonly string[],
  env: SimEnv,
  io: NvidiaSmiIo,
): Promise<number> {
  let invocation: SmiInvocation;
  try {
    invocation = parseArgs(argv);
  } catch (err) {
    if (err instanceof SmiUsageError) {
      io.write(err.message);
      return EXIT_USAGE;
    }
    throw err;
  }
  let setup: SimSetup;
  try {
    setup = simSetup(env, io.now());
  } catch (err) {
    io.writeError(`nvidia-smi simulator: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_CONFIG;
  }
  const { source } = setup;
  const command = invocation.command;
  switch (command.kind) {
    case 'help':
      io.write(source.help());
      return 0;
    case 'help-query-gpu':
      io.write(source.helpQueryGpu());
      return 0;
    case 'help-query-compute-apps':
      io.write(source.helpQueryComputeApps());
      return 0;
    case 'summary':
    case 'query-text':
      io.writeError(
        'nvidia-smi simulator: the summary table and -q text are not simulated; ' +
          'use --query-gpu, --query-compute-apps, -L or -q -x\n',
      );
      return EXIT_CONFIG;
    case 'version':
      return perform(io, invocation, setup, () => source.version());
    case 'list':
      return perform(io, invocation, setup, listBlock);
    case 'query-xml':
      return perform(io, invocation, setup, (frame) => xmlBlock(source, frame), queryXmlMs);
    case 'pmon':
      return perform(io, invocation, setup, pmonFrame);
    case 'query-gpu':
    case 'query-compute-apps': {
      const known = command.kind === 'query-gpu' ? source.gpuFields : source.appFields;
      const fields = resolveAll(known, command.fields);
      if (typeof fields === 'string') {
        io.write(fields);
        return EXIT_USAGE;
      }
      return perform(io, invocation, setup, (frame) =>
        csvBlock(command.kind, fields, command.format, frame),
      );
    }
  }
}

/** `-L`: a lost GPU's line stands where its own would be (NordicHPC/sonar#72). */
function listBlock(frame: Frame): string {
  return frame.reading.gpus
    .filter((g) => frame.selected.includes(g.index))
    .flatMap((g) =>
      frame.lost.includes(g)
        ? [gpuLostMessage(g, frame.lostError, 'list')]
        : g.listLines.map((l) => `${l}\n`),
    )
    .join('');
}

/**
 * `-q -x`: the document of the GPUs NVML can open, with the lost GPU's line where its `<gpu>`
 * would be, as `-q` prints it among the good GPUs' sections ("GPU 00000000:03:00.0 / Product
 * Name ... / Unable to determine the device handle for GPU1: 0000:04:00.0: Unknown Error" in a
 * report of an RTX 3060 pair). `attached_gpus` still counts it: the driver has it attached.
 */
function xmlBlock(source: SmiSource, frame: Frame): string {
  const text = source.xml(frame.reading, healthy(frame), frame.nowMs);
  if (frame.lost.length === 0) return text;
  const lines = text.split('\n');
  for (const lost of frame.lost) {
    const next = frame.reading.gpus.find(
      (g) => g.index > lost.index && healthy(frame).includes(g.index),
    );
    const at = lines.findIndex((l) =>
      next?.busId === undefined
        ? l.trim() === '</nvidia_smi_log>'
        : l.trimStart().startsWith(`<gpu id="${next.busId}"`),
    );
    lines.splice(at < 0 ? lines.length : at, 0, gpuLostMessage(lost, frame.lostError).trimEnd());
  }
  return lines.join('\n');
}

/**
 * pmon opens the GPUs once, before its header: a GPU lost by then gets its line first; one lost
 * later simply has no rows.
 */
function pmonFrame(frame: Frame): string {
  if (!frame.first) return pmonBlock(frame.reading, healthy(frame));
  const lost = frame.lost.map((g) => gpuLostMessage(g, frame.lostError)).join('');
  return lost + PMON_HEADER + pmonBlock(frame.reading, healthy(frame));
}

/**
 * A CSV block. A lost GPU's line stands in its row's place among the other GPUs' rows ("Unable
 * to determine the device handle for GPU0: 0000:24:00.0: GPU is lost. ..." followed by GPU 1's
 * row, in a report of a 3080 + 5070 Ti pair); in the process list, where its processes would be.
 */
function csvBlock(
  kind: 'query-gpu' | 'query-compute-apps',
  fields: readonly QueryField[],
  format: CsvFormat,
  frame: Frame,
): string {
  const lines: string[] = [];
  // In a loop the header comes once, before the first block, as with a real `-l`.
  if (frame.first && format.header) lines.push(headerLine(fields));
  const lostLine = (g: GpuRow) => gpuLostMessage(g, frame.lostError).trimEnd();
  const ok = healthy(frame);
  if (kind === 'query-gpu') {
    for (const g of frame.reading.gpus) {
      if (frame.lost.includes(g)) lines.push(lostLine(g));
      else if (ok.includes(g.index)) lines.push(rowLine(fields, g.cells, format));
    }
  } else {
    const pending = [...frame.lost];
    for (const a of frame.reading.apps) {
      if (!ok.includes(a.gpuIndex)) continue;
      while (pending[0] !== undefined && pending[0].index < a.gpuIndex) {
        lines.push(lostLine(pending[0]));
        pending.shift();
      }
      lines.push(rowLine(fields, a.cells, format));
    }
    for (const g of pending) lines.push(lostLine(g));
  }
  return lines.map((l) => `${l}\n`).join('');
}

/**
 * How long a real `-q -x` takes before it prints: 0.39 s on one GPU (netdata/netdata#10362),
 * 0.59 s on eight (influxdata/telegraf#8534); in between, in proportion. This is why the CUDA
 * version, which only the document carries, reaches an agent after the first CSV rows.
 */
export function queryXmlMs(gpus: number): number {
  return Math.round(390 + (200 * Math.max(0, gpus - 1)) / 7);
}

/**
 * Emits one block, or one per interval with `-l`: each block is read from the source at its
 * own instant. Failures of the driver end the run with nvidia-smi's message and status; a hang
 * prints nothing (one-shot calls block, loops skip blocks) until the hang clears. A lost GPU
 * only loses its own rows: its line stands in their place, a loop goes on printing the others,
 * and a one-shot call exits with NVML's error for it after printing them.
 */
async function perform(
  io: NvidiaSmiIo,
  invocation: SmiInvocation,
  setup: SimSetup,
  render: (frame: Frame) => string,
  /** Time the command takes to gather one block, by number of GPUs asked for. */
  gatherMs?: (gpus: number) => number,
): Promise<number> {
  const gather = async (): Promise<void> => {
    if (!gatherMs) return;
    const n = selectGpus(setup.source.read(io.now()).gpus, invocation.ids)?.length ?? 0;
    await io.sleep(gatherMs(n));
  };
  const emit = (nowMs: number, first: boolean): Emission => {
    const reading = setup.source.read(nowMs);
    const failure = reading.failure ?? scenarioFailure(setup.scenario, setup.startMs, nowMs);
    const stop = failureEmission(failure);
    if (stop) return stop;
    const selected = selectGpus(reading.gpus, invocation.ids);
    if (selected === undefined || reading.gpus.length === 0) {
      return { kind: 'exit', text: NO_DEVICES_MESSAGE, code: EXIT_NO_DEVICES };
    }
    // NVML fails for the lost board only; `-i` on a healthy one still answers.
    const lost =
      failure?.kind === 'gpu-lost'
        ? reading.gpus.filter((g) => g.index === failure.gpuIndex && selected.includes(g.index))
        : [];
    const lostError = setup.scenario.lostError;
    const text = render({ reading, selected, lost, lostError, nowMs, first });
    return { kind: 'text', text, code: lost.length > 0 ? lostGpuExitCode(lostError) : 0 };
  };

  const loopMs = invocation.loopMs;
  if (loopMs === undefined) {
    for (;;) {
      const out = emit(io.now(), true);
      if (out.kind !== 'hang') {
        // Values are read at the start; the text comes out once the gathering is done.
        if (out.kind === 'text') await gather();
        io.write(out.text);
        return out.code;
      }
      await sleepUntil(io, out.untilMs);
      if (io.signal?.aborted) return 0;
    }
  }
  const startMs = io.now();
  let first = true;
  for (let k = 0; ; k++) {
    await sleepUntil(io, startMs + k * loopMs);
    if (io.signal?.aborted) return 0;
    const out = emit(io.now(), first);
    if (out.kind === 'hang') continue;
    if (out.kind === 'text') await gather();
    if (io.signal?.aborted) return 0;
    io.write(out.text);
    if (out.kind === 'exit') return out.code;
    first = false;
    if (invocation.count !== undefined && k + 1 >= invocation.count) return out.code;
  }
}
