// Acceptance: with GPULSE_NVIDIA_SMI pointing at a stand-in that answers from a real capture, the
// agent reports that GPU's values and processes, and in 60 s at a 1 s interval starts nvidia-smi
// at most 5 times (long-lived streams, not a process per scrape).
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseComputeAppsCsv, parseQueryGpuCsv } from '../../collectors/nvidia-smi/parse-csv.js';
import { allSeries, REPO_ROOT, seriesValue, SIM_NVIDIA_SMI, startCli } from '../helpers/cli.js';

const CSV = join(REPO_ROOT, 'collectors', 'nvidia-smi', 'fixtures', 'csv');
const GPU_CSV = join(CSV, 'linux-x86_64__nvidia-h200__590.48.01__load__query-gpu-all-fields.csv');
const APPS_CSV = join(CSV, 'linux-x86_64__nvidia-h200__590.48.01__load__query-compute-apps.csv');

const dir = mkdtempSync(join(tmpdir(), 'gpulse-standin-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a stand-in nvidia-smi answering from a real capture', () => {
  it('drives the agent for 60 s with at most 5 nvidia-smi starts', async () => {
    const log = join(dir, 'invocations.log');
    const standIn = join(dir, 'nvidia-smi');
    // Counts every start, then becomes the simulated nvidia-smi replaying the capture.
    writeFileSync(
      standIn,
      `#!/bin/sh\necho "$*" >> '${log}'\nexec '${process.execPath}' '${SIM_NVIDIA_SMI}' "$@"\n`,
    );
    chmodSync(standIn, 0o755);
    writeFileSync(log, '');
    const cli = await startCli(['run', '--interval', '1s'], {
      GPULSE_NVIDIA_SMI: standIn,
      GPULSE_SIM_CAPTURE: GPU_CSV,
      GPULSE_SIM_APPS_CAPTURE: APPS_CSV,
      GPULSE_LOG_LEVEL: 'info',
    });
    try {
      const gpu = parseQueryGpuCsv(readFileSync(GPU_CSV, 'utf8'))[0]!;
      const procs = parseComputeAppsCsv(readFileSync(APPS_CSV, 'utf8'));
      // The info series waits for the first -q -x document (it alone has the CUDA version).
      const first = await cli.waitForMetrics(
        (b) =>
          allSeries(b, 'gpulse_gpu_process_memory_used_bytes').length === 3 &&
          allSeries(b, 'gpulse_gpu_info').length === 1,
      );
      const labels = { gpu: '0', uuid: gpu.uuid };
      expect(seriesValue(first, 'gpulse_gpu_memory_used_bytes', labels)).toBe(gpu.memoryUsedBytes);
      expect(seriesValue(first, 'gpulse_gpu_power_draw_watts', labels)).toBe(gpu.powerDrawWatts);
      expect(seriesValue(first, 'gpulse_gpu_temperature_celsius', labels)).toBe(
        gpu.temperatureCelsius,
      );
      expect(seriesValue(first, 'gpulse_gpu_utilization_ratio', labels)).toBe(1);
      expect(seriesValue(first, 'gpulse_gpu_clock_hz', { ...labels, clock: 'sm' })).toBe(
        gpu.clocksHz.sm,
      );
      expect(
        seriesValue(first, 'gpulse_gpu_info', {
          ...labels,
          name: 'NVIDIA H200',
          driver_version: '590.48.01',
        }),
      ).toBe(1);
      for (const p of procs) {
        expect(
          seriesValue(first, 'gpulse_gpu_process_memory_used_bytes', {
            pid: String(p.pid),
            process_name: p.processName,
          }),
        ).toBe(p.usedMemoryBytes);
      }
      // Scrape as a busy Prometheus would for the rest of the minute, and until the minute's
      // samples were really taken (50 success times of the nvidia-smi collector at 1 s; a
      // slow machine takes longer for them): a process per sample would show by then.
      const t0 = Date.now();
      const samples = new Set<number>();
      while (Date.now() - t0 < 60_000 || samples.size < 50) {
        const scrape = await cli.get('/metrics');
        expect(scrape.status).toBe(200);
        const at = seriesValue(scrape.body, 'gpulse_collector_last_success_timestamp_seconds', {
          collector: 'nvidia-smi',
        });
        if (at !== undefined) samples.add(at);
        if (Date.now() - t0 > 100_000) throw new Error(`only ${samples.size} samples in 100 s`);
        await new Promise((r) => setTimeout(r, 250));
      }
      const starts = readFileSync(log, 'utf8').trim().split('\n');
      expect(starts.length).toBeLessThanOrEqual(5);
      expect(starts.some((s) => s.startsWith('--query-gpu='))).toBe(true);
      expect(starts.some((s) => s.startsWith('--query-compute-apps='))).toBe(true);
    } finally {
      expect((await cli.stop()).code).toBe(0);
    }
  }, 150_000);
});
