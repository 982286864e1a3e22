import { cudaSupport, normaliseCuda } from '../cuda-drivers.js';
import type { Check, CheckOutcome } from '../types.js';

/** Driver and CUDA versions, and whether the driver supports `--cuda X.Y`. */
export const driverCudaCheck: Check = {
  id: 'driver-cuda',
  title: 'driver / CUDA',
  async run(ctx): Promise<CheckOutcome> {
    const required = ctx.config.collectors['nvidia-smi'].mode !== 'off';
    if (ctx.config.collectors['nvidia-smi'].mode === 'off')
      return { status: 'skip', required: false, finding: 'the nvidia-smi collector is off' };
    const probe = await ctx.nvidiaSmi();
    if (!probe.ok)
      return {
        status: 'skip',
        required: false,
        finding: 'no driver to ask: nvidia-smi does not answer (see the nvidia-smi check)',
      };
    const driver = probe.driverVersion;
    const driverCuda = probe.cudaVersion;
    const versions = `driver ${driver ?? 'unknown'}, CUDA ${driverCuda ?? 'unknown'}`;
    const details: Record<string, string | boolean> = {};
    if (driver) details.driverVersion = driver;
    if (driverCuda) details.cudaVersion = driverCuda;
    if (ctx.cuda === undefined)
      return {
        status: 'ok',
        required: false,
        finding: `${versions} (the newest CUDA this driver runs in full)`,
        details,
      };
    const wanted = normaliseCuda(ctx.cuda);
    if (!wanted)
      return {
        status: 'fail',
        required,
        finding: `--cuda ${JSON.stringify(ctx.cuda)} is not a CUDA version`,
        problem: 'the requested CUDA version could not be read',
        fix: 'pass the toolkit version as MAJOR.MINOR, e.g. `gpulse doctor --cuda 12.4`',
        details,
      };
    details.requestedCuda = wanted;
    const support = cudaSupport(wanted, driver, driverCuda);
    const needs = support.minimumDriver
      ? ` (CUDA ${wanted} needs driver ≥ ${support.minimumDriver})`
      : '';
    if (support.minimumDriver) details.minimumDriver = support.minimumDriver;
    details.cudaSupported = support.level === 'full';
    const upgrade = support.minimumDriver
      ? `install driver ${support.minimumDriver} or newer (https://www.nvidia.com/drivers; Ubuntu: \`sudo ubuntu-drivers install\`), then reboot`
      : `install a driver whose nvidia-smi reports CUDA ${wanted} or newer (https://www.nvidia.com/drivers), then reboot`;
    switch (support.level) {
      case 'full':
        return {
          status: 'ok',
          required,
          finding: `${versions}: supports CUDA ${wanted}${needs}`,
          details,
        };
      case 'minor-compat':
        return {
          status: 'warn',
          required,
          finding: `${versions}: CUDA ${wanted} runs only through minor version compatibility${needs}`,
          problem: `applications built with CUDA ${wanted} run, but PTX compiled for a newer CUDA does not JIT and features newer than CUDA ${driverCuda ?? 'the driver'} are missing`,
          fix: `${upgrade}; on data center GPUs the forward-compatibility package also works: \`sudo apt install cuda-compat-${wanted.replace('.', '-')}\` with LD_LIBRARY_PATH=/usr/local/cuda-${wanted}/compat`,
          details,
        };
      case 'none':
        return {
          status: 'fail',
          required,
          finding: `${versions}: does not support CUDA ${wanted}${needs}`,
          problem: `CUDA ${wanted} applications fail with "CUDA driver version is insufficient for CUDA runtime version"`,
          fix: upgrade,
          details,
        };
      case 'unknown':
        return {
          status: 'warn',
          required: false,
          finding: `${versions}: cannot tell whether CUDA ${wanted} is supported`,
          problem: 'the driver reports no CUDA version and the toolkit is not in the table',
          fix: `compare \`nvidia-smi\`'s "CUDA Version" with ${wanted}`,
          details,
        };
    }
  },
};
