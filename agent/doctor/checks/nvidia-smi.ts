import { existsSync } from 'node:fs';
import { classifyExit } from '../../../collectors/nvidia-smi/exit-codes.js';
import { parseNvidiaSmiXml, type NvidiaSmiXml } from '../../../collectors/nvidia-smi/parse-xml.js';
import { errorMessage } from '../../core/errors.js';
import { CommandError, runCommand } from '../../process/process.js';
import { inContainer, tegrastatsPresent } from '../settings.js';
import type { Check, CheckOutcome, DoctorContext } from '../types.js';

/** One GPU as `nvidia-smi -q -x` lists it. */
export interface ProbedGpu {
  readonly index: number;
  readonly name?: string;
  readonly uuid: string;
}

/** Result of `nvidia-smi -q -x`: the driver's view, or why there is none. */
export type NvidiaSmiProbe =
  | {
      readonly ok: true;
      readonly binary: string;
      readonly driverVersion?: string;
      readonly cudaVersion?: string;
      readonly gpus: readonly ProbedGpu[];
      /** GPUs the driver has attached but cannot open (fallen off the bus), with its words. */
      readonly lost?: readonly {
        readonly index: number;
        readonly bus?: string;
        readonly error: string;
      }[];
    }
  | {
      readonly ok: false;
      readonly binary: string;
      /** not_found, permission_denied, timeout, parse_error or an exit-code reason (driver_not_loaded, no_devices...). */
      readonly reason: string;
      readonly message: string;
      readonly exitCode?: number;
    };

/** Runs the configured nvidia-smi (`collectors.nvidia-smi.binary`, GPULSE_NVIDIA_SMI) once. */
export async function probeNvidiaSmi(
  ctx: Pick<DoctorContext, 'config' | 'env'>,
): Promise<NvidiaSmiProbe> {
  const { binary, timeout } = ctx.config.collectors['nvidia-smi'];
  let result;
  try {
    result = await runCommand(binary, ['-q', '-x'], { timeoutMs: timeout, env: ctx.env });
  } catch (err) {
    if (err instanceof CommandError)
      return { ok: false, binary, reason: err.reason, message: err.message };
    throw err;
  }
  // One GPU lost: nvidia-smi prints the others' document around its line, then exits non-zero.
  const partial = result.code !== 0 ? lostGpuDocument(binary, result.stdout) : undefined;
  if (partial) return partial;
  if (result.code !== 0) {
    const f = classifyExit(
      binary,
      result.code,
      result.signal,
      `${result.stdout}\n${result.stderr}`,
    );
    return {
      ok: false,
      binary,
      reason: f.reason,
      message: f.message,
      exitCode: result.code ?? undefined,
    };
  }
  try {
    return foundGpus(binary, parseNvidiaSmiXml(result.stdout));
  } catch (err) {
    return {
      ok: false,
      binary,
      reason: 'parse_error',
      message: `${binary} -q -x printed something that is not nvidia-smi XML: ${errorMessage(err)}`,
    };
  }
}

/** The probe of a document nvidia-smi printed: its versions and the GPUs it lists. */
function foundGpus(binary: string, doc: NvidiaSmiXml): NvidiaSmiProbe & { ok: true } {
  return {
    ok: true,
    binary,
    driverVersion: doc.driverVersion,
    cudaVersion: doc.cudaVersion,
    gpus: doc.gpus.map((g) => ({ index: g.index, name: g.name, uuid: g.uuid })),
  };
}

/** The probe of a document that lists the GPUs nvidia-smi could open and names the ones it could not. */
function lostGpuDocument(binary: string, stdout: string): NvidiaSmiProbe | undefined {
  if (!stdout.includes('</nvidia_smi_log>')) return undefined;
  try {
    const doc = parseNvidiaSmiXml(stdout);
    if (!doc.unreachable?.length) return undefined;
    return {
      ...foundGpus(binary, doc),
      lost: doc.unreachable.map((h) => ({
        index: h.index ?? h.position,
        ...(h.pciBusId ? { bus: h.pciBusId } : {}),
        error: h.error,
      })),
    };
  } catch {
    return undefined;
  }
}

const INSTALL =
  'install the NVIDIA driver (Debian/Ubuntu: `sudo apt install nvidia-driver-<branch>`, or the .run/.deb from https://www.nvidia.com/drivers), or set GPULSE_NVIDIA_SMI=/path/to/nvidia-smi (--nvidia-smi)';

