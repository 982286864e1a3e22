import { jetsonDevice } from '../../simulation/jetson.js';
import { NO_SCENARIO, parseScenario, type Scenario } from '../../simulation/scenarios.js';
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
import type { SimulatedToolIo } from '../../simulation/tool-process.js';

/** The process's outside world, injected so tests run the simulator in-process. */
export type NvidiaSmiIo = SimulatedToolIo;

/** Environment as `process.env` gives it. */
export type SimEnv = Readonly<Record<string, string | undefined>>;

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
/** Exit status for bad arguments and unknown fields (NVML_ERROR_INVALID_ARGUMENT). */
export const EXIT_USAGE = 2;
/** Exit status for the simulator's own configuration errors ("other error"). */
export const EXIT_CONFIG = 255;

/** `Unable to determine the device handle for GPU0000:0A:00.0: GPU is lost. …` */
export function gpuLostMessage(busId: string | undefined): string {
  // The handle message prints the bus id with a 4-digit domain (GPU0000:17:00.0).
  const short = busId?.replace(/^0000(?=[0-9A-Fa-f]{4}:)/, '') ?? 'N/A';
  return `Unable to determine the device handle for GPU${short}: GPU is lost.  Reboot the system to recover this GPU\n`;
}

/** The simulated machine an invocation talks to, built from the environment. */
export interface SimSetup {
  readonly source: SmiSource;
  readonly scenario: Scenario;
  readonly startMs: number;
}

function intEnv(env: SimEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text.trim() === '') return fallback;
  const n = Number(text);
  if (!Number.isFinite(n)) throw new Error(`${name}=${text}: not a number`);
  return Math.trunc(n);
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
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'exit'; readonly text: string; readonly code: number }
  | { readonly kind: 'hang'; readonly untilMs: number };

function failureEmission(
  failure: WorldFailure | undefined,
  reading: Reading,
  selected: readonly number[],
): Emission | undefined {
  switch (failure?.kind) {
    case undefined:
      return undefined;
    case 'hang':
      return { kind: 'hang', untilMs: failure.untilMs };
    case 'no-driver':
      return { kind: 'exit', text: NO_DRIVER_MESSAGE, code: EXIT_NO_DRIVER };
    case 'no-devices':
      return { kind: 'exit', text: NO_DEVICES_MESSAGE, code: EXIT_NO_DEVICES };
    case 'gpu-lost': {
      // NVML only fails for the lost board; `-i` on a healthy one still answers.
      if (!selected.includes(failure.gpuIndex)) return undefined;
      const gpu = reading.gpus.find((g) => g.index === failure.gpuIndex);
      return { kind: 'exit', text: gpuLostMessage(gpu?.busId), code: EXIT_GPU_LOST };
    }
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
    case 'list':
    case 'query-xml':
      return perform(io, invocation, setup, (reading, selected, now) => {
        if (command.kind === 'version') return source.version();
        if (command.kind === 'list') {
          return reading.gpus
            .filter((g) => selected.includes(g.index))
            .flatMap((g) => g.listLines.map((l) => `${l}\n`))
            .join('');
        }
        return source.xml(reading, selected, now);
      });
    case 'pmon':
      return perform(
        io,
        invocation,
        setup,
        (reading, selected, _now, first) =>
          (first ? PMON_HEADER : '') + pmonBlock(reading, selected),
      );
    case 'query-gpu':
    case 'query-compute-apps': {
      const known = command.kind === 'query-gpu' ? source.gpuFields : source.appFields;
      const fields = resolveAll(known, command.fields);
      if (typeof fields === 'string') {
        io.write(fields);
        return EXIT_USAGE;
      }
      return perform(io, invocation, setup, (reading, selected, _now, first) =>
        csvBlock(command.kind, fields, command.format, reading, selected, first),
      );
    }
  }
}

function csvBlock(
  kind: 'query-gpu' | 'query-compute-apps',
  fields: readonly QueryField[],
  format: CsvFormat,
  reading: Reading,
  selected: readonly number[],
  first: boolean,
): string {
  const lines: string[] = [];
  // In a loop the header comes once, before the first block, as with a real `-l`.
  if (first && format.header) lines.push(headerLine(fields));
  const rows =
    kind === 'query-gpu'
      ? reading.gpus.filter((g) => selected.includes(g.index)).map((g) => g.cells)
      : reading.apps.filter((a) => selected.includes(a.gpuIndex)).map((a) => a.cells);
  for (const cells of rows) lines.push(rowLine(fields, cells, format));
  return lines.map((l) => `${l}\n`).join('');
}

const MAX_TIMER_MS = 2 ** 31 - 1;

async function sleepUntil(io: NvidiaSmiIo, dueMs: number): Promise<void> {
  for (;;) {
    if (io.signal?.aborted) return;
    const wait = dueMs - io.now();
    if (wait <= 0) return;
    await io.sleep(Math.min(wait, MAX_TIMER_MS));
  }
}

/**
 * Emits one block, or one per interval with `-l`: each block is read from the source at its
 * own instant. Scenario failures end the run with nvidia-smi's message and status; a hang
 * prints nothing (one-shot calls block, loops skip blocks) until the hang clears.
 */
async function perform(
  io: NvidiaSmiIo,
  invocation: SmiInvocation,
  setup: SimSetup,
  render: (reading: Reading, selected: readonly number[], nowMs: number, first: boolean) => string,
): Promise<number> {
  const emit = (nowMs: number, first: boolean): Emission => {
    const reading = setup.source.read(nowMs);
    const selected = selectGpus(reading.gpus, invocation.ids) ?? [];
    const failure = failureEmission(
      reading.failure ?? scenarioFailure(setup.scenario, setup.startMs, nowMs),
      reading,
      invocation.ids === undefined ? reading.gpus.map((g) => g.index) : selected,
    );
    if (failure) return failure;
    if (selectGpus(reading.gpus, invocation.ids) === undefined || reading.gpus.length === 0) {
      return { kind: 'exit', text: NO_DEVICES_MESSAGE, code: EXIT_NO_DEVICES };
    }
    return { kind: 'text', text: render(reading, selected, nowMs, first) };
  };

  const loopMs = invocation.loopMs;
  if (loopMs === undefined) {
    for (;;) {
      const out = emit(io.now(), true);
      if (out.kind === 'text') {
        io.write(out.text);
        return 0;
      }
      if (out.kind === 'exit') {
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
    io.write(out.text);
    if (out.kind === 'exit') return out.code;
    first = false;
    if (invocation.count !== undefined && k + 1 >= invocation.count) return 0;
  }
}
