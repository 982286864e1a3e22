import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

/** A pino logger writing parsed JSON records into an array, for assertions on logs. */
export function captureLogger(level = 'debug'): {
  log: Logger;
  records: Record<string, unknown>[];
} {
  const records: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim()) records.push(JSON.parse(line) as Record<string, unknown>);
      }
      cb();
    },
  });
  return { log: pino({ level }, stream), records };
}

/** A logger that drops everything. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
