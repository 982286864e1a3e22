/** Environment variables and flags of these settings: plain data the CLI reads without loading zod. */
import type { SettingBinding } from '../../agent/config-schema.js';

/** Environment binding of the `models:` list. */
export const modelsSettings: readonly SettingBinding[] = [
  {
    path: ['models'],
    env: 'GPULSE_MODELS',
    valueName: 'JSON',
    description:
      'models kept up to date, as a JSON array of `models:` entries (see edge/models/README.md)',
  },
];
