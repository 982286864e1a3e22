import type { ApplyResult } from './update/types.js';

/** Response to a model-update command (zigbee2mqtt-style). */
export type ModelUpdateResponse =
  | { transaction?: string | number; status: 'ok'; data: { results: ModelCheckResult[] } }
  | {
      transaction?: string | number;
      status: 'error';
      error: string;
      data?: { results: ModelCheckResult[] };
    };

/** One model's result as sent over MQTT (snake_case payload keys). */
export interface ModelCheckResult {
  readonly model: string;
  readonly outcome: ApplyResult['outcome'];
  readonly version?: string;
  readonly release?: number;
  readonly reason?: string;
  readonly message: string;
}

/** Answers a model-update command: what the composition root hands the MQTT command wiring. */
export type ModelUpdateHandler = (payload: unknown) => Promise<ModelUpdateResponse>;

/**
 * The answer when no model updater runs on this node (no `models:` configured, or it has not
 * started yet / has stopped). Kept apart from the updater so the MQTT wiring answers without
 * loading it.
 */
export function noModelsResponse(payload: unknown): ModelUpdateResponse {
  const transaction = (payload as { transaction?: string | number } | null)?.transaction;
  return {
    transaction,
    status: 'error',
    error: 'no models are configured on this node (config `models:`)',
  };
}
