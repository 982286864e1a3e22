/**
 * Shapes of the MQTT messages as the gateway accepts them. Apart from payloads.ts so that the
 * publishing agent, which never parses these, does not load zod (about 3 MB of heap on a device
 * with 64 MB for the agent).
 */
import { z } from 'zod';
import { PAYLOAD_VERSION, TELEMETRY_VERSION } from './payloads.js';

// Gateway-side schemas: shapes only; names and sizes are checked where series are rendered.
// Unknown keys are allowed so a newer agent can add fields without older gateways rejecting it.

/** Shape of one schema as the gateway accepts it (checked once per new schema id). */
export const schemaSchema = z.looseObject({
  id: z.string().min(1).max(64),
  series: z
    .array(
      z.looseObject({
        labels: z.record(z.string(), z.string()),
        metrics: z.array(z.string()),
      }),
    )
    .max(100_000),
});

/** Shape of a retained schema message as the gateway accepts it. */
export const schemaMessageSchema = z.looseObject({
  v: z.literal(TELEMETRY_VERSION),
  ts: z.number().nonnegative(),
  schemas: z.array(schemaSchema).max(256),
});

/** Shape of an events message as the gateway accepts it. */
export const eventsSchema = z.looseObject({
  v: z.literal(PAYLOAD_VERSION),
  seq: z.number().int().nonnegative(),
  ts: z.number().nonnegative(),
  replay: z.boolean().optional(),
  events: z.array(
    z.looseObject({
      ts: z.number(),
      type: z.string().min(1).max(128),
      severity: z.string().max(32),
    }),
  ),
});

/** Shape of a status message as the gateway accepts it. */
export const statusSchema = z.looseObject({
  v: z.literal(PAYLOAD_VERSION),
  state: z.enum(['online', 'offline']),
  ts: z.number().nonnegative(),
  session: z.number().int().nonnegative(),
  version: z.string().max(64).optional(),
  reason: z.string().max(32).optional(),
  telemetry_interval_seconds: z.number().positive().optional(),
});
