/**
 * The simulated `dcgmi`: `discovery -l` and `dmon`, with the host engine's failure modes,
 * driven by the same simulated GPU world (and the same GPULSE_SIM_* settings) as the
 * simulated nvidia-smi. The logic lives here so tests run it in-process.
 */
import { scenarioFailure } from '../../simulation/world.js';
import { ProfileSource } from '../../nvidia-smi/simulator/profiles.js';
import { simSetup, type SimEnv, type SimSetup } from '../../nvidia-smi/simulator/run.js';
import type { Reading } from '../../nvidia-smi/simulator/source.js';
import { dcgmCatalogue, isProfilingField, type DcgmField } from '../catalogue.js';
import { discoveryText, dmonHeader, dmonRow } from './output.js';
import { gpuFieldValues } from './values.js';
import { sleepUntil, type SimulatedToolIo } from '../../simulation/tool-process.js';

/** The process's outside world, injected so tests run the simulator in-process. */
export type DcgmiIo = SimulatedToolIo;

// dcgmi returns the dcgmReturn_t as its exit status: negative codes wrap around (-21 → 235).
const exitOf = (dcgmReturn: number): number => (256 + dcgmReturn) % 256;

/** DCGM_ST_CONNECTION_NOT_VALID: no host engine answers. */
export const EXIT_NO_HOST_ENGINE = exitOf(-21);
/** DCGM_ST_PROFILING_NOT_SUPPORTED. */
export const EXIT_PROFILING_NOT_SUPPORTED = exitOf(-36);
/** DCGM_ST_NO_DATA. */
export const EXIT_NO_DATA = exitOf(-14);
/** DCGM_ST_BADPARAM. */
export const EXIT_BAD_PARAM = exitOf(-1);

/** What dcgmi prints (on stdout, as Command.cpp does) when no host engine answers. */
export function noHostEngineMessage(host: string): string {
  return (
    `Error: unable to establish a connection to the specified host: ${host}\n` +
    'Error: Unable to connect to host engine. Host engine connection invalid/disconnected.\n'
  );
}

/** dmon's words on a GPU without profiling support (GeForce, pre-Volta). */
export const PROFILING_NOT_SUPPORTED_MESSAGE =
  'Error setting watches. Result: -36: Profiling is not supported for this group of GPUs or GPU\n';

/** A parsed dcgmi command line. */
export type DcgmiCommand =
  | { readonly kind: 'discovery'; readonly host: string }
  | {
      readonly kind: 'dmon';
      readonly host: string;
      readonly fieldIds: readonly number[];
      readonly delayMs: number;
      readonly count: number;
      readonly entityIds: readonly number[] | undefined;
    };

/** A command line dcgmi rejects (TCLAP), with what it prints. */
export class DcgmiUsageError extends Error {}

function usage(problem: string): DcgmiUsageError {
  return new DcgmiUsageError(
    `PARSE ERROR: ${problem}\n\nBrief USAGE: \n   dcgmi  subsystem\n\nFor complete USAGE and HELP type: \n   dcgmi --help\n\n`,
  );
}

function intList(text: string | undefined, option: string): number[] {
  const items = (text ?? '').split(',').map((s) => s.trim());
  if (items.length === 0 || items.some((s) => !/^\d+$/.test(s))) {
    throw usage(`Argument: ${option}\n             Expected a comma-separated list of numbers`);
  }
  return items.map(Number);
}

