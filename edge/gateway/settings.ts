/** Environment variables and flags of these settings: plain data the CLI reads without loading zod. */
import type { SettingBinding } from '../../agent/config-schema.js';

/** Environment variables of the gateway (in the agent's settings, so they are always known). */
export const gatewaySettings: readonly SettingBinding[] = [
  {
    path: ['gateway', 'shareGroup'],
    env: 'GPULSE_GATEWAY_SHARE_GROUP',
    valueName: 'GROUP',
    description: 'gateway: MQTT 5 shared subscription group for several gateways',
  },
  {
    path: ['gateway', 'clientId'],
    env: 'GPULSE_GATEWAY_CLIENT_ID',
    valueName: 'ID',
    description: 'gateway: MQTT client id (default gpulse-gateway-<host>-<pid>-<random>)',
  },
  {
    path: ['gateway', 'deviceTimeout'],
    env: 'GPULSE_GATEWAY_DEVICE_TIMEOUT',
    valueName: 'DURATION',
    description: 'gateway: silence after which a device is down (default 2m)',
  },
  {
    path: ['gateway', 'deviceTtl'],
    env: 'GPULSE_GATEWAY_DEVICE_TTL',
    valueName: 'DURATION',
    description: 'gateway: silence after which a device and its series are dropped (default 24h)',
  },
  {
    path: ['gateway', 'maxDevices'],
    env: 'GPULSE_GATEWAY_MAX_DEVICES',
    valueName: 'N',
    description: 'gateway: devices tracked at most; more are rejected and counted (default 10000)',
  },
  {
    path: ['gateway', 'maxSeriesPerDevice'],
    env: 'GPULSE_GATEWAY_MAX_SERIES_PER_DEVICE',
    valueName: 'N',
    description: 'gateway: series of one device at most (default 20000)',
  },
  {
    path: ['gateway', 'maxPayloadBytes'],
    env: 'GPULSE_GATEWAY_MAX_PAYLOAD_BYTES',
    valueName: 'SIZE',
    description: 'gateway: largest message as received (default 1MiB)',
  },
  {
    path: ['gateway', 'maxInflatedBytes'],
    env: 'GPULSE_GATEWAY_MAX_INFLATED_BYTES',
    valueName: 'SIZE',
    description: 'gateway: largest message after inflating (default 8MiB)',
  },
  {
    path: ['gateway', 'maxDeviceBytes'],
    env: 'GPULSE_GATEWAY_MAX_DEVICE_BYTES',
    valueName: 'SIZE',
    description:
      'gateway: bytes kept for one device at most (schemas, latest values, their exposition, held messages); more is refused and counted (default 4MiB)',
  },
  {
    path: ['gateway', 'maxFleetBytes'],
    env: 'GPULSE_GATEWAY_MAX_FLEET_BYTES',
    valueName: 'SIZE',
    description:
      'gateway: bytes kept for all devices at most, which also bounds a scrape (about this plus 0.5 KB a device); more is refused and counted (default 512MiB)',
  },
  {
    path: ['gateway', 'embeddedBroker'],
    env: 'GPULSE_GATEWAY_EMBEDDED_BROKER',
    valueName: 'HOST:PORT|off',
    description: 'gateway: in-process MQTT broker for trials (default off)',
  },
];
