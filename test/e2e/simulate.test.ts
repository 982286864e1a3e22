import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { allSeries, seriesValue, type CliProcess, startSimulate } from '../helpers/cli.js';
import { describeWithTools, findTool, tools } from '../helpers/tools.js';

const running: CliProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop()));
});

async function simulate(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliProcess> {
  const cli = await startSimulate(args, env);
  running.push(cli);
  return cli;
}

describe('gpulse simulate', () => {
  it('serves 8 simulated H100s with their processes, moving along a load curve', async () => {
    const cli = await simulate([]);
    const body = await cli.waitForMetrics(
      (b) =>
        allSeries(b, 'gpulse_gpu_info').length === 8 &&
        allSeries(b, 'gpulse_gpu_process_memory_used_bytes').length >= 8,
    );
    const info = allSeries(body, 'gpulse_gpu_info');
    expect(new Set(info.map((s) => s.labels.name))).toEqual(new Set(['NVIDIA H100 80GB HBM3']));
    expect(info.map((s) => s.labels.gpu).sort()).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
    expect(new Set(info.map((s) => s.labels.uuid)).size).toBe(8);
    for (const s of allSeries(body, 'gpulse_gpu_memory_total_bytes'))
      expect(s.value).toBe(81559 * 1048576);
    const util = allSeries(body, 'gpulse_gpu_utilization_ratio');
    expect(util).toHaveLength(8);
    for (const s of util) expect(s.value).toBeGreaterThanOrEqual(0);
    for (const s of util) expect(s.value).toBeLessThanOrEqual(1);
    expect(allSeries(body, 'gpulse_gpu_throttle_active')).toHaveLength(8 * 9);
    expect(allSeries(body, 'gpulse_gpu_process_memory_used_bytes').length).toBeGreaterThanOrEqual(
      8,
    );
    expect(seriesValue(body, 'gpulse_collector_up', { collector: 'nvidia-smi' })).toBe(1);
    expect(seriesValue(body, 'gpulse_collector_up', { collector: 'host' })).toBe(1);
    // The curve moves: some GPU's utilization differs a few intervals later.
    const later = await cli.waitForMetrics((b) =>
      allSeries(b, 'gpulse_gpu_utilization_ratio').some(
        (s) => util.find((u) => u.labels.gpu === s.labels.gpu)?.value !== s.value,
      ),
    );
    expect(later).toBeTruthy();
  });

  it('reports MIG devices of the H200 MIG profile', async () => {
    const cli = await simulate(['--profile', 'h200-mig']);
    const body = await cli.waitForMetrics((b) => allSeries(b, 'gpulse_mig_info').length > 0);
    expect(seriesValue(body, 'gpulse_gpu_mig_enabled', { gpu: '0' })).toBe(1);
    const mig = allSeries(body, 'gpulse_mig_info');
    expect(mig.length).toBe(5);
    expect(allSeries(body, 'gpulse_mig_memory_used_bytes')).toHaveLength(5);
    // MIG GPUs report no device-level utilization: absent, not zero.
    expect(allSeries(body, 'gpulse_gpu_utilization_ratio')).toEqual([]);
  });

  it('a lost GPU is down, not the collector, and answers again when the episode ends', async () => {
    const cli = await simulate(['--profile', 'h200', '--scenario', 'gpu-lost:after=15s,for=8s']);
    const up = await cli.waitForMetrics(
      (b) => seriesValue(b, 'gpulse_gpu_up', { gpu: '0' }) === 1 && b.includes('cuda_version="13'),
      30_000,
    );
    const info = allSeries(up, 'gpulse_gpu_info');
    const lost = await cli.waitForMetrics(
      (b) => seriesValue(b, 'gpulse_gpu_up', { gpu: '0' }) === 0,
      30_000,
    );
    // The only GPU is lost: the collector still answers, the GPU keeps its identity, no values.
    expect(seriesValue(lost, 'gpulse_collector_up', { collector: 'nvidia-smi' })).toBe(1);
    expect(allSeries(lost, 'gpulse_gpu_info')).toEqual(info);
    expect(allSeries(lost, 'gpulse_gpu_utilization_ratio')).toEqual([]);
    expect(seriesValue(lost, 'gpulse_collector_up', { collector: 'host' })).toBe(1);
    const back = await cli.waitForMetrics(
      (b) => seriesValue(b, 'gpulse_gpu_up', { gpu: '0' }) === 1,
      30_000,
    );
    expect(allSeries(back, 'gpulse_gpu_utilization_ratio')).toHaveLength(1);
    const events = () =>
      (cli.logs as { event?: string; gpu?: string }[])
        .filter((r) => r.event === 'gpu.lost' || r.event === 'gpu.recovered')
        .map((r) => [r.event, r.gpu]);
    // The events follow the snapshot that shows the recovery: the store hands them on when it
    // announces it (within its 25 ms coalescing), and a scrape may see that snapshot first.
    await expect.poll(events, { timeout: 10_000 }).toEqual([
      ['gpu.lost', '0'],
      ['gpu.recovered', '0'],
    ]);
  }, 90_000);

  it('a hung driver: /metrics keeps answering, the stream is restarted, the agent recovers', async () => {
    const cli = await simulate(['--profile', 'h200', '--scenario', 'hang:after=6s,for=6s']);
    const hung = await cli.waitForMetrics((b) => b.includes('reason="hang"'), 30_000);
    expect(seriesValue(hung, 'gpulse_collector_up', { collector: 'nvidia-smi' })).toBe(0);
    const t0 = Date.now();
    expect((await cli.get('/metrics')).status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(2000);
    const back = await cli.waitForMetrics(
      (b) => seriesValue(b, 'gpulse_collector_up', { collector: 'nvidia-smi' }) === 1,
      60_000,
    );
    expect(
      seriesValue(back, 'gpulse_nvidia_smi_restarts_total', { stream: 'query-gpu' }),
    ).toBeGreaterThanOrEqual(1);
  }, 90_000);

  it('no driver: says so and keeps serving', async () => {
    const cli = await simulate(['--scenario', 'no-driver']);
    const body = await cli.waitForMetrics((b) => b.includes('reason="driver_not_loaded"'));
    expect(seriesValue(body, 'gpulse_collector_up', { collector: 'nvidia-smi' })).toBe(0);
    expect(String(cli.logs.find((r) => r.reason === 'driver_not_loaded')?.msg)).toMatch(
      /cannot talk to the NVIDIA driver/,
    );
  });

  it('stops its children and exits 0 within 5 s on SIGTERM', async () => {
    const cli = await simulate(['--profile', 'h100-8x', '--seed', '424242']);
    await cli.waitForMetrics((b) => allSeries(b, 'gpulse_gpu_info').length === 8);
    const children = childPids(cli.proc.pid!);
    expect(children.length).toBeGreaterThanOrEqual(3);
    const r = await cli.stop();
    expect(r.code).toBe(0);
    expect(r.ms).toBeLessThan(5000);
    // Stopped, not left behind: the agent waits for each child's exit before it exits itself (a
    // child it left would live on until its next write met the closed pipe).
    expect(children.filter((pid) => alive(pid))).toEqual([]);
  });
});

describeWithTools('promtool check metrics', tools('promtool'), () => {
  it.each([['h100-8x'], ['h200-mig'], ['rtx-4080-super']])(
    'a scrape of profile %s passes without a word',
    async (profile) => {
      const cli = await simulate(['--profile', profile, '--process-count', '16']);
      const body = await cli.waitForMetrics(
        (b) =>
          allSeries(b, 'gpulse_gpu_info').length > 0 &&
          b.includes('gpulse_collector_up{collector="host"} 1'),
      );
      const r = spawnSync(findTool('promtool')!, ['check', 'metrics'], {
        input: body,
        encoding: 'utf8',
      });
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
    },
  );
});

function childPids(pid: number): number[] {
  const out = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => n > 0);
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}
