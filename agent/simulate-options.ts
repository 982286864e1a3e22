// The flags of `gpulse simulate`, checked when commander parses them: a typo must end the command
// at once with the accepted values, not start an agent whose simulated tools then fail forever.
import { statSync } from 'node:fs';
import { InvalidArgumentError } from 'commander';
import { PROFILES } from '../collectors/nvidia-smi/simulator/profile-table.js';
import { JETSON_DEVICES } from '../collectors/simulation/jetson.js';
import {
  parseScenario,
  SCENARIO_NAMES,
  type Scenario,
} from '../collectors/simulation/scenarios.js';
import { parseProcessList } from '../collectors/simulation/world.js';

/** Every `--profile` name: the simulated nvidia-smi's discrete GPUs, then the Jetson boards. */
export const SIMULATED_PROFILES: readonly string[] = [
  ...Object.keys(PROFILES),
  ...Object.keys(JETSON_DEVICES),
];

/** Most synthetic processes `--process-count` accepts (the largest bench uses 64 per GPU). */
export const MAX_PROCESS_COUNT = 4096;

const SCENARIO_FORM =
  'NAME[:after=10s,for=20s,gpu=0+3,ramp=5s,sigterm=ignore|exit] (for=inf never ends)';

/** `--profile`: one of the simulated machines. */
export function parseProfileOption(value: string): string {
  if (SIMULATED_PROFILES.includes(value)) return value;
  throw new InvalidArgumentError(`Known profiles: ${SIMULATED_PROFILES.join(', ')}.`);
}

/** `--scenario`: `NAME[:key=value,...]`, parsed by the simulators' own parser. */
export function parseScenarioOption(value: string): string {
  const name = value.split(':', 1)[0]?.trim() ?? '';
  const names = SCENARIO_NAMES.filter((n) => n !== 'none');
  if (!(SCENARIO_NAMES as readonly string[]).includes(name)) {
    throw new InvalidArgumentError(
      `Known scenarios: ${names.join(', ')}; timing as ${SCENARIO_FORM}.`,
    );
  }
  try {
    parseScenario(value);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new InvalidArgumentError(
      `${why[0]?.toUpperCase() ?? ''}${why.slice(1)}. Expected ${SCENARIO_FORM}, durations like 500ms, 10s, 1m.`,
    );
  }
  return value;
}

/** `--seed`: a whole number the load curve is hashed with. */
export function parseSeedOption(value: string): string {
  if (/^\d{1,10}$/.test(value.trim()) && Number(value) <= 0xffff_ffff) return value.trim();
  throw new InvalidArgumentError('Expected a whole number from 0 to 4294967295.');
}

/** `--process-count`: how many synthetic GPU processes. */
export function parseProcessCountOption(value: string): string {
  const n = Number(value.trim());
  if (/^\d+$/.test(value.trim()) && n <= MAX_PROCESS_COUNT) return String(n);
  throw new InvalidArgumentError(`Expected a whole number from 0 to ${MAX_PROCESS_COUNT}.`);
}

/** `--process` (repeatable): a real PID to report as a process on a GPU. */
export function parseProcessOption(value: string, previous: readonly string[] = []): string[] {
  let ok: boolean;
  try {
    ok = !value.includes(',') && parseProcessList(value).length === 1;
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new InvalidArgumentError(
      'Expected PID:GPU:MIB[:NAME], e.g. 4242:0:2048:python (a PID, a GPU index, MiB of GPU memory).',
    );
  }
  return [...previous, value];
}

/** `--capture` and `--apps-capture`: a readable file. */
export function parseFileOption(value: string): string {
  let isFile: boolean;
  try {
    isFile = statSync(value).isFile();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InvalidArgumentError(
      code === 'ENOENT' ? 'No such file.' : `Cannot read it (${code ?? String(err)}).`,
    );
  }
  if (!isFile) throw new InvalidArgumentError('Not a regular file.');
  return value;
}

/** GPUs of a profile, or undefined for a name no profile has. */
export function profileGpuCount(profile: string): number | undefined {
  if (JETSON_DEVICES[profile] !== undefined) return 1;
  return PROFILES[profile]?.gpuCount;
}

/** What `gpulse simulate` was asked for, as commander parsed it. */
export interface SimulateFlags {
  readonly profile: string;
  readonly scenario?: string;
  readonly capture?: string;
  readonly appsCapture?: string;
  readonly processes: readonly string[];
  readonly processCount?: string;
}

/**
 * Checks the flags that only make sense together (a GPU index against the profile's GPUs, the apps
 * capture with a capture); the first problem as commander would word it, or undefined.
 */
export function simulateFlagProblem(flags: SimulateFlags): string | undefined {
  if (flags.appsCapture !== undefined && flags.capture === undefined) {
    return "error: option '--apps-capture <FILE>' needs --capture: it replays the processes of that capture.";
  }
  if (flags.capture !== undefined) return undefined;
  const gpus = profileGpuCount(flags.profile) ?? 0;
  const jetson = JETSON_DEVICES[flags.profile] !== undefined;
  for (const spec of flags.processes) {
    const [process] = parseProcessList(spec);
    if (process !== undefined && process.gpuIndex >= gpus) {
      return `error: option '--process <PID:GPU:MIB>' argument '${spec}' is invalid. Profile ${flags.profile} has ${gpus} GPU(s): use a GPU index from 0 to ${gpus - 1}.`;
    }
  }
  if (jetson && flags.processCount !== undefined) {
    return `error: option '--process-count <N>' does not apply to ${flags.profile}: a Jetson runs its profile's processes; name real ones with --process PID:0:MIB.`;
  }
  if (flags.scenario !== undefined) {
    const scenario: Scenario = parseScenario(flags.scenario);
    const stray = scenario.gpus?.find((g) => g >= gpus);
    if (stray !== undefined) {
      return `error: option '--scenario <SPEC>' argument '${flags.scenario}' is invalid. Profile ${flags.profile} has ${gpus} GPU(s): gpu=${stray} does not exist.`;
    }
  }
  return undefined;
}
