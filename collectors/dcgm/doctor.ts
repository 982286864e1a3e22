import { parseDiscovery } from './parse-dcgmi.js';
import { CommandError, runCommand } from '../../agent/process/process.js';
import type { Check, CheckOutcome } from '../../agent/doctor/types.js';

const INSTALL =
  'install DCGM (`sudo apt install datacenter-gpu-manager-4-core`, https://docs.nvidia.com/datacenter/dcgm/latest/user-guide/getting-started.html) and start it: `sudo systemctl enable --now nvidia-dcgm`';

/** DCGM host engine reachable through `dcgmi discovery -l`. */
export const dcgmCheck: Check = {
  id: 'dcgm',
  title: 'DCGM',
  async run(ctx): Promise<CheckOutcome> {
    const { mode, binary, host, timeout } = ctx.config.collectors.dcgm;
    if (mode === 'off')
      return {
        status: 'skip',
        required: false,
        finding: 'the DCGM collector is off (collectors.dcgm.mode: off)',
      };
    const required = mode === 'required';
    const bad = required ? 'fail' : 'warn';
    const details = { binary, host, mode };
    let result;
    try {
      result = await runCommand(binary, ['discovery', '-l', '--host', host], {
        timeoutMs: timeout,
        env: ctx.env,
      });
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      if (err.reason === 'not_found') {
        if (!required)
          return {
            status: 'skip',
            required: false,
            finding: `${binary} not installed: DCGM metrics off (nvidia-smi covers the basics)`,
            details,
          };
        return {
          status: 'fail',
          required,
          finding: `${binary} not found, but collectors.dcgm.mode is required`,
          problem: 'no DCGM profiling metrics (SM/tensor/DRAM activity, NVLink, Xid from DCGM)',
          fix: `${INSTALL}; or set GPULSE_DCGMI to dcgmi's path`,
          details,
        };
      }
      return {
        status: bad,
        required,
        finding: `${binary} discovery -l failed: ${err.reason.replace(/_/g, ' ')}`,
        problem: err.message,
        fix:
          err.reason === 'timeout'
            ? `the host engine at ${host} hangs: \`sudo systemctl restart nvidia-dcgm\`; raise GPULSE_DCGM_TIMEOUT on very large hosts`
            : `make ${binary} executable by this user, or set GPULSE_DCGMI`,
        details,
      };
    }
    const said = `${result.stdout}\n${result.stderr}`;
    if (result.code !== 0) {
      const noEngine = /unable to connect to host engine|host engine connection invalid/i.test(
        said,
      );
      return {
        status: bad,
        required,
        finding: noEngine
          ? `no DCGM host engine answers at ${host}`
          : `${binary} discovery -l exited ${result.code ?? result.signal ?? '?'}`,
        problem: noEngine
          ? 'dcgmi is installed but nv-hostengine is not running (or listens elsewhere): no DCGM metrics'
          : said.trim().split('\n').slice(-2).join(' / ').slice(0, 300),
        fix: noEngine
          ? `start the host engine: \`sudo systemctl enable --now nvidia-dcgm\` (or \`sudo nv-hostengine\`); if it runs elsewhere set GPULSE_DCGM_HOST=<host:port>`
          : `run \`${binary} discovery -l --host ${host}\` by hand; ${INSTALL}`,
        details: { ...details, exitCode: result.code ?? -1 },
      };
    }
    const gpus = parseDiscovery(result.stdout);
    if (gpus.length === 0)
      return {
        status: bad,
        required,
        finding: `the DCGM host engine at ${host} sees no GPU`,
        problem: 'DCGM answers but has no GPU to watch',
        fix: 'restart the host engine after the driver loads: `sudo systemctl restart nvidia-dcgm`',
        details: { ...details, gpus: 0 },
      };
    return {
      status: 'ok',
      required,
      finding: `host engine at ${host} answers: ${gpus.length} GPU${gpus.length === 1 ? '' : 's'}`,
      details: { ...details, gpus: gpus.length },
    };
  },
};
