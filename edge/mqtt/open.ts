import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../../agent/core/clock.js';
import { errorMessage } from '../../agent/core/errors.js';
import type { MqttConfig } from '../config.js';
import { InstanceLock } from './instance-lock.js';
import { Outbox, type PublishResult } from './outbox.js';
import type { ConnectionOptions, MqttConnection, WillMessage } from './publisher.js';
import { redactUrl } from './redact-url.js';
import { loadMqttSecrets } from './secrets.js';
import { SequenceStore } from './sequence.js';
import { Spool, type DropReason, type SpoolStream } from './spool/spool.js';

/** Default state directory: systemd's $STATE_DIRECTORY when set, else /var/lib/gpulse. */
export function defaultStateDir(env: NodeJS.ProcessEnv): string {
  const systemd = env.STATE_DIRECTORY?.split(':')[0];
  return join(systemd && systemd.length > 0 ? systemd : '/var/lib/gpulse', 'mqtt');
}

/**
 * What one start attempt opened. Filled in step by step, so the rest of the component sees each
 * part as soon as it exists and a failure half-way releases exactly what was opened.
 */
export interface OpenedPublisher {
  lock?: InstanceLock;
  spool?: Spool;
  seq?: SequenceStore;
  conn?: MqttConnection;
  outbox?: Outbox;
}

/** Options of `openPublisher`. */
export interface OpenPublisherOptions {
  readonly config: MqttConfig;
  readonly url: string;
  readonly clientId: string;
  readonly topics: Readonly<Record<SpoolStream, string>>;
  readonly clock: Clock;
  readonly env: NodeJS.ProcessEnv;
  readonly log: Logger;
  /** The last will registered with the connect of session `n`. */
  readonly will: (n: number) => WillMessage;
  /** Called with the session number of each new connection. */
  readonly onSession: (session: number) => void;
  /** The spool gave messages up. */
  readonly onDrop: (reason: DropReason, count: number) => void;
  /** The outbox settled a message. */
  readonly onResult: (stream: SpoolStream, result: PublishResult) => void;
  readonly random?: () => number;
  readonly connect?: ConnectionOptions['connect'];
}

/**
 * Opens the state directory (instance lock, spool, sequence) and creates the connection and the
 * outbox, not started yet; throws when it cannot, with what it opened left in `into`.
 */
export async function openPublisher(
  into: OpenedPublisher,
  o: OpenPublisherOptions,
): Promise<{ dir: string; spool: Spool; conn: MqttConnection }> {
  const { config, url, clock, log } = o;
  const dir = config.spool.dir ?? defaultStateDir(o.env);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new Error(
      `cannot create the MQTT state directory ${dir}: ${errorMessage(err)}; set mqtt.spool.dir (GPULSE_MQTT_SPOOL_DIR, --mqtt-spool-dir) to a writable directory`,
      { cause: err },
    );
  }
  into.lock = InstanceLock.acquire(join(dir, 'instance.lock'));
  const secrets = loadMqttSecrets(config);
  if ((config.tls.ca || config.tls.cert) && !/^(mqtts|ssl|tls):/i.test(url)) {
    log.warn(
      { broker: redactUrl(url) },
      'mqtt.tls files are set but the URL is not mqtts://: the connection is not encrypted',
    );
  }
  const spool = await Spool.open({
    dir,
    maxBytes: config.spool.maxBytes,
    maxAgeMs: config.spool.maxAge,
    clock,
    log,
    onDrop: o.onDrop,
  });
  into.spool = spool;
  const sequence = SequenceStore.open({ dir, floor: spool.maxSeq() + 1, log });
  into.seq = sequence;
  // Loaded here: an agent without mqtt.url never loads the mqtt package.
  const { MqttConnection } = await import('./publisher.js');
  const conn = new MqttConnection({
    url,
    protocol: config.protocol,
    clientId: o.clientId,
    username: config.username,
    password: secrets.password,
    tls: secrets.tls,
    keepaliveMs: config.keepaliveInterval,
    reconnectMinMs: config.reconnectMinDelay,
    reconnectMaxMs: config.reconnectMaxDelay,
    authRetryMs: config.authRetryDelay,
    will: o.will,
    nextSession: () => {
      const session = sequence.newSession();
      o.onSession(session);
      return session;
    },
    clock,
    log,
    random: o.random,
    connect: o.connect,
  });
  into.conn = conn;
  into.outbox = new Outbox({
    link: conn,
    spool,
    topics: o.topics,
    telemetryQos: config.qos,
    compressAbove: config.telemetry.compressAbove,
    replayRate: config.spool.replayRate,
    replayInFlight: config.replayInFlight,
    publishTimeoutMs: config.publishTimeout,
    clock,
    log,
    onResult: o.onResult,
  });
  return { dir, spool, conn };
}

/**
 * Releases what `openPublisher` opened, in order: the outbox (spooling what the broker did not
 * acknowledge), the connection (after `farewell`, when given), the spool, sequence and lock.
 */
export async function closePublisher(
  opened: OpenedPublisher,
  farewell?: WillMessage,
): Promise<void> {
  await opened.outbox?.stop();
  await opened.conn?.stop(farewell);
  await opened.spool?.close();
  opened.seq?.close();
  opened.lock?.release();
  opened.outbox = undefined;
  opened.conn = undefined;
  opened.seq = undefined;
  opened.spool = undefined;
  opened.lock = undefined;
}
