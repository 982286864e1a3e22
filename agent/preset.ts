import { statfsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import type { CollectorDescriptor } from '../collectors/descriptor.js';
import { collectorRegistry } from '../collectors/index.js';

/**
 * Configuration presets: defaults for a kind of host, applied under whatever the file, the
 * environment and the flags set (those always win).
 */
export const zPreset = z.enum(['default', 'edge']);

/** A preset name. */
export type Preset = z.infer<typeof zPreset>;

type Raw = Record<string, unknown>;

/** What applying a preset may look at, injected for tests. */
export interface PresetContext {
  /** Whether the configuration has a top-level section (the MQTT `mqtt` one may not exist). */
  readonly hasSection: (name: string) => boolean;
  /** Free bytes for unprivileged users on the filesystem holding `path`; undefined if unknown. */
  readonly freeBytes?: (path: string) => number | undefined;
  readonly env?: NodeJS.ProcessEnv;
}

/** Spool bounds of the edge preset: a share of the free disk, within these limits. */
export const EDGE_SPOOL = { share: 0.05, minBytes: 8 * 1024 ** 2, maxBytes: 256 * 1024 ** 2 };

/** The edge preset's defaults the collectors' descriptors declare, as full configuration paths. */
export function collectorEdgeDefaults(
  registry: readonly Pick<CollectorDescriptor<string, z.ZodType>, 'name' | 'edgeDefaults'>[],
): (readonly [readonly string[], unknown])[] {
  return registry.flatMap((d) =>
    (d.edgeDefaults ?? []).map(
      ([path, value]) => [['collectors', d.name, ...path], value] as const,
    ),
  );
}

/** Settings of the edge preset, each applied only where nothing else set it. */
export const EDGE_DEFAULTS: readonly (readonly [readonly string[], unknown])[] =
  collectorEdgeDefaults(collectorRegistry);

/** MQTT settings of the edge preset, where the build has the MQTT publisher. */
export const EDGE_MQTT_DEFAULTS: readonly (readonly [readonly string[], unknown])[] = [
  [['mqtt', 'telemetry', 'interval'], '30s'],
];

function isRecord(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function getPath(raw: Raw, path: readonly string[]): unknown {
  let node: unknown = raw;
  for (const key of path) {
    if (!isRecord(node)) return undefined;
    node = node[key];
  }
  return node;
}

function setDefault(raw: Raw, path: readonly string[], value: unknown): void {
  if (getPath(raw, path) !== undefined) return;
  let node = raw;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    // A non-mapping here is the user's mistake; leave it for the schema to report.
    if (next !== undefined && !isRecord(next)) return;
    if (next === undefined) node[key] = {};
    node = node[key] as Raw;
  }
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}

/** Free bytes of the filesystem of `path`, or of its nearest existing parent. */
export function freeBytesAt(path: string): number | undefined {
  let dir = resolve(path);
  for (;;) {
    try {
      const st = statfsSync(dir);
      return st.bavail * st.bsize;
    } catch {
      const parent = dirname(dir);
      if (parent === dir) return undefined;
      dir = parent;
    }
  }
}

/** The spool bound the edge preset gives: 5 % of the free space, 8 MiB to 256 MiB. */
export function edgeSpoolBytes(freeBytes: number | undefined): number {
  if (freeBytes === undefined) return EDGE_SPOOL.minBytes;
  const share = Math.floor(freeBytes * EDGE_SPOOL.share);
  return Math.min(EDGE_SPOOL.maxBytes, Math.max(EDGE_SPOOL.minBytes, share));
}

/**
 * Fills the edge preset's defaults into a raw (not yet validated) configuration. The MQTT
 * spool is sized from the free disk where it lives, so a small eMMC is not filled by an outage.
 * Returns what it decided, for the startup log.
 */
export function applyEdgePreset(raw: Raw, ctx: PresetContext): string[] {
  const notes: string[] = [];
  for (const [path, value] of EDGE_DEFAULTS) setDefault(raw, path, value);
  if (!ctx.hasSection('mqtt')) return notes;
  for (const [path, value] of EDGE_MQTT_DEFAULTS) setDefault(raw, path, value);
  if (getPath(raw, ['mqtt', 'spool', 'maxBytes']) === undefined) {
    const configured = getPath(raw, ['mqtt', 'spool', 'dir']);
    const state = ctx.env?.STATE_DIRECTORY?.split(':')[0];
    const dir =
      typeof configured === 'string'
        ? configured
        : state
          ? join(state, 'mqtt')
          : '/var/lib/gpulse/mqtt';
    const free = (ctx.freeBytes ?? freeBytesAt)(dir);
    const bytes = edgeSpoolBytes(free);
    setDefault(raw, ['mqtt', 'spool', 'maxBytes'], bytes);
    notes.push(
      `preset edge: MQTT spool bound ${Math.round(bytes / 1024 ** 2)} MiB ` +
        `(${free === undefined ? 'free space unknown' : `5% of ${Math.round(free / 1024 ** 2)} MiB free`} at ${dir})`,
    );
  }
  return notes;
}