/** The fix for each way nvidia-smi fails. */
function fixFor(reason: string, binary: string, container: boolean): string {
  switch (reason) {
    case 'not_found':
      return container
        ? `start the container with the GPUs and driver tools: \`docker run --gpus all -e NVIDIA_DRIVER_CAPABILITIES=utility,compute ...\` (Kubernetes: runtimeClassName: nvidia); on the host, ${INSTALL}`
        : `${INSTALL}; on a host without NVIDIA GPUs set GPULSE_NVIDIA_SMI_MODE=off`;
    case 'permission_denied':
      return `make ${binary} executable by this user (\`ls -l $(command -v ${binary})\`), or run gpulse as a user allowed to use /dev/nvidia*`;
    case 'driver_not_loaded':
      return 'load the kernel module: `sudo modprobe nvidia` (check `dmesg | grep -i nvidia`); after a kernel update reinstall the driver (DKMS) and reboot';
    case 'library_not_found':
      return container
        ? 'mount the driver libraries: run with `--gpus all` (NVIDIA Container Toolkit) or `--runtime nvidia`'
        : 'reinstall the NVIDIA driver so libnvidia-ml.so matches nvidia-smi';
    case 'no_devices':
      return container
        ? 'pass the GPUs to the container: `docker run --gpus all ...` or NVIDIA_VISIBLE_DEVICES=all with the nvidia runtime'
        : 'check that the GPU is seen on the bus (`lspci | grep -i nvidia`) and that the driver supports it';
    case 'gpu_lost':
      return 'a GPU fell off the bus: check `dmesg | grep -i xid` and reboot (or reset with `sudo nvidia-smi -r -i <id>`)';
    case 'timeout':
      return 'nvidia-smi hangs (a driver stuck on a GPU): check `dmesg | grep -i xid`, enable persistence mode (`sudo nvidia-smi -pm 1` or nvidia-persistenced), reboot if it stays stuck; raise GPULSE_NVIDIA_SMI_TIMEOUT for very large hosts';
    case 'function_not_found':
      return 'nvidia-smi and libnvidia-ml.so are from different driver versions: reinstall the driver and reboot';
    default:
      return `run \`${binary} -q\` by hand to see the error; ${INSTALL}`;
  }
}

/** nvidia-smi present and answering. */
export const nvidiaSmiCheck: Check = {
  id: 'nvidia-smi',
  title: 'nvidia-smi',
  async run(ctx): Promise<CheckOutcome> {
    const mode = ctx.config.collectors['nvidia-smi'].mode;
    if (mode === 'off')
      return {
        status: 'skip',
        required: false,
        finding: 'the nvidia-smi collector is off (collectors.nvidia-smi.mode: off)',
      };
    const tegra = tegrastatsPresent(ctx.config, ctx.env);
    const required = !tegra;
    const probe = await ctx.nvidiaSmi();
    if (probe.ok && probe.lost?.length) {
      const lost = probe.lost
        .map((l) => `GPU ${l.index}${l.bus ? ` at ${l.bus}` : ''} (${l.error})`)
        .join(', ');
      return {
        status: 'fail',
        required,
        finding: `${probe.binary} answers for ${probe.gpus.length} GPU${probe.gpus.length === 1 ? '' : 's'}; lost: ${lost}`,
        problem: `${lost}: attached but no longer answering (fallen off the bus); its jobs have failed`,
        fix: fixFor('gpu_lost', probe.binary, inContainer(ctx.env, existsSync)),
        details: { binary: probe.binary, gpus: probe.gpus.length, lost: probe.lost.length },
      };
    }
    if (probe.ok) {
      const names = [...new Set(probe.gpus.map((g) => g.name ?? 'unnamed GPU'))].join(', ');
      return {
        status: probe.gpus.length > 0 ? 'ok' : 'fail',
        required,
        finding:
          probe.gpus.length > 0
            ? `${probe.binary} answers: ${probe.gpus.length} GPU${probe.gpus.length === 1 ? '' : 's'} (${names})`
            : `${probe.binary} answers but lists no GPU`,
        ...(probe.gpus.length === 0
          ? {
              problem: 'no GPU is listed, so no GPU metrics',
              fix: fixFor('no_devices', probe.binary, inContainer(ctx.env, existsSync)),
            }
          : {}),
        details: { binary: probe.binary, gpus: probe.gpus.length },
      };
    }
    const container = inContainer(ctx.env, existsSync);
    const problem =
      probe.reason === 'not_found'
        ? `\`${probe.binary}\` is not installed or not on PATH: no GPU metrics from nvidia-smi`
        : probe.message;
    return {
      status: tegra ? 'warn' : 'fail',
      required,
      finding: tegra
        ? `${probe.binary} unusable (${probe.reason}); tegrastats provides the GPU metrics on this Jetson`
        : `${probe.binary} unusable: ${probe.reason.replace(/_/g, ' ')}`,
      problem,
      fix: fixFor(probe.reason, probe.binary, container),
      details: { binary: probe.binary, reason: probe.reason, mode },
    };
  },
};
