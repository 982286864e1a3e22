import { createRequire } from 'node:module';
import type Dockerode from 'dockerode';
import type PinoPretty from 'pino-pretty';

const require = createRequire(import.meta.url);

/**
 * dockerode, loaded on first use: it costs ~27 MB of RSS (ssh2, docker-modem), which a host
 * without Docker, or a command that never talks to it, should not pay.
 */
export function loadDockerode(): typeof Dockerode {
  return require('dockerode') as typeof Dockerode;
}

/** pino-pretty, loaded only when logs go to a terminal. */
export function loadPinoPretty(): typeof PinoPretty {
  return require('pino-pretty') as typeof PinoPretty;
}
