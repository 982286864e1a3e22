// Acceptance: a stand-in tegrastats answering from a real log drives the running agent, and
// /metrics carries exactly that log's values; `gpulse simulate --profile jetson-*` shows a
// Jetson as one GPU, even where nvidia-smi also sees it.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Sample } from '../../agent/core/types.js';
import type { JetsonIdentity } from '../../collectors/tegrastats/identity.js';
import { parseTegrastatsLine } from '../../collectors/tegrastats/parse.js';
import { tegrastatsSamples } from '../../collectors/tegrastats/series.js';
import {
  allSeries,
  REPO_ROOT,
  seriesValue,
  SIM_NVIDIA_SMI,
  startCli,
  type CliProcess,
} from '../helpers/cli.js';

const FIXTURES = join(REPO_ROOT, 'collectors', 'tegrastats', 'fixtures');
const SIM_TEGRASTATS = join(
  REPO_ROOT,
  'dist',
  'collectors',
  'tegrastats',
  'simulator',
  'tegrastats.js',
);
const dir = mkdtempSync(join(tmpdir(), 'gpulse-jetson-e2e-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const running: CliProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop()));
});

/** True when every expected sample is in the exposition with exactly its value. */
function matches(body: string, expected: readonly Sample[]): boolean {
  return expected.every((s) => seriesValue(body, s.desc.name, s.labels) === s.value);
}

const CAPTURES = [
  'tx2__l4t-32-jetpack4__denver-off__vdd-sys-rails__onnxruntime-3240.log',
  'nano-4gb__l4t-32-jetpack4__pom-5v-rails__iram__nvdec-vic__jetson-inference-1206.log',
  'agx-orin-64gb__jetpack5-6__timestamp-prefix__gpc-array__sensor-minus-256C__jetson-exporter-14.log',
];

describe('a stand-in tegrastats replaying a real log drives the agent', () => {
  it.each(CAPTURES)(
    '%s: /metrics equals the log line by line',
    async (file) => {
      const log = join(FIXTURES, file);
      const starts = join(dir, `${file}.starts`);
      const standIn = join(dir, `tegrastats-${CAPTURES.indexOf(file)}`);
      // Counts every start, then becomes the simulated tegrastats replaying the capture.
      writeFileSync(
        standIn,
        `#!/bin/sh\necho "$*" >> '${starts}'\nexec '${process.execPath}' '${SIM_TEGRASTATS}' "$@"\n`,
      );
      chmodSync(standIn, 0o755);
      const model = 'NVIDIA Jetson (replayed capture)';
      const cli = await startCli(['run', '--tegrastats-interval', '250ms'], {
        GPULSE_TEGRASTATS: standIn,
        GPULSE_SIM_CAPTURE: log,
        GPULSE_NVIDIA_SMI_MODE: 'off',
        GPULSE_TEGRASTATS_ROOT: join(dir, 'no-device-tree'),
        GPULSE_JETSON_MODEL: model,
        GPULSE_LOG_LEVEL: 'info',
      });
      running.push(cli);
      const identity: JetsonIdentity = { uuid: 'jetson-0', model, uuidSource: 'fallback' };
      const lines = readFileSync(log, 'utf8').split('\n').filter(Boolean);
      const expected = lines.map((l) => tegrastatsSamples(parseTegrastatsLine(l)!, identity));
      // Every line of the log shows up on /metrics, each with all of its values.
      const seen = new Set<number>();
      const t0 = Date.now();
      while (seen.size < lines.length && Date.now() - t0 < 20_000) {
        const body = (await cli.get('/metrics')).body;
        expected.forEach((e, k) => {
          if (matches(body, e)) {
            seen.add(k);
            // Nothing else of the Jetson families: no stale or made-up series beside the line's.
            for (const name of ['gpulse_power_rail_watts', 'gpulse_jetson_temperature_celsius']) {
              expect(allSeries(body, name)).toHaveLength(
                e.filter((s) => s.desc.name === name).length,
              );
            }
            expect(allSeries(body, 'gpulse_gpu_info')).toHaveLength(1);
          }
        });
        await new Promise((r) => setTimeout(r, 60));
      }
      expect([...seen].sort()).toEqual(lines.map((_, k) => k));
      const body = (await cli.get('/metrics')).body;
      expect(seriesValue(body, 'gpulse_collector_up', { collector: 'tegrastats' })).toBe(1);
      expect(seriesValue(body, 'gpulse_tegrastats_rejected_lines_total')).toBe(0);
      // One long-lived tegrastats, not a process per sample.
      expect(readFileSync(starts, 'utf8')).toBe('--interval 250\n');
    },
    60_000,
  );
});

