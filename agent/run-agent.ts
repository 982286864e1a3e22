import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { buildAgent, ListenError, type Agent } from './build-agent.js';
import { systemClock } from './core/clock.js';
import { createCollectors, simulatedCollectors } from '../collectors/index.js';
import type { SimulatedMachine } from '../collectors/descriptor.js';
import { GpuContainerLookup } from './attribution/gpu-processes.js';
import type { Component } from './core/component.js';
import { createComponents } from './components.js';
import type { AgentConfig } from './config.js';
import type { ConfigLoader } from './config-loader.js';
import { ConfigError, errorMessage } from './core/errors.js';
import { explicitToolProblems } from './explicit-tools.js';
import { createLogger } from './core/logger.js';
import { ChildProcesses } from './process/process.js';
import { jetsonDevice } from '../collectors/simulation/jetson.js';
import { parseTegrastatsLine } from '../collectors/tegrastats/parse.js';

/** Options shared by `gpulse run` and `gpulse simulate` (flag values as commander parsed them). */
export interface AgentCommandOptions {
  readonly config?: string;
  /** Values of the setting flags, keyed by flag name without dashes. */
  readonly flags: Readonly<Record<string, string | undefined>>;
}

/** Options only `gpulse simulate` has. */
export interface SimulateOptions {
  readonly profile?: string;
  readonly scenario?: string;
  readonly capture?: string;
  readonly appsCapture?: string;
  readonly processes?: readonly string[];
  readonly processCount?: string;
  readonly seed?: string;
}

/** What the command returns to main: a running agent to stop on a signal, or an exit code. */
export type StartOutcome =
  | { readonly kind: 'running'; readonly agent: Agent; readonly log: Logger }
  | { readonly kind: 'exit'; readonly code: number };

/** True when a capture file is tegrastats output (its first line has RAM or GR3D fields). */
export function isTegrastatsCapture(path: string): boolean {
  let first: string | undefined;
  try {
    first = readFileSync(path, 'utf8')
      .split('\n')
      .find((l) => l.trim() !== '');
  } catch {
    // An unreadable capture is the simulators' to report, with their own message.
    return false;
  }
  const reading = first === undefined ? undefined : parseTegrastatsLine(first);
  return reading?.ram !== undefined || reading?.gpu !== undefined;
}

/** The machine `gpulse simulate` stands in for: a Jetson profile, a capture, or a GPU server. */
export function simulatedMachine(sim: SimulateOptions): SimulatedMachine {
  return {
    jetson: sim.capture === undefined ? jetsonDevice(sim.profile) : undefined,
    capture: sim.capture,
    tegrastatsCapture: sim.capture !== undefined && isTegrastatsCapture(sim.capture),
  };
}

/** Environment for simulated GPU tools: the scenario clock starts now, shared by every child. */
export function simulationEnv(
  base: NodeJS.ProcessEnv,
  sim: SimulateOptions,
  now: number,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, GPULSE_SIM_START: String(now) };
  if (sim.profile) env.GPULSE_SIM_PROFILE = sim.profile;
  if (sim.scenario) env.GPULSE_SIM_SCENARIO = sim.scenario;
  if (sim.capture) env.GPULSE_SIM_CAPTURE = sim.capture;
  if (sim.appsCapture) env.GPULSE_SIM_APPS_CAPTURE = sim.appsCapture;
  if (sim.processes && sim.processes.length > 0) env.GPULSE_SIM_PROCESSES = sim.processes.join(',');
  if (sim.processCount) env.GPULSE_SIM_PROCESS_COUNT = sim.processCount;
  if (sim.seed) env.GPULSE_SIM_SEED = sim.seed;
  // The simulator starts with `#!/usr/bin/env node`: make sure the node running us is found first.
  env.PATH = [dirname(process.execPath), base.PATH ?? ''].filter(Boolean).join(':');
  return env;
}

/** Starts the agent for `run` (real GPUs) or `simulate` (simulated GPU tools, everything else real). */
export async function startAgent(
  mode: 'run' | 'simulate',
  options: AgentCommandOptions,
  sim: SimulateOptions,
  io: {
    readonly env: NodeJS.ProcessEnv;
    readonly stderr: (text: string) => void;
    readonly version: string;
    /** Components a test adds to the agent's own (`createComponents`). */
    readonly components?: (config: AgentConfig) => readonly Component[];
    /** How the configuration is loaded (default: in this process; main uses a child process). */
    readonly loadConfig?: ConfigLoader;
  },
): Promise<StartOutcome> {
  const load = io.loadConfig ?? (await import('./config-loader.js')).loadAgentConfig;
  const loaded = await load(options, io.env, io.stderr);
  if (!loaded) return { kind: 'exit', code: 2 };
  // Simulated tools replace the configured ones, so only `run` checks the paths given for them.
  const toolProblems =
    mode === 'run' ? explicitToolProblems(loaded.config, loaded.explicit ?? {}) : [];
  if (toolProblems.length > 0) {
    io.stderr(`gpulse: ${new ConfigError(toolProblems).message}\n`);
    return { kind: 'exit', code: 2 };
  }
  let config = loaded.config;
  let env = io.env;
  if (mode === 'simulate') {
    env = simulationEnv(io.env, sim, Date.now());
    config = {
      ...config,
      collectors: simulatedCollectors(config.collectors, simulatedMachine(sim)),
    };
  }
  const log = createLogger(config.log);
  for (const w of loaded.warnings) log.warn(w);
  for (const n of loaded.notes ?? []) log.info(n);
  const gpuContainers = new GpuContainerLookup();
  // Every child process goes through this, so none outlives the agent.
  const children = new ChildProcesses();
  const agent = buildAgent(config, {
    log,
    version: io.version,
    env,
    children,
    // The changed web configuration is validated the way the first was (in main: a child process).
    reloadWebConfig: async () => {
      let problems = '';
      const again = await load(options, io.env, (t) => (problems += t));
      const web = again?.config.http.web;
      if (web) return web;
      throw new Error(
        again
          ? 'http.webConfigFile is no longer set; restart to serve without it'
          : problems.trim(),
      );
    },
    collectors: await createCollectors(config, {
      clock: systemClock,
      env,
      spawnFn: children.spawn,
      usesGpu: gpuContainers.has,
      unnamedGpuContainers: gpuContainers.unnamed,
    }),
    components: [...(await createComponents(config)), ...(io.components?.(config) ?? [])],
  });
  gpuContainers.bind(agent.store);
  try {
    const address = await agent.start();
    log.info(
      { address, mode, collectors: agent.runner.names(), version: io.version },
      mode === 'simulate'
        ? `gpulse simulating GPUs (${sim.capture ? `capture ${sim.capture}` : `profile ${sim.profile ?? 'h100-8x'}`}); metrics at ${address}/metrics`
        : `gpulse serving metrics at ${address}/metrics`,
    );
    return { kind: 'running', agent, log };
  } catch (err) {
    await agent.stop();
    if (err instanceof ListenError) {
      log.error(err.message);
      return { kind: 'exit', code: 1 };
    }
    log.error({ err: errorMessage(err) }, 'gpulse failed to start');
    return { kind: 'exit', code: 1 };
  }
}
