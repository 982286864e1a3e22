import { readFile } from 'node:fs/promises';
import { runCommand } from '../../process/process.js';
import { which } from '../settings.js';
import type { Check, CheckOutcome } from '../types.js';

const TOOLS = ['nvidia-ctk', 'nvidia-container-cli', 'nvidia-container-runtime'] as const;
const INSTALL_URL =
  'https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html';
/** Where dockerd reads its runtimes when the daemon cannot be asked. */
const DAEMON_JSON = '/etc/docker/daemon.json';
const CONFIGURE =
  '`sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`';

/** Runtimes named in a daemon.json, or undefined when the file is absent or unreadable. */
async function daemonJsonRuntimes(path: string): Promise<string[] | undefined> {
  try {
    const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
    const runtimes =
      typeof parsed === 'object' && parsed !== null
        ? (parsed as Record<string, unknown>).runtimes
        : undefined;
    return typeof runtimes === 'object' && runtimes !== null ? Object.keys(runtimes) : [];
  } catch {
    return undefined;
  }
}

/** NVIDIA Container Toolkit installed and configured as a Docker runtime. */
export const containerToolkitCheck: Check = {
  id: 'container-toolkit',
  title: 'NVIDIA Container Toolkit',
  async run(ctx): Promise<CheckOutcome> {
    const found = TOOLS.map((t) => [t, which(t, ctx.env)] as const).filter(
      (e): e is readonly [(typeof TOOLS)[number], string] => e[1] !== undefined,
    );
    let version: string | undefined;
    const ctk = found.find(([t]) => t === 'nvidia-ctk')?.[1];
    if (ctk) {
      const r = await runCommand(ctk, ['--version'], {
        timeoutMs: ctx.timeoutMs,
        env: ctx.env,
      }).catch(() => undefined);
      version = /version\s+v?(\d+\.\d+\.\d+)/i.exec(r?.stdout ?? '')?.[1];
    }
    const [docker, gpu] = await Promise.all([ctx.docker(), ctx.nvidiaSmi()]);
    const daemonJson = DAEMON_JSON;
    let runtimes: readonly string[] | undefined;
    let runtimesFrom: string;
    if (docker.ok) {
      runtimes = docker.runtimes;
      runtimesFrom = 'the Docker daemon (GET /info)';
    } else {
      runtimes = await daemonJsonRuntimes(daemonJson);
      runtimesFrom = daemonJson;
    }
    const configured = runtimes?.includes('nvidia') === true;
    const details = {
      tools: found.map(([t]) => t),
      ...(version ? { version } : {}),
      runtimes: runtimes ?? [],
      runtimesFrom,
      configured,
    };
    const toolList = found.map(([t]) => t).join(', ');
    if (found.length === 0 && !configured) {
      if (!gpu.ok)
        return {
          status: 'skip',
          required: false,
          finding: 'not installed, and no NVIDIA GPU answers here: GPU containers are not expected',
          details,
        };
      return {
        status: 'warn',
        required: false,
        finding: 'not installed (no nvidia-ctk or nvidia-container-cli on PATH)',
        problem:
          'containers cannot be given GPUs (`docker run --gpus` fails with "could not select device driver")',
        fix: `install nvidia-container-toolkit (${INSTALL_URL}), then ${CONFIGURE}`,
        details,
      };
    }
    if (found.length === 0)
      return {
        status: 'warn',
        required: false,
        finding: `runtime "nvidia" configured in ${runtimesFrom}, but its tools are not on PATH`,
        problem: 'containers with the nvidia runtime fail to start when the toolkit was removed',
        fix: `install nvidia-container-toolkit (${INSTALL_URL}), or remove the "nvidia" runtime from ${daemonJson}`,
        details,
      };
    if (!configured)
      return {
        status: 'warn',
        required: false,
        finding: `${toolList}${version ? ` ${version}` : ''} found, but Docker has no "nvidia" runtime (${runtimesFrom}${runtimes ? `: ${runtimes.join(', ') || 'none'}` : ' unreadable'})`,
        problem:
          '`--gpus` works through the hook, but `--runtime nvidia` and compose `runtime: nvidia` fail',
        fix: CONFIGURE,
        details,
      };
    return {
      status: 'ok',
      required: false,
      finding: `${toolList}${version ? ` ${version}` : ''}; Docker runtime "nvidia" configured (${runtimesFrom})`,
      details,
    };
  },
};
