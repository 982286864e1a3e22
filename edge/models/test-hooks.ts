import { writeFileSync } from 'node:fs';
import type { PausePoint } from './updater.js';

/**
 * Crash-test hook, active only when GPULSE_TEST_PAUSE_AT names a pause point: on reaching it the
 * process writes GPULSE_TEST_PAUSE_FILE and waits forever, so a test can SIGKILL it exactly there.
 */
export function pauseHookFromEnv(
  env: NodeJS.ProcessEnv,
): ((point: PausePoint) => Promise<void>) | undefined {
  const at = env.GPULSE_TEST_PAUSE_AT;
  const file = env.GPULSE_TEST_PAUSE_FILE;
  if (!at || !file) return undefined;
  return (point) => {
    if (point !== at) return Promise.resolve();
    writeFileSync(file, `${point} ${process.pid}\n`);
    return new Promise<void>(() => {
      // Keep the event loop alive until the test kills us.
      setInterval(() => undefined, 60_000);
    });
  };
}
