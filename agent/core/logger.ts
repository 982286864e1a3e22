import { pino, type Logger, type DestinationStream } from 'pino';
import { loadPinoPretty } from '../process/lazy-require.js';

/** Log settings the root logger needs. */
export interface LogSettings {
  readonly level: string;
  readonly format: 'auto' | 'json' | 'pretty';
}

/** Creates the root logger: JSON, or human-readable when `format` says so or stdout is a TTY. */
export function createLogger(settings: LogSettings, destination?: DestinationStream): Logger {
  const usePretty =
    settings.format === 'pretty' || (settings.format === 'auto' && process.stdout.isTTY === true);
  const options = {
    level: settings.level,
    base: { pid: process.pid },
    // Credentials must never reach the log, whatever component logs a config or URL.
    redact: {
      paths: ['password', '*.password', 'config.mqtt.password', 'headers.authorization', 'token'],
      censor: '[redacted]',
    },
  };
  if (destination) return pino(options, destination);
  if (usePretty) {
    return pino(
      options,
      loadPinoPretty()({ colorize: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname' }),
    );
  }
  return pino(options);
}
