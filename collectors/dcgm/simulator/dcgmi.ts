#!/usr/bin/env node
/**
 * Simulated `dcgmi`: spawned exactly like the real binary, configured by GPULSE_SIM_*
 * (see the README beside this folder). This file only wires the process; the logic is
 * `runDcgmi` so tests can drive it in-process.
 */
import { runAsProcess } from '../../simulation/tool-process.js';
import { runDcgmi } from './run.js';

await runAsProcess(runDcgmi, 'exit-128-plus-signal');