/** Parses the subset of dcgmi's command line gpulse and people use. */
export function parseDcgmiArgs(argv: readonly string[]): DcgmiCommand {
  const [sub, ...rest] = argv;
  let host = 'localhost';
  const opts = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] ?? '';
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const key = eq >= 0 ? arg.slice(0, eq) : arg;
    if (
      [
        '-e',
        '--field-id',
        '-d',
        '--delay',
        '-c',
        '--count',
        '-i',
        '--entity-id',
        '--host',
      ].includes(key)
    ) {
      const value = eq >= 0 ? arg.slice(eq + 1) : rest[++i];
      if (value === undefined)
        throw usage(`Argument: ${key}\n             Missing a value for this argument!`);
      opts.set(
        key
          .replace(/^--field-id$/, '-e')
          .replace(/^--delay$/, '-d')
          .replace(/^--count$/, '-c')
          .replace(/^--entity-id$/, '-i'),
        value,
      );
    } else if (key === '-l' || key === '--list') {
      flags.add('-l');
    } else {
      throw usage(`Argument: ${arg}\n             Couldn't find match for argument`);
    }
  }
  host = opts.get('--host') ?? host;
  if (sub === 'discovery') {
    if (!flags.has('-l')) throw usage('One of the required arguments is missing: -l');
    return { kind: 'discovery', host };
  }
  if (sub === 'dmon') {
    if (!opts.has('-e'))
      throw usage('Either field group ID or a list of field IDs must be provided.');
    const delay = Number(opts.get('-d') ?? '1000');
    const count = Number(opts.get('-c') ?? '0');
    if (!Number.isInteger(delay) || delay < 1)
      throw usage('Argument: -d\n             Expected a positive delay in ms');
    if (!Number.isInteger(count) || count < 0)
      throw usage('Argument: -c\n             Expected a count');
    const entity = opts.get('-i');
    return {
      kind: 'dmon',
      host,
      fieldIds: intList(opts.get('-e'), '-e'),
      delayMs: delay,
      count,
      entityIds: entity === undefined ? undefined : intList(entity, '-i'),
    };
  }
  throw usage(
    `Argument: ${sub ?? '(none)'}\n             Unknown subsystem (simulated: discovery, dmon)`,
  );
}

/** DCGM profiles datacenter GPUs only; GeForce boards answer "Profiling is not supported". */
function profilingSupported(reading: Reading): boolean {
  return reading.gpus.every((g) => !/GeForce/i.test(g.name));
}

/** Xid the GPU last reported: the lost GPU of a gpu-lost episode said 79, "fallen off the bus". */
function lastXid(setup: SimSetup, index: number, nowMs: number): number {
  const failure = scenarioFailure(setup.scenario, setup.startMs, nowMs);
  const episodeOver =
    setup.scenario.name === 'gpu-lost' &&
    setup.scenario.forMs !== undefined &&
    nowMs - setup.startMs >= setup.scenario.afterMs + setup.scenario.forMs;
  const lostGpu = setup.scenario.gpus?.[0] ?? 0;
  if (
    (failure?.kind === 'gpu-lost' && failure.gpuIndex === index) ||
    (episodeOver && lostGpu === index)
  ) {
    return 79;
  }
  return 0;
}

