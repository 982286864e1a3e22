import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../agent/core/clock.js';
import { EventLog } from '../../agent/core/events.js';
import { silentLogger } from '../../test/helpers/log-sink.js';
import { DEFAULT_HEALTH } from './health.js';
import { runTrial } from './trial.js';

const log = silentLogger();
const health = { ...DEFAULT_HEALTH, xid: 'any' as const };

describe('runTrial', () => {
  it('fails at once as aborted when its signal was aborted before it began', async () => {
    // A ten-minute window: without the check, the test would time out waiting for it.
    const trial = runTrial({ health, windowMs: 600_000, log, signal: AbortSignal.abort() });
    await expect(trial).rejects.toMatchObject({ reason: 'aborted' });
  });

  it('fails as aborted when its signal is aborted during the window', async () => {
    const abort = new AbortController();
    const trial = runTrial({ health, windowMs: 600_000, log, signal: abort.signal });
    setTimeout(() => abort.abort(), 20);
    await expect(trial).rejects.toMatchObject({ reason: 'aborted' });
  });

  it('fails on a critical Xid during the window and passes a quiet one', async () => {
    const events = new EventLog({ clock: new FakeClock(1_700_000_000_000), log });
    const failing = runTrial({ health, windowMs: 600_000, log, events });
    events.emit({
      type: 'gpu.xid',
      severity: 'critical',
      source: 'kmsg',
      message: 'Xid 79: GPU has fallen off the bus',
      labels: { gpu: '0' },
      data: { xid: 79 },
    });
    await expect(failing).rejects.toMatchObject({ reason: 'gpu_xid' });
    await expect(runTrial({ health, windowMs: 30, log, events })).resolves.toBeUndefined();
  });
});
