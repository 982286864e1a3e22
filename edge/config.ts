import { z } from 'zod';
import { redactUrl } from './mqtt/redact-url.js';
import { zBytes, zDuration, zInt } from '../agent/config-schema.js';
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
        replayRate: zBytes({ min: 1 }).default(1024 * 1024),
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
