import { z } from 'zod';
import { zBytes, zDuration, zInt, type SettingBinding } from '../agent/config-schema.js';
import { segmentProblem } from '../exporters/mqtt/topics.js';

const zSegment = (kind: 'site' | 'node') =>
  z.string().superRefine((value, ctx) => {
    const problem = segmentProblem(kind, value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const zMqttUrl = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({
      code: 'custom',
      message: `expected a broker URL like "mqtts://broker.example:8883" or "mqtt://127.0.0.1:1883", got ${JSON.stringify(redactUrl(value))}`,
    });
    return;
  }
  if (!['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'tls:'].includes(url.protocol)) {
    ctx.addIssue({
      code: 'custom',
      message: `unsupported scheme ${url.protocol} (use mqtt:// or mqtts://)`,
    });
  }
});

/** A URL with any user:password part replaced, safe to log or print in errors. */
export function redactUrl(text: string): string {
  return text.replace(/^([a-z]+:\/\/)[^@/]*@/i, '$1[redacted]@');
}

/** TLS files of the MQTT connection (used with mqtts://). */
const tlsSchema = z
  .object({
    /** CA bundle that signed the broker's certificate (default: the system's). */
    ca: z.string().min(1).optional(),
    /** Client certificate (PEM) for brokers that authenticate devices by certificate. */
    cert: z.string().min(1).optional(),
    /** Private key of the client certificate (PEM). */
    key: z.string().min(1).optional(),
  })
  .strict();

/** Settings of the MQTT publisher (config key `mqtt`); off unless `url` is set. */
export const mqttConfigSchema = z
  .object({
    /** Broker URL; unset: no MQTT. */
    url: zMqttUrl.optional(),
    /** auto: MQTT 5, falling back to 3.1.1 when the broker refuses 5. */
    protocol: z.enum(['auto', '5', '3.1.1']).default('auto'),
    /** Site (topic level 3). */
    site: zSegment('site').default('default'),
    /** Node id (topic level 4; the certificate CN with the deploy/mosquitto ACL). Default: host name. */
    node: zSegment('node').optional(),
    /** Client id; default `gpulse-<site>-<node>`, stable across restarts. */
    clientId: z.string().min(1).max(128).optional(),
    /** QoS of telemetry (events and status are always QoS 1). */
    qos: z
      .union([z.literal(0), z.literal(1), z.enum(['0', '1'])])
      .transform((v): 0 | 1 => (Number(v) === 0 ? 0 : 1))
      .default(1),
    username: z.string().min(1).optional(),
    /** Password; never logged. Prefer GPULSE_MQTT_PASSWORD or passwordFile over the config file. */
    password: z.string().min(1).optional(),
    /** File holding the password (e.g. a mounted secret); trailing newline ignored. */
    passwordFile: z.string().min(1).optional(),
    tls: tlsSchema.default({}),
    /** MQTT keepalive: the broker publishes the last will after 1.5× this without traffic. */
    keepaliveInterval: zDuration({ min: 5000 }).default(30_000),
    /** Full-jitter reconnect backoff: a random wait in [0, min(max, min·2^attempt)]. */
    reconnectMinDelay: zDuration({ min: 100 }).default(1000),
    reconnectMaxDelay: zDuration({ min: 1000 }).default(60_000),
    /** Wait after the broker refused the credentials (CONNACK 4/5, 0x86/0x87): 0.5–1.5× this. */
    authRetryDelay: zDuration({ min: 1000 }).default(600_000),
    telemetry: z
      .object({
        /** A sample of every series is taken at this interval. */
        interval: zDuration({ min: 100 }).default(10_000),
        /** The samples taken are sent as one message at this interval (earlier when the batch would pass the size limit). */
        flush: zDuration({ min: 100 }).default(60_000),
        /** Payloads larger than this are deflated. */
        compressAbove: zBytes().default(1024),
      })
      .strict()
      .default({ interval: 10_000, flush: 60_000, compressAbove: 1024 }),
    /** The retained online status is refreshed at this interval (gateways use it as a heartbeat). */
    statusInterval: zDuration({ min: 1000 }).default(60_000),
    spool: z
      .object({
        /** State directory: spool segments, sequence file, instance lock. Default $STATE_DIRECTORY/mqtt or /var/lib/gpulse/mqtt. */
        dir: z.string().min(1).optional(),
        maxBytes: zBytes().default(256 * 1024 * 1024),
        maxAge: zDuration({ min: 1000 }).default(7 * 86_400_000),
        /** Replay speed after an outage, bytes per second. */
        replayRate: zBytes().default(1024 * 1024),
      })
      .strict()
      .default({ maxBytes: 256 * 1024 * 1024, maxAge: 7 * 86_400_000, replayRate: 1024 * 1024 }),
    /** How long a live message may wait for its PUBACK before it is spooled. */
    publishTimeout: zDuration({ min: 100 }).default(10_000),
    /** Events seen within this window travel in one message. */
    eventsWindow: zDuration().default(200),
    /** QoS 1 messages replayed at once (in flight). */
    replayInFlight: zInt({ min: 1, max: 100 }).default(8),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.reconnectMaxDelay < c.reconnectMinDelay)
      ctx.addIssue({
        code: 'custom',
        path: ['reconnectMaxDelay'],
        message: 'must be at least reconnectMinDelay',
      });
    if (c.password && c.passwordFile)
      ctx.addIssue({
        code: 'custom',
        path: ['passwordFile'],
        message: 'set password or passwordFile, not both',
      });
    if ((c.tls.cert === undefined) !== (c.tls.key === undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['tls'],
        message: 'a client certificate needs both cert and key',
      });
  })
  // Credentials written into the URL move to username/password, so the URL never carries a
  // secret into logs or config dumps (the root logger redacts `password`, not URLs).
  .transform((c) => {
    if (!c.url) return c;
    const url = new URL(c.url);
    if (!url.username && !url.password) return c;
    const username = c.username ?? (url.username ? decodeURIComponent(url.username) : undefined);
    const password =
      c.password ??
      (c.passwordFile || !url.password ? undefined : decodeURIComponent(url.password));
    url.username = '';
    url.password = '';
    return { ...c, url: url.toString().replace(/\/$/, ''), username, password };
  });

