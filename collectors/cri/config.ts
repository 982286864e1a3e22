import { z } from 'zod';
import {
  setting,
  zCollectorMode,
  zDuration,
  zInterval,
  zPath,
  zTimeout,
} from '../../agent/config-schema.js';
import { DEFAULT_CRI_SOCKETS } from './sockets.js';

/** Settings of the cri collector (config key `collectors.cri`). */
export const criConfigSchema = z
  .object({
    /** auto: run, report no_data without a CRI socket; required: a missing socket is an error; off. */
    mode: setting(zCollectorMode.default('auto'), {
      env: 'GPULSE_CRI_MODE',
      flag: 'cri-mode',
      description: 'name GPU containers through the CRI runtime (auto: no socket is not an error)',
    }),
    /**
     * The CRI runtime's socket, or several to look for in order (the first that exists is used:
     * one DaemonSet serves containerd and CRI-O nodes). Unset: containerd's, then CRI-O's.
     */
    socket: setting(
      z
        .union([zPath(), z.array(zPath()).min(1)])
        .transform((v) => (typeof v === 'string' ? [v] : v))
        .optional(),
      {
        env: 'GPULSE_CRI_SOCKET',
        flag: 'cri-socket',
        list: true,
        valueName: 'PATH,...',
        description: `CRI runtime socket, or several to try in order (default: the first of ${DEFAULT_CRI_SOCKETS.join(', ')})`,
      },
    ),
    /**
     * How often the GPU containers no collector names are checked against what the runtime
     * listed. A check makes no runtime call unless an id is new (or due for a retry).
     */
    interval: setting(zInterval(500).default(2000), {
      env: 'GPULSE_CRI_INTERVAL',
      description:
        'how often unnamed GPU containers are looked up (default 2s; no call unless new)',
    }),
    /** Limit of one call to the runtime. */
    timeout: setting(zTimeout().default(5000), {
      env: 'GPULSE_CRI_TIMEOUT',
      description: 'limit of one CRI call (default 5s)',
    }),
    /** A container id the runtime did not list is asked about again after this, then twice as long. */
    retryAfter: setting(zDuration({ min: 100 }).default(5000), {
      env: 'GPULSE_CRI_RETRY_AFTER',
      description: 'first retry of a container id the runtime did not list (default 5s, doubling)',
    }),
    /** The longest wait between two retries of an id the runtime does not know. */
    maxRetryAfter: setting(zDuration({ min: 100 }).default(600_000), {
      env: 'GPULSE_CRI_MAX_RETRY_AFTER',
      description: 'longest wait between retries of an unknown container id (default 10m)',
    }),
  })
  .strict();

/** Parsed cri collector settings. */
export type CriConfig = z.infer<typeof criConfigSchema>;
