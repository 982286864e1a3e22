#!/usr/bin/env node
/**
 * Simulated `tegrastats`: spawned exactly like the real binary, configured by GPULSE_SIM_*
 * (see the README beside this folder). This file only wires the process; the logic is
 * `runTegrastats` so tests can drive it in-process.
 */
import { runAsProcess } from '../../simulation/tool-process.js';
import { runTegrastats } from './run.js';

await runAsProcess(runTegrastats, 'hang-scenario');