/** Parsed MQTT settings. */
export type MqttConfig = z.infer<typeof mqttConfigSchema>;

/** Environment variables and flags of the MQTT publisher. */
export const mqttSettings: readonly SettingBinding[] = [
  {
    path: ['mqtt', 'url'],
    env: 'GPULSE_MQTT_URL',
    flag: 'mqtt-url',
    valueName: 'URL',
    description: 'publish telemetry and events to this MQTT broker (mqtt:// or mqtts://)',
  },
  {
    path: ['mqtt', 'site'],
    env: 'GPULSE_MQTT_SITE',
    flag: 'site',
    valueName: 'SITE',
    description: 'site of this device in MQTT topics (default "default")',
  },
  {
    path: ['mqtt', 'node'],
    env: 'GPULSE_MQTT_NODE',
    flag: 'node',
    valueName: 'NODE',
    description: 'node id of this device in MQTT topics (default: host name)',
  },
  {
    path: ['mqtt', 'protocol'],
    env: 'GPULSE_MQTT_PROTOCOL',
    flag: 'mqtt-protocol',
    valueName: 'auto|5|3.1.1',
    description: 'MQTT version (auto: 5, else 3.1.1)',
  },
  {
    path: ['mqtt', 'clientId'],
    env: 'GPULSE_MQTT_CLIENT_ID',
    flag: 'mqtt-client-id',
    valueName: 'ID',
    description: 'MQTT client id (default gpulse-<site>-<node>)',
  },
  {
    path: ['mqtt', 'qos'],
    env: 'GPULSE_MQTT_QOS',
    flag: 'mqtt-qos',
    valueName: '0|1',
    description: 'QoS of telemetry (default 1)',
  },
  {
    path: ['mqtt', 'username'],
    env: 'GPULSE_MQTT_USERNAME',
    flag: 'mqtt-username',
    valueName: 'USER',
    description: 'MQTT user name',
  },
  // No flag for the password: command lines are visible to every user in `ps`.
  {
    path: ['mqtt', 'password'],
    env: 'GPULSE_MQTT_PASSWORD',
    description: 'MQTT password (never logged)',
  },
  {
    path: ['mqtt', 'passwordFile'],
    env: 'GPULSE_MQTT_PASSWORD_FILE',
    flag: 'mqtt-password-file',
    valueName: 'FILE',
    description: 'file holding the MQTT password',
  },
  {
    path: ['mqtt', 'tls', 'ca'],
    env: 'GPULSE_MQTT_CA',
    flag: 'mqtt-ca',
    valueName: 'FILE',
    description: 'CA bundle of the broker certificate (PEM)',
  },
  {
    path: ['mqtt', 'tls', 'cert'],
    env: 'GPULSE_MQTT_CERT',
    flag: 'mqtt-cert',
    valueName: 'FILE',
    description: 'client certificate (PEM)',
  },
  {
    path: ['mqtt', 'tls', 'key'],
    env: 'GPULSE_MQTT_KEY',
    flag: 'mqtt-key',
    valueName: 'FILE',
    description: 'client certificate key (PEM)',
  },
  {
    path: ['mqtt', 'telemetry', 'interval'],
    env: 'GPULSE_MQTT_INTERVAL',
    flag: 'mqtt-interval',
    valueName: 'DURATION',
    description: 'telemetry sample interval (default 10s)',
  },
  {
    path: ['mqtt', 'telemetry', 'flush'],
    env: 'GPULSE_MQTT_FLUSH',
    flag: 'mqtt-flush',
    valueName: 'DURATION',
    description: 'send the telemetry samples taken as one message at this interval (default 60s)',
  },
  {
    path: ['mqtt', 'telemetry', 'compressAbove'],
    env: 'GPULSE_MQTT_COMPRESS_ABOVE',
    valueName: 'BYTES',
    description: 'deflate payloads larger than this (default 1KiB)',
  },
  {
    path: ['mqtt', 'keepaliveInterval'],
    env: 'GPULSE_MQTT_KEEPALIVE',
    valueName: 'DURATION',
    description: 'MQTT keepalive (default 30s)',
  },
  {
    path: ['mqtt', 'reconnectMaxDelay'],
    env: 'GPULSE_MQTT_RECONNECT_MAX',
    valueName: 'DURATION',
    description: 'longest reconnect backoff (default 60s)',
  },
  {
    path: ['mqtt', 'reconnectMinDelay'],
    env: 'GPULSE_MQTT_RECONNECT_MIN',
    valueName: 'DURATION',
    description: 'first reconnect backoff step (default 1s)',
  },
  {
    path: ['mqtt', 'authRetryDelay'],
    env: 'GPULSE_MQTT_AUTH_RETRY',
    valueName: 'DURATION',
    description: 'wait after the broker refused the credentials, 0.5-1.5x (default 10m)',
  },
  {
    path: ['mqtt', 'statusInterval'],
    env: 'GPULSE_MQTT_STATUS_INTERVAL',
    valueName: 'DURATION',
    description: 'refresh of the retained online status (default 1m)',
  },
  {
    path: ['mqtt', 'publishTimeout'],
    env: 'GPULSE_MQTT_PUBLISH_TIMEOUT',
    valueName: 'DURATION',
    description: 'a live message without PUBACK by then is spooled (default 10s)',
  },
  {
    path: ['mqtt', 'eventsWindow'],
    env: 'GPULSE_MQTT_EVENTS_WINDOW',
    valueName: 'DURATION',
    description: 'events within this window share one message (default 200ms)',
  },
  {
    path: ['mqtt', 'replayInFlight'],
    env: 'GPULSE_MQTT_REPLAY_IN_FLIGHT',
    valueName: 'N',
    description: 'replayed messages in flight at once (default 8)',
  },
  {
    path: ['mqtt', 'spool', 'dir'],
    env: 'GPULSE_MQTT_SPOOL_DIR',
    flag: 'mqtt-spool-dir',
    valueName: 'DIR',
    description: 'spool and state directory (default /var/lib/gpulse/mqtt)',
  },
  {
    path: ['mqtt', 'spool', 'maxBytes'],
    env: 'GPULSE_MQTT_SPOOL_MAX_BYTES',
    flag: 'mqtt-spool-max-bytes',
    valueName: 'SIZE',
    description: 'spool size bound (default 256MiB)',
  },
  {
    path: ['mqtt', 'spool', 'maxAge'],
    env: 'GPULSE_MQTT_SPOOL_MAX_AGE',
    valueName: 'DURATION',
    description: 'spool age bound (default 7d)',
  },
  {
    path: ['mqtt', 'spool', 'replayRate'],
    env: 'GPULSE_MQTT_REPLAY_RATE',
    valueName: 'BYTES',
    description: 'replay speed after an outage, bytes/s (default 1MiB)',
  },
];
