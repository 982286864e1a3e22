import { z } from 'zod';
import { redactUrl } from './mqtt/redact-url.js';
import { zBytes, zDuration, zInt, setting, zDir, zFile } from '../agent/config-schema.js';
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

/** TLS files of the MQTT connection (used with mqtts://). */
const tlsSchema = z
  .object({
    /** CA bundle that signed the broker's certificate (default: the system's). */
    ca: setting(zFile().optional(), {
      env: 'GPULSE_MQTT_CA',
      flag: 'mqtt-ca',
      description: 'CA bundle of the broker certificate (PEM)',
    }),
    /** Client certificate (PEM) for brokers that authenticate devices by certificate. */
    cert: setting(zFile().optional(), {
      env: 'GPULSE_MQTT_CERT',
      flag: 'mqtt-cert',
      description: 'client certificate (PEM)',
    }),
    /** Private key of the client certificate (PEM). */
    key: setting(zFile().optional(), {
      env: 'GPULSE_MQTT_KEY',
      flag: 'mqtt-key',
      description: 'client certificate key (PEM)',
    }),
  })
  .strict();

/** Settings of the MQTT publisher (config key `mqtt`); off unless `url` is set. */
export const mqttConfigSchema = z
  .object({
    /** Broker URL; unset: no MQTT. */
    url: setting(zMqttUrl.optional(), {
      env: 'GPULSE_MQTT_URL',
      flag: 'mqtt-url',
      valueName: 'URL',
      description: 'publish telemetry and events to this MQTT broker (mqtt:// or mqtts://)',
    }),
    /** Site (topic level 3). */
    site: setting(zSegment('site').default('default'), {
      env: 'GPULSE_MQTT_SITE',
      flag: 'site',
      valueName: 'SITE',
      description: 'site of this device in MQTT topics (default "default")',
    }),
    /** Node id (topic level 4; the certificate CN with the deploy/mosquitto ACL). Default: host name. */
    node: setting(zSegment('node').optional(), {
      env: 'GPULSE_MQTT_NODE',
      flag: 'node',
      valueName: 'NODE',
      description: 'node id of this device in MQTT topics (default: host name)',
    }),
    /** auto: MQTT 5, falling back to 3.1.1 when the broker refuses 5. */
    protocol: setting(z.enum(['auto', '5', '3.1.1']).default('auto'), {
      env: 'GPULSE_MQTT_PROTOCOL',
      flag: 'mqtt-protocol',
      valueName: 'auto|5|3.1.1',
      description: 'MQTT version (auto: 5, else 3.1.1)',
    }),
    /** Client id; default `gpulse-<site>-<node>`, stable across restarts. */
    clientId: setting(z.string().min(1).max(128).optional(), {
      env: 'GPULSE_MQTT_CLIENT_ID',
      flag: 'mqtt-client-id',
      valueName: 'ID',
      description: 'MQTT client id (default gpulse-<site>-<node>)',
    }),
    /** QoS of telemetry (events and status are always QoS 1). */
    qos: setting(
      z
        .union([z.literal(0), z.literal(1), z.enum(['0', '1'])])
        .transform((v): 0 | 1 => (Number(v) === 0 ? 0 : 1))
        .default(1),
      {
        env: 'GPULSE_MQTT_QOS',
        flag: 'mqtt-qos',
        valueName: '0|1',
        description: 'QoS of telemetry (default 1)',
      },
    ),
    username: setting(z.string().min(1).optional(), {
      env: 'GPULSE_MQTT_USERNAME',
      flag: 'mqtt-username',
      valueName: 'USER',
      description: 'MQTT user name',
    }),
    /** Password; never logged. Prefer GPULSE_MQTT_PASSWORD or passwordFile over the config file. */
    password: setting(z.string().min(1).optional(), {
      // No flag for the password: command lines are visible to every user in `ps`.
      env: 'GPULSE_MQTT_PASSWORD',
      description: 'MQTT password (never logged)',
    }),
    /** File holding the password (e.g. a mounted secret); trailing newline ignored. */
    passwordFile: setting(zFile().optional(), {
      env: 'GPULSE_MQTT_PASSWORD_FILE',
      flag: 'mqtt-password-file',
      description: 'file holding the MQTT password',
    }),
    tls: tlsSchema.default({}),
    telemetry: z
      .object({
        /** A sample of every series is taken at this interval. */
        interval: setting(zDuration({ min: 100 }).default(10_000), {
          env: 'GPULSE_MQTT_INTERVAL',
          flag: 'mqtt-interval',
          description: 'telemetry sample interval (default 10s)',
        }),
        /** The samples taken are sent as one message at this interval (earlier when the batch would pass the size limit). */
        flush: setting(zDuration({ min: 100 }).default(60_000), {
          env: 'GPULSE_MQTT_FLUSH',
          flag: 'mqtt-flush',
          description:
            'send the telemetry samples taken as one message at this interval (default 60s)',
        }),
        /** Payloads larger than this are deflated. */
        compressAbove: setting(zBytes().default(1024), {
          env: 'GPULSE_MQTT_COMPRESS_ABOVE',
          valueName: 'BYTES',
          description: 'deflate payloads larger than this (default 1KiB)',
        }),
      })
      .strict()
      .default({ interval: 10_000, flush: 60_000, compressAbove: 1024 }),
    /** MQTT keepalive: the broker publishes the last will after 1.5× this without traffic. */
    keepaliveInterval: setting(zDuration({ min: 5000 }).default(30_000), {
      env: 'GPULSE_MQTT_KEEPALIVE',
      description: 'MQTT keepalive (default 30s)',
    }),
    /** Full-jitter reconnect backoff: a random wait in [0, min(max, min·2^attempt)]. */
    reconnectMaxDelay: setting(zDuration({ min: 1000 }).default(60_000), {
      env: 'GPULSE_MQTT_RECONNECT_MAX',
      description: 'longest reconnect backoff (default 60s)',
    }),
    reconnectMinDelay: setting(zDuration({ min: 100 }).default(1000), {
      env: 'GPULSE_MQTT_RECONNECT_MIN',
      description: 'first reconnect backoff step (default 1s)',
    }),
    /** Wait after the broker refused the credentials (CONNACK 4/5, 0x86/0x87): 0.5–1.5× this. */
    authRetryDelay: setting(zDuration({ min: 1000 }).default(600_000), {
      env: 'GPULSE_MQTT_AUTH_RETRY',
      description: 'wait after the broker refused the credentials, 0.5-1.5x (default 10m)',
    }),
    /** The retained online status is refreshed at this interval (gateways use it as a heartbeat). */
    statusInterval: setting(zDuration({ min: 1000 }).default(60_000), {
      env: 'GPULSE_MQTT_STATUS_INTERVAL',
      description: 'refresh of the retained online status (default 1m)',
    }),
    /** How long a live message may wait for its PUBACK before it is spooled. */
    publishTimeout: setting(zDuration({ min: 100 }).default(10_000), {
      env: 'GPULSE_MQTT_PUBLISH_TIMEOUT',
      description: 'a live message without PUBACK by then is spooled (default 10s)',
    }),
    /** Events seen within this window travel in one message. */
    eventsWindow: setting(zDuration().default(200), {
      env: 'GPULSE_MQTT_EVENTS_WINDOW',
      description: 'events within this window share one message (default 200ms)',
    }),
    /** QoS 1 messages replayed at once (in flight). */
    replayInFlight: setting(zInt({ min: 1, max: 100 }).default(8), {
      env: 'GPULSE_MQTT_REPLAY_IN_FLIGHT',
      description: 'replayed messages in flight at once (default 8)',
    }),
    spool: z
      .object({
        /** State directory: spool segments, sequence file, instance lock. Default $STATE_DIRECTORY/mqtt or /var/lib/gpulse/mqtt. */
        dir: setting(zDir().optional(), {
          env: 'GPULSE_MQTT_SPOOL_DIR',
          flag: 'mqtt-spool-dir',
          description: 'spool and state directory (default /var/lib/gpulse/mqtt)',
        }),
        maxBytes: setting(zBytes().default(256 * 1024 * 1024), {
          env: 'GPULSE_MQTT_SPOOL_MAX_BYTES',
          flag: 'mqtt-spool-max-bytes',
          description: 'spool size bound (default 256MiB)',
        }),
        maxAge: setting(zDuration({ min: 1000 }).default(7 * 86_400_000), {
          env: 'GPULSE_MQTT_SPOOL_MAX_AGE',
          description: 'spool age bound (default 7d)',
        }),
        /** Replay speed after an outage, bytes per second. */
        replayRate: setting(zBytes({ min: 1 }).default(1024 * 1024), {
          env: 'GPULSE_MQTT_REPLAY_RATE',
          valueName: 'BYTES',
          description: 'replay speed after an outage, bytes/s (default 1MiB)',
        }),
      })
      .strict()
      .default({ maxBytes: 256 * 1024 * 1024, maxAge: 7 * 86_400_000, replayRate: 1024 * 1024 }),
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
