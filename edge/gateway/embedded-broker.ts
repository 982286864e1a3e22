import { createServer, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from 'pino';

/** A running in-process broker. */
export interface EmbeddedBroker {
  /** URL clients connect to, e.g. mqtt://127.0.0.1:1883. */
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * Starts an in-process MQTT 3.1.1 broker (aedes) so a newcomer can try agent → broker → gateway
 * without installing one. No authentication and no MQTT 5 (no shared subscriptions): for trials
 * on one machine, not for fleets — use Mosquitto, EMQX or HiveMQ there (deploy/mosquitto).
 */
export async function startEmbeddedBroker(
  listen: { readonly host: string; readonly port: number },
  log: Logger,
): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'EADDRINUSE'
        ? 'the port is taken (another broker, or another gateway?)'
        : (err as Error).message;
    throw new Error(
      `cannot start the embedded broker on ${listen.host}:${listen.port}: ${why}; pick another address with --embedded-broker HOST:PORT (or GPULSE_GATEWAY_EMBEDDED_BROKER), or use a broker you run with --mqtt-url`,
      { cause: err },
    );
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : listen.port;
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  const url = `mqtt://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  if (listen.host !== '127.0.0.1' && listen.host !== '::1' && listen.host !== 'localhost') {
    log.warn(
      { listen: `${host}:${port}` },
      'the embedded broker accepts anyone who can reach it (no authentication, no TLS): use it for trials only',
    );
  }
  log.info({ url }, 'embedded MQTT broker (aedes, MQTT 3.1.1) listening');
  return {
    url,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}
