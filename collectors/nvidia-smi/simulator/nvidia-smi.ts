#!/usr/bin/env node
/**
 * Simulated `nvidia-smi`: spawned exactly like the real binary, configured by GPULSE_SIM_*
 * (see README.md beside this file). This file only wires the process; the logic is
 * `runNvidiaSmi` so tests can drive it in-process.
 */
import { parseScenario, scenarioPhase } from '../../simulation/scenarios.js';
import { runNvidiaSmi } from './run.js';

// A reader that goes away (head, a killed agent) must end us quietly, as SIGPIPE ends the real one.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  process.exit(err.code === 'EPIPE' ? 0 : 1);
});

// `hang:...,sigterm=ignore` models a process stuck in the driver (D state), which SIGTERM
// cannot end; outside the hang SIGTERM behaves as the default (death by signal).
try {
  const scenario = parseScenario(process.env.GPULSE_SIM_SCENARIO);
  if (scenario.name === 'hang' && scenario.ignoreSigterm) {
    const startMs = Number(process.env.GPULSE_SIM_START ?? Date.now());
    process.on('SIGTERM', () => {
      if (scenarioPhase(scenario, Date.now() - startMs).state === 'active') return;
      process.removeAllListeners('SIGTERM');
      process.kill(process.pid, 'SIGTERM');
    });
  }
} catch {
  // A malformed scenario is reported by runNvidiaSmi below.
}

const code = await runNvidiaSmi(process.argv.slice(2), process.env, {
  write: (text) => {
    process.stdout.write(text);
  },
  writeError: (text) => {
    process.stderr.write(text);
  },
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
});
process.exitCode = code;