/** Runs one dcgmi command line; resolves with the exit status. */
export async function runDcgmi(argv: readonly string[], env: SimEnv, io: DcgmiIo): Promise<number> {
  let command: DcgmiCommand;
  try {
    command = parseDcgmiArgs(argv);
  } catch (err) {
    if (err instanceof DcgmiUsageError) {
      io.writeError(err.message);
      return 1;
    }
    throw err;
  }
  if ((env.GPULSE_SIM_DCGM ?? '').toLowerCase() === 'absent') {
    io.write(noHostEngineMessage(command.host));
    return EXIT_NO_HOST_ENGINE;
  }
  let setup: SimSetup;
  try {
    setup = simSetup(env, io.now());
  } catch (err) {
    io.writeError(`dcgmi simulator: ${err instanceof Error ? err.message : String(err)}\n`);
    return 255;
  }
  const seed = Number(env.GPULSE_SIM_SEED ?? '1') || 1;
  // Without a driver there is no host engine to talk to.
  const readAt = async (nowMs: number, block: boolean): Promise<Reading | 'no-engine' | 'hung'> => {
    for (;;) {
      const reading = setup.source.read(nowMs);
      const failure = reading.failure ?? scenarioFailure(setup.scenario, setup.startMs, nowMs);
      if (failure?.kind === 'no-driver') return 'no-engine';
      if (failure?.kind === 'hang') {
        if (!block) return 'hung';
        await sleepUntil(io, failure.untilMs);
        if (io.signal?.aborted) return 'hung';
        nowMs = io.now();
        continue;
      }
      if (failure?.kind === 'no-devices') return { ...reading, gpus: [] };
      return reading;
    }
  };

  if (command.kind === 'discovery') {
    const reading = await readAt(io.now(), true);
    if (reading === 'hung') return 0;
    if (reading === 'no-engine') {
      io.write(noHostEngineMessage(command.host));
      return EXIT_NO_HOST_ENGINE;
    }
    io.write(
      discoveryText(
        reading.gpus.map((g) => ({
          gpuId: g.index,
          name: g.name,
          pciBusId: g.busId ?? 'N/A',
          uuid: g.uuid ?? 'N/A',
        })),
      ),
    );
    return 0;
  }

  const catalogue = dcgmCatalogue();
  const fields: DcgmField[] = [];
  for (const id of command.fieldIds) {
    const field = catalogue.find((f) => f.id === id);
    if (!field) {
      io.write(`Error: Invalid field ID: ${id}\n`);
      return EXIT_BAD_PARAM;
    }
    fields.push(field);
  }
  const first = await readAt(io.now(), true);
  if (first === 'hung') return 0;
  if (first === 'no-engine') {
    io.write(noHostEngineMessage(command.host));
    return EXIT_NO_HOST_ENGINE;
  }
  if (fields.some(isProfilingField) && !profilingSupported(first)) {
    io.write(PROFILING_NOT_SUPPORTED_MESSAGE);
    return EXIT_PROFILING_NOT_SUPPORTED;
  }
  io.write(dmonHeader(fields));
  const startMs = io.now();
  let headerCount = 0;
  for (let k = 0; command.count === 0 || k < command.count; k++) {
    await sleepUntil(io, startMs + k * command.delayMs);
    if (io.signal?.aborted) return 0;
    const nowMs = io.now();
    const reading = await readAt(nowMs, false);
    if (reading === 'no-engine') {
      // The host engine went away with the driver: the stream ends as a lost connection does.
      io.write(noHostEngineMessage(command.host));
      return EXIT_NO_HOST_ENGINE;
    }
    if (reading !== 'hung') {
      const gpus = reading.gpus.filter(
        (g) => command.entityIds === undefined || command.entityIds.includes(g.index),
      );
      if (gpus.length === 0) {
        io.write('No data returned from the hostengine.\n');
        return EXIT_NO_DATA;
      }
      const failure = reading.failure ?? scenarioFailure(setup.scenario, setup.startMs, nowMs);
      const lostNow = failure?.kind === 'gpu-lost' ? failure.gpuIndex : undefined;
      // Integrating power costs a world evaluation per second: only when the field is asked for.
      const energy =
        setup.source instanceof ProfileSource &&
        fields.some((f) => f.name === 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION')
          ? setup.source.energySinceStartJoules(nowMs)
          : undefined;
      let text = '';
      for (const g of [...gpus].sort((a, b) => a.index - b.index)) {
        const state =
          setup.source instanceof ProfileSource
            ? setup.source.state(nowMs).gpus[g.index]
            : undefined;
        const xid = lastXid(setup, g.index, nowMs);
        const values = gpuFieldValues({
          row: g,
          state,
          gpuCount: reading.gpus.length,
          nowMs,
          startMs: setup.startMs,
          seed,
          lastXid: xid,
          energySinceStartJ: energy?.[g.index],
        });
        // A GPU that fell off the bus has no readings, only the Xid that said so.
        const row = fields.map((f) =>
          lostNow === g.index && f.name !== 'DCGM_FI_DEV_XID_ERRORS'
            ? undefined
            : values.get(f.name),
        );
        text += dmonRow(`GPU ${g.index}`, fields, row);
      }
      io.write(text);
    }
    if (command.count !== 0 && k + 1 >= command.count) break;
    // DeviceMonitor.cpp reprints the header after the 15th block, then after every 14th.
    if (headerCount === 14) {
      await sleepUntil(io, startMs + (k + 1) * command.delayMs);
      io.write(dmonHeader(fields));
      headerCount = 0;
    }
    headerCount++;
  }
  return 0;
}
