import { constants } from 'node:fs';
import { access, statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { defaultStateDir } from '../../../edge/mqtt/component.js';
import { scaleBytes } from '../../progress-line.js';
import type { Check, CheckOutcome } from '../types.js';

/** Below this, writes fail soon: a spool segment or one model chunk no longer fits. */
export const DISK_FAIL_BYTES = 64 * 1024 ** 2;
/** Below this (or 5 % of the filesystem), say so before it runs out. */
export const DISK_WARN_BYTES = 1024 ** 3;

/** A directory the agent writes to. */
interface Target {
  readonly what: string;
  readonly dir: string;
  /** What it may grow to (the spool's cap), when known. */
  readonly needs?: number;
}

function targets(ctx: Parameters<Check['run']>[0]): Target[] {
  const out: Target[] = [];
  const m = ctx.config.mqtt;
  if (m.url)
    out.push({
      what: 'MQTT spool',
      dir: m.spool.dir ?? defaultStateDir(ctx.env),
      needs: m.spool.maxBytes,
    });
  for (const model of ctx.config.models) out.push({ what: `model ${model.name}`, dir: model.dir });
  return out;
}

/** The directory itself or its nearest existing parent (a store not created yet lands there). */
async function existing(dir: string): Promise<string> {
  let d = resolve(dir);
  for (;;) {
    const ok = await access(d).then(
      () => true,
      () => false,
    );
    if (ok || dirname(d) === d) return d;
    d = dirname(d);
  }
}

function fmt(bytes: number): string {
  const { value, unit } = scaleBytes(bytes);
  return `${value >= 100 || unit === 'B' ? value.toFixed(0) : value.toFixed(1)} ${unit}`;
}

/** Free space and write access for the spool and the model stores. */
export const diskCheck: Check = {
  id: 'disk',
  title: 'free disk',
  async run(ctx): Promise<CheckOutcome> {
    const list = targets(ctx);
    if (list.length === 0)
      return {
        status: 'skip',
        required: false,
        finding: 'nothing to store: no MQTT spool and no models configured',
      };
    const lines: string[] = [];
    const problems: string[] = [];
    const fixes: string[] = [];
    let worst: 'ok' | 'warn' | 'fail' = 'ok';
    const perDir: string[] = [];
    for (const t of list) {
      const at = await existing(t.dir);
      let free: number;
      let total: number;
      try {
        const s = await statfs(at);
        free = s.bavail * s.bsize;
        total = s.blocks * s.bsize;
      } catch (err) {
        worst = 'fail';
        problems.push(`${t.what}: cannot stat ${at}: ${(err as Error).message}`);
        fixes.push(`create ${t.dir} on a mounted filesystem`);
        continue;
      }
      const writable = await access(at, constants.W_OK).then(
        () => true,
        () => false,
      );
      perDir.push(`${t.dir}=${free}`);
      lines.push(`${t.what} ${t.dir}: ${fmt(free)} free of ${fmt(total)}`);
      if (!writable) {
        worst = 'fail';
        problems.push(`${t.what}: ${at} is not writable by this user`);
        fixes.push(
          `\`sudo install -d -o $(id -u) -g $(id -g) ${t.dir}\` (systemd: StateDirectory=gpulse)`,
        );
      }
      if (free < DISK_FAIL_BYTES) {
        worst = 'fail';
        problems.push(`${t.what}: only ${fmt(free)} free under ${at}`);
        fixes.push(
          `free space on the filesystem of ${at} (\`du -xh ${at} | sort -h | tail\`) or move ${t.dir} to a larger disk`,
        );
      } else if (t.needs !== undefined && free < t.needs) {
        if (worst === 'ok') worst = 'warn';
        problems.push(
          `${t.what}: ${fmt(free)} free under ${at}, less than its cap of ${fmt(t.needs)}: a long outage fills the disk`,
        );
        fixes.push(
          `lower mqtt.spool.maxBytes (GPULSE_MQTT_SPOOL_MAX_BYTES) below ${fmt(free)}, or free space under ${at}`,
        );
      } else if (free < DISK_WARN_BYTES || free < total * 0.05) {
        if (worst === 'ok') worst = 'warn';
        problems.push(
          `${t.what}: ${fmt(free)} free under ${at} (under ${free < DISK_WARN_BYTES ? fmt(DISK_WARN_BYTES) : '5 %'})`,
        );
        fixes.push(`free space on the filesystem of ${at} before it fills`);
      }
    }
    return {
      status: worst,
      required: true,
      finding: lines.join('; ') || problems.join('; '),
      ...(problems.length > 0
        ? { problem: problems.join('; '), fix: [...new Set(fixes)].join('; ') }
        : {}),
      details: { targets: list.map((t) => `${t.what}: ${t.dir}`), free: perDir },
    };
  },
};
