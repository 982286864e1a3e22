/** Why the gateway drops a message (the `reason` of gpulse_fleet_rejected_messages_total). */
export type RejectReason =
  | 'bad_topic'
  | 'too_large'
  | 'bad_encoding'
  | 'bad_json'
  | 'bad_shape'
  | 'bad_name'
  | 'device_limit'
  | 'series_limit'
  | 'device_bytes'
  | 'fleet_bytes'
  | 'unknown_schema'
  | 'forward_failed';

/** Every reason, in the order the gateway exports them (all present from the start, at 0). */
export const REJECT_REASONS: readonly RejectReason[] = [
  'bad_topic',
  'too_large',
  'bad_encoding',
  'bad_json',
  'bad_shape',
  'bad_name',
  'device_limit',
  'series_limit',
  'device_bytes',
  'fleet_bytes',
  'unknown_schema',
  'forward_failed',
];

/** Thrown while a message is taken in, to drop it with a counted reason. */
export class Reject extends Error {
  constructor(readonly reason: RejectReason) {
    super(reason);
    this.name = 'Reject';
  }
}
