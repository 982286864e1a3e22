import { readFileSync } from 'node:fs';
import { errorMessage } from '../../agent/core/errors.js';
import type { MqttConfig } from '../config.js';
import type { TlsMaterial } from './publisher.js';

function readSecretFile(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read ${what} (${path}): ${errorMessage(err)}`, { cause: err });
  }
}

/** Reads the TLS files and the password (or password file) of the MQTT settings. */
export function loadMqttSecrets(config: MqttConfig): { tls: TlsMaterial; password?: string } {
  const tls: TlsMaterial = {
    ca: config.tls.ca ? readSecretFile('mqtt.tls.ca', config.tls.ca) : undefined,
    cert: config.tls.cert ? readSecretFile('mqtt.tls.cert', config.tls.cert) : undefined,
    key: config.tls.key ? readSecretFile('mqtt.tls.key', config.tls.key) : undefined,
  };
  const password = config.passwordFile
    ? readSecretFile('mqtt.passwordFile', config.passwordFile)
        .toString('utf8')
        .replace(/\r?\n$/, '')
    : config.password;
  return { tls, password };
}
