import { createRequire } from 'node:module';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { IClientOptions, MqttClient } from 'mqtt';

type ClientClass = new (
  streamBuilder: (client: MqttClient) => Socket | TLSSocket,
  options: IClientOptions,
) => MqttClient;

const TLS_SCHEMES = new Set(['mqtts:', 'ssl:', 'tls:']);

let clientClass: ClientClass | undefined;

/** MQTT.js's client class alone, without the transports index that mqtt.connect loads. */
function mqttClientClass(): ClientClass {
  clientClass ??= (createRequire(import.meta.url)('mqtt/lib/client') as { default: ClientClass })
    .default;
  return clientClass;
}

/**
 * Opens an MQTT.js client over plain TCP (mqtt://, tcp://) or TLS (mqtts://, ssl://, tls://).
 * mqtt.connect() does the same, but its first connection loads every transport MQTT.js has
 * (WebSocket, SOCKS proxy, WeChat, Alipay): 1.4 MB of heap that an edge device with a 64 MB
 * budget never uses. The TLS checks are those of MQTT.js's own TLS transport.
 */
export function connectMqtt(url: string, options: IClientOptions): MqttClient {
  const target = new URL(url);
  const secure = TLS_SCHEMES.has(target.protocol);
  // new URL keeps an IPv6 literal in brackets; sockets want it bare.
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
  const port = target.port ? Number(target.port) : secure ? 8883 : 1883;
  const Client = mqttClientClass();
  const build = (client: MqttClient): Socket | TLSSocket => {
    if (!secure) return netConnect({ host, port });
    const rejectUnauthorized = options.rejectUnauthorized !== false;
    const socket = tlsConnect({
      host,
      port,
      ca: options.ca,
      cert: options.cert,
      key: options.key,
      rejectUnauthorized,
      // SNI carries names only, never addresses.
      servername: isIP(host) === 0 ? host : undefined,
    });
    const onTlsError = (err: Error): void => {
      if (rejectUnauthorized) client.emit('error', err);
      socket.end();
    };
    socket.on('error', onTlsError);
    socket.on('secureConnect', () => {
      if (rejectUnauthorized && !socket.authorized) {
        socket.emit('error', new Error('TLS not authorized'));
      } else {
        socket.removeListener('error', onTlsError);
      }
    });
    return socket;
  };
  const client = new Client(build, {
    ...options,
    protocol: secure ? 'mqtts' : 'mqtt',
    hostname: host,
    host,
    port,
  });
  // As mqtt.connect does: an error nobody listens for yet must not throw out of the event loop.
  client.on('error', () => undefined);
  return client;
}
