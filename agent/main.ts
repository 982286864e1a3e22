#!/usr/bin/env -S node --max-semi-space-size=2 --interrupt-budget=1048576
// --max-semi-space-size caps V8's young generation at 2 MB semi-spaces (default: grows to 16): the
// agent allocates about 1.5 MB/s at 8 GPUs, so a scavenge every second or two costs little and the
// idle heap stays ~30 MB smaller. --interrupt-budget (8 times V8's default) makes a function run
// longer before the optimizing compiler takes it: the agent's code runs a few times a second, and
// at the default its first minutes spend ~1 % of a core compiling functions that gain nothing from
// it; code that is really hot (a scrape under load, the gateway's ingest) is still optimized.
// `npm start`, the image and the benches all run this file itself, so this line is the one place
// the flags are set.
// Composition root: the only module that reads process.argv, handles signals and calls process.exit.
import { Command, Option, type CommanderError } from 'commander';
import { SCENARIO_NAMES } from '../collectors/simulation/scenarios.js';
import { loadAgentConfigInChild } from './config-in-child.js';
import { settings } from './settings.generated.js';
import { packageVersion } from './package-info.js';
import {
  MAX_PROCESS_COUNT,
  parseFileOption,
  parseProcessCountOption,
  parseProcessOption,
  parseProfileOption,
  parseScenarioOption,
  parseSeedOption,
  SIMULATED_PROFILES,
  simulateFlagProblem,
} from './simulate-options.js';
import { startAgent, type AgentCommandOptions, type SimulateOptions } from './run-agent.js';

const SHUTDOWN_LIMIT_MS = 5000;

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

function addAgentOptions(cmd: Command): Command {
  cmd.option('-c, --config <FILE>', 'YAML configuration file (also GPULSE_CONFIG)');
  for (const s of settings) {
    if (!s.flag) continue;
    cmd.option(
      `--${s.flag} <${s.valueName ?? 'VALUE'}>`,
      `${s.description}${s.env ? ` [${s.env}]` : ''}`,
    );
  }
  return cmd;
}

function agentOptions(opts: Record<string, unknown>): AgentCommandOptions {
  const flags: Record<string, string | undefined> = {};
  for (const s of settings) {
    if (!s.flag) continue;
    const v = opts[camel(s.flag)];
    if (typeof v === 'string') flags[s.flag] = v;
  }
  return { config: typeof opts.config === 'string' ? opts.config : undefined, flags };
}

/**
 * Exit status of commander's own endings: help and --version exit 0; a bad command line (unknown
 * option, missing or invalid value) exits 2, as for an invalid configuration, whichever command.
 */
function exitWithUsageStatus(err: CommanderError): never {
  if (err.exitCode === 0) process.exit(0);
  process.exit(USAGE_ERRORS.has(err.code) ? 2 : err.exitCode);
}

const USAGE_ERRORS = new Set([
  'commander.unknownOption',
  'commander.unknownCommand',
  'commander.missingArgument',
  'commander.optionMissingArgument',
  'commander.missingMandatoryOptionValue',
  'commander.invalidArgument',
  'commander.excessArguments',
  'commander.conflictingOption',
  'commander.help',
]);