describe('gpulse simulate on Jetson profiles', () => {
  it('jetson-orin: one GPU under nvidia-smi\u2019s UUID, nvidia-smi standing down', async () => {
    const uuid = /UUID: (GPU-[0-9a-f-]+)/.exec(
      execFileSync(process.execPath, [SIM_NVIDIA_SMI, '-L'], {
        env: { ...process.env, GPULSE_SIM_PROFILE: 'jetson-orin' },
        encoding: 'utf8',
      }),
    )?.[1];
    expect(uuid).toBeDefined();
    const cli = await startCli(
      ['simulate', '--profile', 'jetson-orin', '--tegrastats-interval', '500ms'],
      { GPULSE_LOG_LEVEL: 'info' },
    );
    running.push(cli);
    const body = await cli.waitForMetrics(
      (b) =>
        allSeries(b, 'gpulse_gpu_info').length > 0 &&
        seriesValue(b, 'gpulse_collector_status', {
          collector: 'nvidia-smi',
          status: 'no_data',
          reason: 'integrated_gpu',
        }) === 1,
      30_000,
    );
    const info = allSeries(body, 'gpulse_gpu_info');
    expect(info).toHaveLength(1);
    expect(info[0]!.labels).toMatchObject({
      gpu: '0',
      uuid,
      name: 'NVIDIA Jetson AGX Orin Developer Kit',
    });
    const labels = { gpu: '0', uuid: uuid! };
    // The simulated board trains with a dip once per 90-150 s of wall clock (evaluation,
    // checkpoint) down to 12-27 % activity, so a scrape may land in it: busy means above idle's 0.
    const utilization = seriesValue(body, 'gpulse_gpu_utilization_ratio', labels);
    expect(utilization).toBeGreaterThan(0.1);
    expect(utilization).toBeLessThanOrEqual(1);
    expect(seriesValue(body, 'gpulse_gpu_memory_total_bytes', labels)).toBe(62801 * 1048576);
    expect(seriesValue(body, 'gpulse_gpu_clock_hz', { ...labels, clock: 'graphics' })).toBe(1301e6);
    expect(allSeries(body, 'gpulse_jetson_gpc_clock_hz')).toHaveLength(2);
    // Between the board's idle (2.34 W, captured) and full-load (17.85 W) draw: a scrape in the dip
    // reads as little as ~4 W, and a unit slip (mW as W) would read a thousand times more.
    const rail = seriesValue(body, 'gpulse_power_rail_watts', { rail: 'VDD_GPU_SOC' });
    expect(rail).toBeGreaterThanOrEqual(2.34);
    expect(rail).toBeLessThanOrEqual(17.85);
    expect(seriesValue(body, 'gpulse_collector_up', { collector: 'tegrastats' })).toBe(1);
  }, 60_000);

  it('jetson-nano: tegrastats alone (JetPack 4 has no nvidia-smi), the GPU rail as GPU power', async () => {
    const cli = await startCli(
      ['simulate', '--profile', 'jetson-nano', '--tegrastats-interval', '500ms'],
      { GPULSE_LOG_LEVEL: 'info' },
    );
    running.push(cli);
    const body = await cli.waitForMetrics(
      (b) => allSeries(b, 'gpulse_gpu_info').length > 0,
      30_000,
    );
    // No nvidia-smi on JetPack 4 and no DCGM on a Jetson: neither collector runs at all.
    const collectors = allSeries(body, 'gpulse_collector_up').map((s) => s.labels.collector);
    expect(collectors).toEqual(expect.arrayContaining(['host', 'tegrastats']));
    expect(collectors).not.toContain('nvidia-smi');
    expect(collectors).not.toContain('dcgm');
    const labels = { gpu: '0', uuid: allSeries(body, 'gpulse_gpu_info')[0]!.labels.uuid! };
    expect(allSeries(body, 'gpulse_gpu_info')[0]!.labels.name).toBe(
      'NVIDIA Jetson Nano Developer Kit',
    );
    expect(seriesValue(body, 'gpulse_gpu_power_draw_watts', labels)).toBe(
      seriesValue(body, 'gpulse_power_rail_watts', { rail: 'POM_5V_GPU' }),
    );
    expect(seriesValue(body, 'gpulse_jetson_iram_total_bytes')).toBe(252 * 1024);
  }, 60_000);

  it('--capture with a tegrastats log replays it (and runs no nvidia-smi)', async () => {
    const log = join(FIXTURES, CAPTURES[2]!);
    const cli = await startCli(['simulate', '--capture', log, '--tegrastats-interval', '300ms'], {
      GPULSE_LOG_LEVEL: 'info',
    });
    running.push(cli);
    const body = await cli.waitForMetrics(
      (b) => allSeries(b, 'gpulse_gpu_info').length > 0,
      30_000,
    );
    expect(seriesValue(body, 'gpulse_jetson_temperature_celsius', { sensor: 'tj' })).toBe(44.343);
    expect(seriesValue(body, 'gpulse_jetson_temperature_sensor_offline', { sensor: 'GPU' })).toBe(
      1,
    );
    expect(
      allSeries(body, 'gpulse_collector_up').some((s) => s.labels.collector === 'nvidia-smi'),
    ).toBe(false);
  }, 60_000);
});
