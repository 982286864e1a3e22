import { afterEach, describe, expect, it } from 'vitest';
import { allSeries, seriesValue, startCli, type CliProcess } from '../helpers/cli.js';

let cli: CliProcess | undefined;
afterEach(async () => {
  await cli?.stop();
  cli = undefined;
});

// A fresh machine without the NVIDIA driver: `npm start` must serve /metrics and say why there is no GPU.
describe('gpulse run on a host without a GPU', () => {
  it('serves a valid exposition with the collector state and says clearly that no GPU was found', async () => {
    cli = await startCli(['run'], { PATH: '/usr/bin:/bin', GPULSE_NVIDIA_SMI: '' });
    // Other collectors (dcgm) may say "no data" first: wait for nvidia-smi's.
    const body = await cli.waitForMetrics((b) =>
      b.includes('collector="nvidia-smi",status="no_data"'),
    );
    expect(seriesValue(body, 'gpulse_collector_up', { collector: 'nvidia-smi' })).toBe(0);
    expect(
      seriesValue(body, 'gpulse_collector_status', {
        collector: 'nvidia-smi',
        status: 'no_data',
        reason: 'binary_not_found',
      }),
    ).toBe(1);
    expect(allSeries(body, 'gpulse_gpu_info')).toEqual([]);
    const said = cli.logs.find(
      (r) => typeof r.msg === 'string' && r.msg.startsWith('no NVIDIA GPU found'),
    );
    expect(said).toMatchObject({ collector: 'nvidia-smi', level: 30 });
    expect(String(said?.msg)).toContain('gpulse simulate');
    // Said once, not on every retry: three more starts fail (each retry is logged at debug)...
    await cli.waitForRetries('nvidia-smi', 'binary_not_found', 3, 20_000);
    // ...and the message is still there once.
    expect(cli.logs.filter((r) => String(r.msg).startsWith('no NVIDIA GPU found'))).toHaveLength(1);
    expect((await cli.get('/readyz')).status).toBe(200);
    const stopped = await cli.stop();
    expect(stopped.code).toBe(0);
    expect(stopped.ms).toBeLessThan(5000);
  });

  it('reports invalid configuration with every problem and exits 2', async () => {
    cli = await startCli(
      ['run', '--interval', 'soon', '--nvidia-smi-mode', 'sometimes'],
      {},
      { waitHealthy: false },
    );
    const result = await cli.exited();
    expect(result.code).toBe(2);
    expect(cli.stderr()).toContain('collectors.nvidia-smi.interval: expected a duration');
    expect(cli.stderr()).toContain('collectors.nvidia-smi.mode:');
    expect(cli.stderr()).toContain('(from --interval)');
  });
});