async function runUntilSignal(
  mode: 'run' | 'simulate',
  opts: Record<string, unknown>,
  sim: SimulateOptions,
) {
  const version = packageVersion();
  const outcome = await startAgent(mode, agentOptions(opts), sim, {
    env: process.env,
    stderr: (t) => process.stderr.write(t),
    version,
    loadConfig: loadAgentConfigInChild,
  });
  if (outcome.kind === 'exit') process.exit(outcome.code);
  const { agent, log } = outcome;
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second Ctrl-C means "now"; a repeated SIGTERM (timeout(1), process-group kills) does not.
      if (signal === 'SIGINT') {
        log.warn({ signal }, 'second interrupt: exiting now');
        process.exit(1);
      }
      return;
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    // Stuck children (a GPU tool in D state) must not keep us past the limit.
    const guard = setTimeout(() => {
      log.warn(`shutdown took longer than ${SHUTDOWN_LIMIT_MS}ms; exiting anyway`);
      process.exit(0);
    }, SHUTDOWN_LIMIT_MS - 500);
    guard.unref();
    agent
      .stop()
      .then(() => {
        log.info('stopped');
        log.flush?.();
        process.exit(0);
      })
      .catch(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

const program = new Command('gpulse')
  .description(
    'GPU monitoring agent and Prometheus exporter (nvidia-smi, DCGM, Jetson, Docker attribution, OOM/throttle/Xid detection).',
  )
  .version(packageVersion(), '-v, --version')
  .showHelpAfterError('(run `gpulse --help` for usage)')
  // Set before any subcommand exists, so every one inherits it.
  .exitOverride(exitWithUsageStatus);

addAgentOptions(
  program.command('run').description('run the agent: collect from this host and serve /metrics'),
).action(async (opts: Record<string, unknown>) => runUntilSignal('run', opts, {}));

addAgentOptions(
  program
    .command('simulate')
    .description('run the whole agent against simulated GPU tools (everything else is real)')
    .addOption(
      new Option('--profile <NAME>', `simulated machine: ${SIMULATED_PROFILES.join(', ')}`)
        .default('h100-8x')
        .argParser(parseProfileOption),
    )
    .option(
      '--scenario <SPEC>',
      `fault scenario NAME[:after=10s,for=20s,gpu=0]: ${SCENARIO_NAMES.filter((n) => n !== 'none').join(', ')}`,
      parseScenarioOption,
    )
    .option(
      '--capture <FILE>',
      'replay a real capture: nvidia-smi -q -x XML, an all-fields --query-gpu CSV, or a tegrastats log',
      parseFileOption,
    )
    .option('--apps-capture <FILE>', 'with --capture: a --query-compute-apps CSV', parseFileOption)
    .option(
      '--process <PID:GPU:MIB>',
      'report this PID as a process on a GPU (repeatable)',
      parseProcessOption,
      [],
    )
    .option(
      '--process-count <N>',
      `number of synthetic GPU processes (0 to ${MAX_PROCESS_COUNT})`,
      parseProcessCountOption,
    )
    .option('--seed <N>', 'seed of the simulated load curve (a whole number)', parseSeedOption),
).action(async (opts: Record<string, unknown>, cmd: Command) => {
  const sim = {
    profile: opts.profile as string,
    scenario: opts.scenario as string | undefined,
    capture: opts.capture as string | undefined,
    appsCapture: opts.appsCapture as string | undefined,
    processes: opts.process as string[],
    processCount: opts.processCount as string | undefined,
    seed: opts.seed as string | undefined,
  };
  const problem = simulateFlagProblem(sim);
  if (problem !== undefined) cmd.error(problem, { exitCode: 2, code: 'gpulse.invalidFlags' });
  return runUntilSignal('simulate', opts, sim);
});

// The other commands bring code `run` and `simulate` never use (the model updater with
// dockerode, the gateway with aedes, the drift profiler with csv-parse): memory an edge device
// with 64 MB for the agent does not have. They are loaded only when another command (or the
// full --help) may need them.
program.enablePositionalOptions();
const subcommand = process.argv[2];
if (subcommand !== 'run' && subcommand !== 'simulate') {
  const [
    { registerGatewayCommand },
    { registerDriftCommand },
    { registerModelCommands },
    { registerDoctorCommand },
    { registerWebConfigCommand },
  ] = await Promise.all([
    import('../edge/gateway/command.js'),
    import('./components/drift/cli.js'),
    import('../edge/models/cli.js'),
    import('./doctor/command.js'),
    import('./http/command.js'),
  ]);
  registerGatewayCommand(program, process);
  registerDriftCommand(program);
  registerModelCommands(program);
  registerDoctorCommand(program);
  registerWebConfigCommand(program);
}

/** Points a usage error at the help of the command that failed, not at the whole CLI's. */
function pointUsageAtHelp(cmd: Command, path: string): void {
  for (const sub of cmd.commands) {
    const name = `${path} ${sub.name()}`;
    sub.showHelpAfterError(`(run \`${name} --help\` for usage)`);
    pointUsageAtHelp(sub, name);
  }
}
pointUsageAtHelp(program, 'gpulse');

await program.parseAsync(process.argv);
