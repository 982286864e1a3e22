import { z } from 'zod';
import { zInterval, zTimeout } from '../../agent/config-schema.js';

/** Settings of the host collector (config key `collectors.host`). */
export const hostConfigSchema = z
  .object({
    mode: z.enum(['auto', 'off']).default('auto'),
    interval: zInterval(1000).default(15_000),
    timeout: zTimeout().default(10_000),
    /** The host's /proc for this collector only; unset, the agent-wide `procRoot` applies. */
    procRoot: z.string().min(1).optional(),
    /** The host's /sys, for temperature sensors. */
    sysRoot: z.string().min(1).default('/sys'),
    /** Where the host's root filesystem is mounted, for filesystem sizes (node_exporter's --path.rootfs). */
    rootfs: z.string().min(1).default('/'),
  })
  .strict();

/** Parsed host collector settings. */
export type HostConfig = z.infer<typeof hostConfigSchema>;
