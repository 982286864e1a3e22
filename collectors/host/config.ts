import { z } from 'zod';
import { zInterval, zTimeout, setting, zDir } from '../../agent/config-schema.js';

/** Settings of the host collector (config key `collectors.host`). */
export const hostConfigSchema = z
  .object({
    mode: setting(z.enum(['auto', 'off']).default('auto'), {
      env: 'GPULSE_HOST_MODE',
      description: 'host CPU, memory, disk and network collector',
    }),
    interval: setting(zInterval(1000).default(15_000), {
      env: 'GPULSE_HOST_INTERVAL',
      description: 'host collector interval (default 15s)',
    }),
    timeout: setting(zTimeout().default(10_000), {
      env: 'GPULSE_HOST_TIMEOUT',
      description: 'limit for one host collection (default 10s)',
    }),
    /** The host's /proc for this collector only; unset, the agent-wide `procRoot` applies. */
    procRoot: setting(zDir().optional(), {
      env: 'GPULSE_HOST_PROC_ROOT',
      description: "the host's /proc for host series only (default: the agent-wide procRoot)",
    }),
    /** The host's /sys, for temperature sensors. */
    sysRoot: setting(zDir().default('/sys'), {
      env: 'GPULSE_HOST_SYS_ROOT',
      description: "the host's /sys, for temperatures (default /sys)",
    }),
    /** Where the host's root filesystem is mounted, for filesystem sizes (node_exporter's --path.rootfs). */
    rootfs: setting(zDir().default('/'), {
      env: 'GPULSE_HOST_ROOTFS',
      description: "where the host's / is mounted, for filesystem sizes (default /)",
    }),
  })
  .strict();

/** Parsed host collector settings. */
export type HostConfig = z.infer<typeof hostConfigSchema>;
