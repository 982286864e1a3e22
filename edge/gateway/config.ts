import { z } from 'zod';
import {
  zBytes,
  zDuration,
  zInt,
  type SettingBinding,
  setting,
} from '../../agent/config-schema.js';

const zEmbedded = z.string().transform((value, ctx) => {
  if (value === 'off') return 'off' as const;
  const parsed = parseHostPort(value);
  if (!parsed) {
    ctx.addIssue({
      code: 'custom',
      message: `expected "off" or HOST:PORT for the embedded broker, e.g. "127.0.0.1:1883", got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return parsed;
});

/** HOST:PORT or [IPv6]:PORT (agent/config.ts has the same parser; importing it would be a cycle). */
export function parseHostPort(value: string): { host: string; port: number } | undefined {
  try {
    const url = new URL(`tcp://${value.trim()}`);
    if (!url.port || url.pathname !== '' || url.username || url.search) return undefined;
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port) };
  } catch {
    return undefined;
  }
}

/** Settings of `gpulse gateway` (config key `gateway`); the broker connection is `mqtt`. */
export const gatewayConfigSchema = z
  .object({
    /** MQTT 5 shared subscription group: gateways in one group split the fleet's messages. */
    shareGroup: setting(
      z
        .string()
        .regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, "-" and "_" only')
        .optional(),
      {
        env: 'GPULSE_GATEWAY_SHARE_GROUP',
        valueName: 'GROUP',
        description: 'gateway: MQTT 5 shared subscription group for several gateways',
      },
    ),
    /** Client id; default gpulse-gateway-<host>-<pid>-<random> (unique: gateways use clean sessions). */
    clientId: setting(z.string().min(1).max(128).optional(), {
      env: 'GPULSE_GATEWAY_CLIENT_ID',
      valueName: 'ID',
      description: 'gateway: MQTT client id (default gpulse-gateway-<host>-<pid>-<random>)',
    }),
    /** A device silent this long is down (up 0) and its series are withdrawn. */
    deviceTimeout: setting(zDuration({ min: 1000 }).default(120_000), {
      env: 'GPULSE_GATEWAY_DEVICE_TIMEOUT',
      description: 'gateway: silence after which a device is down (default 2m)',
    }),
    /** A device silent this long is forgotten: all its series disappear. */
    deviceTtl: setting(zDuration({ min: 1000 }).default(86_400_000), {
      env: 'GPULSE_GATEWAY_DEVICE_TTL',
      description: 'gateway: silence after which a device and its series are dropped (default 24h)',
    }),
    maxDevices: setting(zInt({ min: 1 }).default(10_000), {
      env: 'GPULSE_GATEWAY_MAX_DEVICES',
      description:
        'gateway: devices tracked at most; more are rejected and counted (default 10000)',
    }),
    maxSeriesPerDevice: setting(zInt({ min: 1 }).default(20_000), {
      env: 'GPULSE_GATEWAY_MAX_SERIES_PER_DEVICE',
      description: 'gateway: series of one device at most (default 20000)',
    }),
    /** Largest message accepted as received. */
    maxPayloadBytes: setting(zBytes().default(1024 * 1024), {
      env: 'GPULSE_GATEWAY_MAX_PAYLOAD_BYTES',
      description: 'gateway: largest message as received (default 1MiB)',
    }),
    /** Largest message after inflating. */
    maxInflatedBytes: setting(zBytes().default(8 * 1024 * 1024), {
      env: 'GPULSE_GATEWAY_MAX_INFLATED_BYTES',
      description: 'gateway: largest message after inflating (default 8MiB)',
    }),
    /**
     * Bytes kept for one device at most: its compiled schemas, latest values, the exposition
     * they render (counted at the widest values) and messages held for a schema.
     */
    maxDeviceBytes: setting(zBytes().default(4 * 1024 * 1024), {
      env: 'GPULSE_GATEWAY_MAX_DEVICE_BYTES',
      description:
        'gateway: bytes kept for one device at most (schemas, latest values, their exposition, held messages); more is refused and counted (default 4MiB)',
    }),
    /** Bytes kept for all devices together at most (the same things); bounds a scrape too. */
    maxFleetBytes: setting(zBytes().default(512 * 1024 * 1024), {
      env: 'GPULSE_GATEWAY_MAX_FLEET_BYTES',
      description:
        'gateway: bytes kept for all devices at most, which also bounds a scrape (about this plus 0.5 KB a device); more is refused and counted (default 512MiB)',
    }),
    /** Start an in-process MQTT 3.1.1 broker (aedes) on HOST:PORT for trials; "off" by default. */
    embeddedBroker: setting(zEmbedded.default('off'), {
      env: 'GPULSE_GATEWAY_EMBEDDED_BROKER',
      valueName: 'HOST:PORT|off',
      description: 'gateway: in-process MQTT broker for trials (default off)',
    }),
  })
  .strict()
  .refine((g) => g.maxFleetBytes >= g.maxDeviceBytes, {
    message: 'gateway.maxFleetBytes must be at least gateway.maxDeviceBytes',
    path: ['maxFleetBytes'],
  });

/** Parsed gateway settings. */
export type GatewayConfig = z.infer<typeof gatewayConfigSchema>;

/** Flags of `gpulse gateway` only (kept out of `gpulse run --help`). */
export const gatewayFlags: readonly SettingBinding[] = [
  {
    path: ['gateway', 'shareGroup'],
    flag: 'share-group',
    valueName: 'GROUP',
    description:
      'MQTT 5 shared subscription group for several gateways [GPULSE_GATEWAY_SHARE_GROUP]',
  },
  {
    path: ['gateway', 'clientId'],
    flag: 'gateway-client-id',
    valueName: 'ID',
    description:
      'MQTT client id (default gpulse-gateway-<host>-<pid>-<random>) [GPULSE_GATEWAY_CLIENT_ID]',
  },
  {
    path: ['gateway', 'deviceTimeout'],
    flag: 'device-timeout',
    valueName: 'DURATION',
    description:
      'silence after which a device is down (default 2m) [GPULSE_GATEWAY_DEVICE_TIMEOUT]',
  },
  {
    path: ['gateway', 'deviceTtl'],
    flag: 'device-ttl',
    valueName: 'DURATION',
    description:
      'silence after which a device and its series are dropped (default 24h) [GPULSE_GATEWAY_DEVICE_TTL]',
  },
  {
    path: ['gateway', 'maxDevices'],
    flag: 'max-devices',
    valueName: 'N',
    description: 'devices tracked at most (default 10000) [GPULSE_GATEWAY_MAX_DEVICES]',
  },
  {
    path: ['gateway', 'maxDeviceBytes'],
    flag: 'max-device-bytes',
    valueName: 'SIZE',
    description:
      'bytes kept for one device at most (default 4MiB) [GPULSE_GATEWAY_MAX_DEVICE_BYTES]',
  },
  {
    path: ['gateway', 'maxFleetBytes'],
    flag: 'max-fleet-bytes',
    valueName: 'SIZE',
    description:
      'bytes kept for all devices at most (default 512MiB) [GPULSE_GATEWAY_MAX_FLEET_BYTES]',
  },
  {
    path: ['gateway', 'embeddedBroker'],
    flag: 'embedded-broker',
    description: 'in-process MQTT broker (see --embedded-broker [HOST:PORT])',
  },
];
