import { createRequire } from 'node:module';
import type Dockerode from 'dockerode';
import type PinoPretty from 'pino-pretty';
import type { collectDefaultMetrics, Registry } from 'prom-client';

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

/**
 * prom-client's registry and default (process) metrics, without the package index: it also loads
 * every metric type, the Pushgateway client and the cluster aggregator, about 0.7 MB of heap the
 * agent never uses (it renders its own series and needs prom-client only for process metrics).
 */
export function loadProcessMetrics(): {
  Registry: typeof Registry;
  collectDefaultMetrics: typeof collectDefaultMetrics;
} {
  return {
    Registry: require('prom-client/lib/registry') as typeof Registry,
    collectDefaultMetrics:
      require('prom-client/lib/defaultMetrics') as typeof collectDefaultMetrics,
  };
}
