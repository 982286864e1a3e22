import type { Command } from 'commander';
import {
  loadConfig,
  readConfigFile,
  type ConfigSources,
  type LoadedConfig,
} from '../../agent/config.js';
import { ConfigError, errorMessage } from '../../agent/core/errors.js';
import { settings } from '../../agent/settings.generated.js';
import { createLogger } from '../../agent/core/logger.js';
import { packageVersion } from '../../agent/package-info.js';
import { gatewayFlags } from './config.js';

/** What the command needs from the process; main.ts passes `process` (it alone owns signals and exit). */
export interface GatewayProcess {
  readonly env: NodeJS.ProcessEnv;
  readonly stderr: { write(text: string): unknown };
  on(signal: 'SIGTERM' | 'SIGINT', listener: () => void): unknown;
  exit(code: number): never;
}

/** Agent settings that also apply to the gateway (its HTTP side and its broker connection). */
const SHARED_FLAGS = new Set([
  'listen',
  'web.config.file',
  'log-level',
  'log-format',
  'mqtt-url',
  'mqtt-protocol',
  'mqtt-username',
  'mqtt-password-file',
  'mqtt-ca',
  'mqtt-cert',
  'mqtt-key',
]);

/** Help texts that read differently for the gateway, which subscribes rather than publishes. */
const GATEWAY_DESCRIPTIONS: Readonly<Record<string, string>> = {
  'mqtt-url':
    'MQTT broker of the fleet (mqtt:// or mqtts://); required unless --embedded-broker starts one here',
  listen: 'address of the fleet /metrics (default 0.0.0.0:9489)',
};

const SHUTDOWN_LIMIT_MS = 5000;

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** Loads the configuration with the gateway's settings reachable from env and flags. */
export function loadGatewayConfig(sources: Omit<ConfigSources, 'extraSettings'>): LoadedConfig {
  return loadConfig({
    ...sources,
    extraSettings: gatewayFlags,
  });
}

/** Adds `gpulse gateway`: MQTT fleet → one Prometheus /metrics. */
export function registerGatewayCommand(program: Command, proc: GatewayProcess): void {
  const bindings = [
    ...settings.filter((s) => s.flag && SHARED_FLAGS.has(s.flag)),
    // --embedded-broker takes an optional value: added by hand below.
    ...gatewayFlags.filter((s) => s.flag !== 'embedded-broker'),
  ];
  const cmd = program
    .command('gateway')
    .description(
      'subscribe to an MQTT fleet of gpulse agents and serve their series (labelled site, node) on one /metrics',
    )
    .option('-c, --config <FILE>', 'YAML configuration file (also GPULSE_CONFIG)')
    .option(
      '--embedded-broker [HOST:PORT]',
      'start an in-process MQTT 3.1.1 broker (aedes) for trials (default 127.0.0.1:1883)',
    );
  for (const s of bindings) {
    if (!s.flag) continue;
    const description = GATEWAY_DESCRIPTIONS[s.flag] ?? s.description;
    cmd.option(
      `--${s.flag} <${s.valueName ?? 'VALUE'}>`,
      `${description}${s.env ? ` [${s.env}]` : ''}`,
    );
  }
  cmd.action(async (opts: Record<string, unknown>) => {
    const flags: Record<string, string | undefined> = {};
    for (const s of bindings) {
      const v = s.flag ? opts[camel(s.flag)] : undefined;
      if (s.flag && typeof v === 'string') flags[s.flag] = v;
    }
    const embedded = opts.embeddedBroker;
    if (embedded !== undefined) {
      flags['embedded-broker'] = typeof embedded === 'string' ? embedded : '127.0.0.1:1883';
    }
    let config;
    let warnings: readonly string[] = [];
    try {
      const path = typeof opts.config === 'string' ? opts.config : proc.env.GPULSE_CONFIG;
      const file = path ? readConfigFile(path) : undefined;
      ({ config, warnings } = loadGatewayConfig({ file, env: proc.env, flags }));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      proc.stderr.write(`gpulse: ${err.message}\n`);
      proc.exit(2);
    }
    if (!config.mqtt.url && config.gateway.embeddedBroker === 'off') {
      proc.stderr.write(
        'gpulse: no broker: pass --mqtt-url mqtt[s]://HOST:PORT (or GPULSE_MQTT_URL), or --embedded-broker [HOST:PORT] to start one in this process for a trial\n',
      );
      proc.exit(2);
    }
    const log = createLogger(config.log);
    for (const w of warnings) log.warn(w);
    const version = packageVersion();
    // Loaded only for this command: `gpulse run` never pays for fastify routes or aedes here.
    const { createGateway } = await import('./gateway.js');
    const gateway = createGateway(config, { log, version });
    try {
      await gateway.start();
    } catch (err) {
      log.error({ err: errorMessage(err) }, `gpulse gateway failed to start: ${errorMessage(err)}`);
      await gateway.stop().catch(() => undefined);
      proc.exit(1);
    }
    const signal = await new Promise<string>((resolve) => {
      proc.on('SIGTERM', () => resolve('SIGTERM'));
      proc.on('SIGINT', () => resolve('SIGINT'));
    });
    log.info({ signal }, 'shutting down');
    const guard = setTimeout(() => proc.exit(0), SHUTDOWN_LIMIT_MS);
    guard.unref();
    await gateway.stop().catch(() => undefined);
    log.info('stopped');
    log.flush?.();
    proc.exit(0);
  });
}
