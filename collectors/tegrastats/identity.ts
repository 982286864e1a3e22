import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand, type SpawnFn } from '../../agent/process/process.js';
import { isIntegratedGpuName, parseGpuList } from '../nvidia-smi/integrated.js';

/** Who the Jetson's GPU is: the labels every series of it carries. */
export interface JetsonIdentity {
  /** `uuid` label: nvidia-smi's UUID of the integrated GPU when there is one. */
  readonly uuid: string;
  /** `name` of `gpulse_gpu_info`: the module as the device tree names it. */
  readonly model: string;
  /** L4T release from /etc/nv_tegra_release ("32.7.1"), when readable. */
  readonly l4tRelease?: string;
  /** Where the UUID came from (logged once at start). */
  readonly uuidSource: 'config' | 'nvidia-smi' | 'serial-number' | 'fallback';
}

/** What identity resolution reads, injected for tests. */
export interface IdentitySources {
  /** Root under which /proc/device-tree and /etc/nv_tegra_release are read ("/" on the host). */
  readonly root: string;
  readonly model?: string;
  readonly uuid?: string;
  /** nvidia-smi binary to ask with `-L`; undefined when the nvidia-smi collector is off. */
  readonly nvidiaSmi?: string;
  readonly timeoutMs: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly spawnFn?: SpawnFn;
}

/** Model name used when neither the config nor the device tree names the module. */
export const FALLBACK_MODEL = 'NVIDIA Jetson';

/** A device-tree string property: NUL-terminated, sometimes padded; undefined when unreadable. */
export async function readDeviceTreeString(
  root: string,
  property: string,
): Promise<string | undefined> {
  try {
    const raw = await readFile(join(root, 'proc', 'device-tree', property), 'latin1');
    const text = raw.replace(/\0[\s\S]*$/, '').trim();
    return text === '' ? undefined : text;
  } catch {
    return undefined;
  }
}

/** "# R32 (release), REVISION: 7.1, ..." → "32.7.1". */
export function parseTegraRelease(text: string): string | undefined {
  const m = /^#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)/m.exec(text);
  return m ? `${m[1]}.${m[2]}` : undefined;
}

async function readTegraRelease(root: string): Promise<string | undefined> {
  try {
    return parseTegraRelease(await readFile(join(root, 'etc', 'nv_tegra_release'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** UUID of the integrated GPU from `nvidia-smi -L` (JetPack 6+); undefined when there is none. */
export async function integratedGpuUuid(
  sources: Pick<IdentitySources, 'nvidiaSmi' | 'timeoutMs' | 'env' | 'spawnFn'>,
): Promise<string | undefined> {
  if (sources.nvidiaSmi === undefined) return undefined;
  try {
    const result = await runCommand(sources.nvidiaSmi, ['-L'], {
      timeoutMs: sources.timeoutMs,
      env: sources.env,
      spawnFn: sources.spawnFn,
      maxBytes: 64 * 1024,
    });
    if (result.code !== 0) return undefined;
    return parseGpuList(result.stdout).find((g) => isIntegratedGpuName(g.name))?.uuid;
  } catch {
    // JetPack 4/5 have no nvidia-smi: the serial number identifies the board instead.
    return undefined;
  }
}

/**
 * Resolves the GPU's identity once at start. The UUID is the one nvidia-smi would report, so the
 * GPU keeps one identity whichever tool is installed: config, then `nvidia-smi -L`, then the
 * board's serial number, then a constant (one Jetson GPU per host).
 */
export async function resolveIdentity(sources: IdentitySources): Promise<JetsonIdentity> {
  const [treeModel, serial, l4tRelease, smiUuid] = await Promise.all([
    sources.model === undefined
      ? readDeviceTreeString(sources.root, 'model')
      : Promise.resolve(undefined),
    readDeviceTreeString(sources.root, 'serial-number'),
    readTegraRelease(sources.root),
    sources.uuid === undefined ? integratedGpuUuid(sources) : Promise.resolve(undefined),
  ]);
  const model = sources.model ?? treeModel ?? FALLBACK_MODEL;
  const base = l4tRelease === undefined ? { model } : { model, l4tRelease };
  if (sources.uuid !== undefined) return { ...base, uuid: sources.uuid, uuidSource: 'config' };
  if (smiUuid !== undefined) return { ...base, uuid: smiUuid, uuidSource: 'nvidia-smi' };
  if (serial !== undefined && /^[\w.-]+$/.test(serial)) {
    return { ...base, uuid: `jetson-${serial}`, uuidSource: 'serial-number' };
  }
  return { ...base, uuid: 'jetson-0', uuidSource: 'fallback' };
}
