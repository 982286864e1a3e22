#!/usr/bin/env node
/**
 * Simulated `dcgmi`: spawned exactly like the real binary, configured by GPULSE_SIM_* (see
 * ../README.md). This file only wires the process; the logic is `runDcgmi`.
 */
import { runDcgmi } from './run.js';

// A reader that goes away must end us quietly, as SIGPIPE ends the real one.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  process.exit(err.code === 'EPIPE' ? 0 : 1);
});
// dcgmi's main() exits with 128 + signal number on SIGTERM/SIGHUP/SIGINT/SIGQUIT.
for (const [signal, number] of [
  ['SIGTERM', 15],
  ['SIGHUP', 1],
  ['SIGINT', 2],
  ['SIGQUIT', 3],
] as const) {
  process.on(signal, () => process.exit(128 + number));
}

const code = await runDcgmi(process.argv.slice(2), process.env, {
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
