#!/usr/bin/env node
/**
 * Simulated `nvidia-smi`: spawned exactly like the real binary, configured by GPULSE_SIM_*
 * (see the README beside this folder). This file only wires the process; the logic is
 * `runNvidiaSmi` so tests can drive it in-process.
 */
import { runAsProcess } from '../../simulation/tool-process.js';
import { runNvidiaSmi } from './run.js';

await runAsProcess(runNvidiaSmi, 'hang-scenario');
