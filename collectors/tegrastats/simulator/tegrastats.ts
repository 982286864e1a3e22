#!/usr/bin/env node
/**
 * Simulated `tegrastats`: spawned exactly like the real binary, configured by GPULSE_SIM_*
 * (see README.md beside this file). This file only wires the process; the logic is
 * `runTegrastats` so tests can drive it in-process.
 */
import { parseScenario, scenarioPhase } from '../../simulation/scenarios.js';
import { runTegrastats } from './run.js';

// A reader that goes away (head, a killed agent) must end us quietly, as SIGPIPE ends the real one.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  process.exit(err.code === 'EPIPE' ? 0 : 1);
});

// `hang:...,sigterm=ignore` models a read stuck in the kernel, which SIGTERM cannot end.
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
  // A malformed scenario is reported by runTegrastats below.
}

const code = await runTegrastats(process.argv.slice(2), process.env, {
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
