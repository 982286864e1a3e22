// End-to-end GPU health: the built CLI against the simulated nvidia-smi and dcgmi, a kernel log
// file in kmsg format, and (for dcgm-exporter compatibility) a real Prometheus and promtool.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { parseExporterCsv } from '../../collectors/dcgm/catalogue.js';
import { NEVER_SUPPLIED } from '../../collectors/dcgm/compat.js';
import {
  allSeries,
  freePort,
  REPO_ROOT,
  seriesValue,
  type CliProcess,
  startSimulate,
} from '../helpers/cli.js';
import { describeWithTools, findTool, tools } from '../helpers/tools.js';

const running: CliProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop()));
});
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'gpulse-health-e2e-'));
  dirs.push(d);
  return d;
}

async function simulate(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliProcess> {
  const cli = await startSimulate(args, { GPULSE_DCGM_INTERVAL: '500ms', ...env });
  running.push(cli);
  return cli;
}

interface GpusApi {
  gpus: {
    index: number;
    uuid: string;
    sources: string[];
    values: Record<string, unknown>;
    throttle: {
      active: string[];
      episode: unknown;
      lastEpisode: {
        start: string;
        end: string;
        durationSeconds: number;
        reasons: string[];
        severity: string;
        peakTemperatureCelsius: number;
        peakPowerWatts: number;
      } | null;
    };
    xids: {
      total: Record<string, number>;
      recent: { xid: number; severity: string; source: string; text: string }[];
    };
  }[];
}

async function gpusApi(cli: CliProcess): Promise<GpusApi> {
  const r = await cli.get('/api/v1/gpus');
  expect(r.status).toBe(200);
  return JSON.parse(r.body) as GpusApi;
}

/** What `fn` gives once it gives something (it answers undefined while not there yet). */
function waitFor<T>(fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  return vi.waitFor(
    async () => {
      const v = await fn();
      if (v === undefined) throw new Error(`condition not met in ${ms} ms`);
      return v;
    },
    { timeout: ms, interval: 200 },
  );
}

/**
 * Waits until `collector` has had `n` more successful samples than now: its success timestamp
 * takes `n` new values (each scrape after one shows the snapshot the derivers ran on).
 */
async function moreSamples(cli: CliProcess, collector: string, n: number): Promise<void> {
  const stamp = (b: string) =>
    seriesValue(b, 'gpulse_collector_last_success_timestamp_seconds', { collector });
  const seen = new Set<number>();
  const start = stamp((await cli.get('/metrics')).body);
  await cli.waitForMetrics((b) => {
    const t = stamp(b);
    if (t !== undefined && t !== start) seen.add(t);
    return seen.size >= n;
  }, 30_000);
}

const HOT = { reason: 'hw_thermal_slowdown' };

describe('throttling in the simulated thermal-throttle scenario', () => {
  it('nvidia-smi path: throttle_active 1, a growing throttle-seconds counter, exactly one episode with start and end', async () => {
    const kmsg = join(tempDir(), 'kmsg');
    writeFileSync(kmsg, '');
    const cli = await simulate(
      [
        '--profile',
        'h100',
        '--scenario',
        'thermal-throttle:after=12s,for=10s',
        '--metrics-compat',
        'dcgm',
      ],
      {
        GPULSE_KMSG: kmsg,
      },
    );
    // Before the episode: the driver's counters and DCGM's thermal violation counter.
    const thermalNs = (b: string) =>
      seriesValue(b, 'DCGM_FI_DEV_THERMAL_VIOLATION', { GPU_I_ID: '' });
    const calm = await cli.waitForMetrics(
      (b) =>
        seriesValue(b, 'gpulse_gpu_throttle_seconds_total', HOT) !== undefined &&
        thermalNs(b) !== undefined,
      30_000,
    );
    const hot = await cli.waitForMetrics(
      (b) => seriesValue(b, 'gpulse_gpu_throttle_active', HOT) === 1,
      30_000,
    );
    const first = seriesValue(hot, 'gpulse_gpu_throttle_seconds_total', HOT)!;
    const grown = await cli.waitForMetrics(
      (b) => (seriesValue(b, 'gpulse_gpu_throttle_seconds_total', HOT) ?? 0) > first + 1,
    );
    expect(seriesValue(grown, 'gpulse_gpu_throttle_active', HOT)).toBe(1);
    // Over: the flag drops, the counter stays.
    const cool = await cli.waitForMetrics(
      (b) => seriesValue(b, 'gpulse_gpu_throttle_active', HOT) === 0,
      30_000,
    );
    const total = seriesValue(cool, 'gpulse_gpu_throttle_seconds_total', HOT)!;
    expect(total).toBeGreaterThan(8);
    // A 10 s episode adds at most 10 s to every throttle counter, whichever surface: the
    // driver's per-reason seconds and DCGM's thermal violation (SW and HW thermal overlap: the
    // class counts each second once, not twice).
    for (const reason of ['hw_thermal_slowdown', 'sw_thermal_slowdown']) {
      const grew =
        seriesValue(cool, 'gpulse_gpu_throttle_seconds_total', { reason })! -
        seriesValue(calm, 'gpulse_gpu_throttle_seconds_total', { reason })!;
      expect(grew, reason).toBeLessThanOrEqual(10);
      // (Read before the episode began, unless the agent started late on a loaded machine.)
      if (seriesValue(calm, 'gpulse_gpu_throttle_active', HOT) === 0)
        expect(grew).toBeGreaterThan(8);
    }
    // DCGM's dmon lags nvidia-smi by up to an interval: wait until it has caught up.
    const nativeGrew = total - seriesValue(calm, 'gpulse_gpu_throttle_seconds_total', HOT)!;
    const settled = await cli.waitForMetrics(
      (b) => (thermalNs(b) ?? 0) - thermalNs(calm)! >= (nativeGrew - 1) * 1e9,
      10_000,
    );
    expect(thermalNs(settled)! - thermalNs(calm)!).toBeLessThanOrEqual(10e9);
    const api = await waitFor(async () => {
      const a = await gpusApi(cli);
      return a.gpus[0]?.throttle.lastEpisode ? a : undefined;
    });
    const ep = api.gpus[0]!.throttle.lastEpisode!;
    expect(ep.reasons).toEqual(['hw_thermal_slowdown', 'sw_thermal_slowdown']);
    expect(ep.severity).toBe('critical');
    expect(Date.parse(ep.end) - Date.parse(ep.start)).toBe(ep.durationSeconds * 1000);
    // The scenario lasts 10 s; samples every 500 ms bound the measured duration.
    expect(ep.durationSeconds).toBeGreaterThanOrEqual(9);
    expect(ep.durationSeconds).toBeLessThanOrEqual(11.5);
    expect(ep.peakTemperatureCelsius).toBeGreaterThan(80);
    const episodes = await waitFor(async () => {
      const e = cli.logs.filter((r) => r.event === 'gpu.throttle_episode');
      return Promise.resolve(e.length >= 1 ? e : undefined);
    });
    // Exactly one: three more nvidia-smi samples (each a new success timestamp) go through the
    // health deriver after the episode was logged, and none logs a second one.
    await moreSamples(cli, 'nvidia-smi', 3);
    expect(cli.logs.filter((r) => r.event === 'gpu.throttle_episode')).toHaveLength(1);
    expect(episodes[0]).toMatchObject({ severity: 'critical', gpu: '0', source: 'gpu-health' });
    expect(String(episodes[0]!.msg)).toMatch(
      /^GPU 0 was throttled for \d+\.\d s \(hw_thermal_slowdown, sw_thermal_slowdown\); peak \d+ °C, \d+ W$/,
    );
    expect(cli.logs.filter((r) => r.event === 'gpu.throttle_start')).toHaveLength(1);
  }, 90_000);

  it('DCGM-only path: standard series from DCGM, throttle seconds integrated from samples', async () => {
    const cli = await simulate(
      [
        '--profile',
        'h100',
        '--nvidia-smi-mode',
        'off',
        '--scenario',
        'thermal-throttle:after=2s,for=30s',
      ],
      { GPULSE_KMSG_MODE: 'off' },
    );
    const body = await cli.waitForMetrics(
      (b) => (seriesValue(b, 'gpulse_gpu_throttle_seconds_total', HOT) ?? 0) > 2,
      40_000,
    );
    expect(seriesValue(body, 'gpulse_collector_up', { collector: 'dcgm' })).toBe(1);
    expect(body).not.toContain('collector="nvidia-smi"');
    expect(seriesValue(body, 'gpulse_gpu_throttle_active', HOT)).toBe(1);
    // Served from DCGM alone: the identity and the device values nvidia-smi would give.
    expect(allSeries(body, 'gpulse_gpu_utilization_ratio')).toHaveLength(1);
    expect(seriesValue(body, 'gpulse_gpu_memory_used_bytes')).toBeGreaterThan(0);
    expect(seriesValue(body, 'gpulse_gpu_power_draw_watts')).toBeGreaterThan(0);
    expect(seriesValue(body, 'gpulse_gpu_sm_active_ratio')).toBeGreaterThan(0);
    const api = await gpusApi(cli);
    expect(api.gpus[0]!.sources).toEqual(['dcgm']);
    expect(api.gpus[0]!.throttle.active).toEqual(['sw_thermal_slowdown', 'hw_thermal_slowdown']);
  }, 90_000);
});

// The simulated H100's bus id (00000000:00:09.0, a cloud VM's), as the kernel prints it.
const BUS = '0000:00:09';
const OLD_XID = `NVRM: Xid (PCI:${BUS}): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.`;

function kmsgRecord(seq: number, usec: number, message: string): string {
  return `3,${seq},${usec},-;${message}\n`;
}

function uptimeUsec(): number {
  return Math.round(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1e6);
}

describe('Xid errors from a kernel log file', () => {
  it('counts Xids logged after the agent started, by GPU and severity, and not the history', async () => {
    const kmsg = join(tempDir(), 'kmsg');
    // History: logged an hour "before" now; must not count.
    writeFileSync(kmsg, kmsgRecord(1, Math.max(0, uptimeUsec() - 3_600_000_000), OLD_XID));
    const cli = await simulate(['--profile', 'h100'], {
      GPULSE_KMSG: kmsg,
      GPULSE_DCGM_MODE: 'off',
    });
    await cli.waitForMetrics(
      (b) => seriesValue(b, 'gpulse_collector_up', { collector: 'kmsg' }) === 1,
    );
    const uuid = allSeries(
      await cli.waitForMetrics((b) => b.includes('gpulse_gpu_info{')),
      'gpulse_gpu_info',
    )[0]!.labels.uuid!;
    appendFileSync(
      kmsg,
      kmsgRecord(
        2,
        uptimeUsec(),
        `NVRM: Xid (PCI:${BUS}): 48, pid='<unknown>', name=<unknown>, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at physAddr 0x12bac1c3e0 partition 2`,
      ) +
        kmsgRecord(
          3,
          uptimeUsec(),
          `NVRM: Xid (PCI:${BUS}): 13, pid=4100, name=python, Graphics SM Warp Exception on (GPC 9, TPC 1, SM 1): Out Of Range Address`,
        ) +
        kmsgRecord(
          4,
          uptimeUsec(),
          `NVRM: Xid (PCI:${BUS}): 13, pid=4100, name=python, Graphics Exception: ESR 0x546fb0=0x11f000e`,
        ),
    );
    const body = await cli.waitForMetrics(
      (b) => allSeries(b, 'gpulse_gpu_xid_errors_total').length === 2,
    );
    expect(
      seriesValue(body, 'gpulse_gpu_xid_errors_total', {
        gpu: '0',
        uuid,
        xid: '48',
        severity: 'critical',
      }),
    ).toBe(1);
    expect(
      seriesValue(body, 'gpulse_gpu_xid_errors_total', {
        gpu: '0',
        uuid,
        xid: '13',
        severity: 'info',
      }),
    ).toBe(2);
    expect(seriesValue(body, 'gpulse_gpu_xid_errors_total', { xid: '79' })).toBeUndefined();
    expect(seriesValue(body, 'gpulse_kmsg_records_total', { age: 'history' })).toBe(1);
    // Logs arrive through a pipe: wait for them rather than race them.
    const events = await waitFor(async () => {
      const e = cli.logs.filter((r) => r.event === 'gpu.xid');
      return Promise.resolve(e.length >= 3 ? e : undefined);
    });
    expect(events.map((e) => [e.severity, e.gpu, e.uuid])).toEqual([
      ['critical', '0', uuid],
      ['info', '0', uuid],
      ['info', '0', uuid],
    ]);
    const api = await gpusApi(cli);
    expect(api.gpus[0]!.xids.total).toEqual({ critical: 1, info: 2 });
    expect(api.gpus[0]!.xids.recent.map((x) => x.xid)).toEqual([48, 13, 13]);
  }, 60_000);
});

describe('Xid from DCGM when the kernel log has none', () => {
  it('a GPU falling off the bus: DCGM says Xid 79, counted once as critical after the grace period', async () => {
    const kmsg = join(tempDir(), 'kmsg');
    writeFileSync(kmsg, '');
    const cli = await simulate(['--profile', 'h200', '--scenario', 'gpu-lost:after=12s'], {
      GPULSE_KMSG: kmsg,
    });
    const uuid = allSeries(
      await cli.waitForMetrics((b) => b.includes('gpulse_gpu_info{')),
      'gpulse_gpu_info',
    )[0]!.labels.uuid!;
    const body = await cli.waitForMetrics(
      (b) => allSeries(b, 'gpulse_gpu_xid_errors_total').length > 0,
      60_000,
    );
    expect(allSeries(body, 'gpulse_gpu_xid_errors_total')).toEqual([
      { labels: { gpu: '0', uuid, xid: '79', severity: 'critical' }, value: 1 },
    ]);
    const event = await waitFor(async () =>
      Promise.resolve(cli.logs.find((r) => r.event === 'gpu.xid')),
    );
    expect(event).toMatchObject({ severity: 'critical', source: 'dcgm', gpu: '0', uuid });
    expect(String(event.msg)).toBe('Xid 79 on GPU 0 (0000:83:00): GPU has fallen off the bus');
  }, 90_000);
});

describe('DCGM absent', () => {
  it('says so once and keeps serving the nvidia-smi values', async () => {
    const cli = await simulate(['--profile', 'h200'], {
      GPULSE_SIM_DCGM: 'absent',
      GPULSE_KMSG_MODE: 'off',
      GPULSE_LOG_LEVEL: 'debug',
    });
    const body = await cli.waitForMetrics(
      (b) =>
        b.includes(
          'gpulse_collector_status{collector="dcgm",status="no_data",reason="no_host_engine"} 1',
        ) && b.includes('gpulse_gpu_info{'),
    );
    expect(seriesValue(body, 'gpulse_collector_up', { collector: 'nvidia-smi' })).toBe(1);
    expect(allSeries(body, 'gpulse_gpu_sm_active_ratio')).toEqual([]);
    // Said once: three more starts of the DCGM collector fail (each retry is logged at debug).
    await cli.waitForRetries('dcgm', 'no_host_engine', 3);
    const said = cli.logs.filter((r) => r.collector === 'dcgm' && r.reason === 'no_host_engine');
    expect(said).toHaveLength(1);
    expect(String(said[0]!.msg)).toMatch(/no DCGM host engine answers at localhost/);
  }, 60_000);
});

/** A Prometheus server of our own on a free loopback port, scraping `target` every second. */
async function startPrometheus(
  target: string,
): Promise<{ base: string; proc: ChildProcess; stop: () => Promise<void> }> {
  const dir = tempDir();
  const port = await freePort();
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: gpulse\n    static_configs:\n      - targets: ['${target}']\n`,
  );
  const proc = spawn(
    findTool('prometheus')!,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const base = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited;
  };
  try {
    await waitFor(async () => {
      if (proc.exitCode !== null) throw new Error(`prometheus exited: ${stderr.slice(-2000)}`);
      try {
        return (await fetch(`${base}/-/ready`)).ok ? true : undefined;
      } catch {
        return undefined;
      }
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { base, proc, stop };
}

interface PromSeries {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(base: string, promql: string): Promise<PromSeries[]> {
  const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as { status: string; data: { result: PromSeries[] } };
  expect(body.status).toBe('success');
  return body.data.result;
}

describeWithTools(
  'dcgm-exporter compatibility against a real Prometheus',
  tools('prometheus', 'promtool'),
  () => {
    it('every default dcgm-exporter field gpulse can supply comes back from Prometheus under its DCGM name, with dcgm-exporter labels', async () => {
      const kmsg = join(tempDir(), 'kmsg');
      writeFileSync(kmsg, '');
      const cli = await simulate(['--metrics-compat', 'dcgm'], { GPULSE_KMSG: kmsg });
      const scraped = await cli.waitForMetrics(
        (b) =>
          allSeries(b, 'DCGM_FI_PROF_PCIE_RX_BYTES').length === 8 &&
          allSeries(b, 'DCGM_FI_DEV_XID_ERRORS').length === 8 &&
          // The info series waits for the first -q -x document.
          allSeries(b, 'gpulse_gpu_info').length === 8,
        40_000,
      );
      const prom = await startPrometheus(`127.0.0.1:${cli.port}`);
      try {
        const csv = parseExporterCsv(
          readFileSync(
            join(REPO_ROOT, 'collectors/dcgm/fixtures/dcgm-exporter__default-counters.csv'),
            'utf8',
          ),
        );
        const metrics = csv.filter((r) => r.enabled && r.promType !== 'label').map((r) => r.name);
        expect(metrics).toHaveLength(25);
        const supplied = metrics.filter((m) => !(NEVER_SUPPLIED as readonly string[]).includes(m));
        expect(metrics.filter((m) => !supplied.includes(m))).toEqual([
          'DCGM_FI_DEV_VGPU_LICENSE_STATUS',
        ]);
        const uuids = new Set(allSeries(scraped, 'gpulse_gpu_info').map((s) => s.labels.uuid));
        await waitFor(async () =>
          (await query(prom.base, 'DCGM_FI_PROF_PCIE_RX_BYTES')).length === 8 ? true : undefined,
        );
        for (const name of supplied) {
          const result = await query(prom.base, name);
          expect(result.length, name).toBe(8);
          for (const s of result) {
            expect(s.metric.__name__).toBe(name);
            expect(s.metric.gpu).toMatch(/^[0-7]$/);
            expect(uuids.has(s.metric.UUID), `${name} UUID ${s.metric.UUID}`).toBe(true);
            expect(s.metric.device).toBe(`nvidia${s.metric.gpu}`);
            expect(s.metric.modelName).toBe('NVIDIA H100 80GB HBM3');
            expect(s.metric.Hostname).toBe(hostname());
            expect(s.metric.pci_bus_id).toMatch(/^00000000:[0-9A-F]{2}:00\.0$/);
            expect(s.metric.DCGM_FI_DRIVER_VERSION).toBe('590.48.01');
            expect(Number(s.value[1])).toBeGreaterThanOrEqual(0);
          }
        }
        // Units as dcgm-exporter's (MiB, MHz): the same numbers as gpulse's base-unit series.
        // (Utilization and power are sampled by DCGM and nvidia-smi at different instants.)
        for (const [compat, native] of [
          ['DCGM_FI_DEV_FB_USED * 1048576', 'gpulse_gpu_memory_used_bytes'],
          ['DCGM_FI_DEV_MEM_CLOCK * 1e6', 'gpulse_gpu_clock_hz{clock="memory"}'],
        ] as const) {
          const diff = await query(
            prom.base,
            `${compat} - on(UUID) label_replace(${native}, "UUID", "$1", "uuid", "(.*)")`,
          );
          expect(diff, compat).toHaveLength(8);
          for (const s of diff) expect(Number(s.value[1]), compat).toBe(0);
        }
        const util = await query(prom.base, 'DCGM_FI_DEV_GPU_UTIL');
        for (const s of util) expect(Number(s.value[1])).toBeLessThanOrEqual(100);
      } finally {
        await prom.stop();
      }
    }, 120_000);

    it('compat names pass promtool check metrics but for what dcgm-exporter’s own naming implies (modelName, PCIE_REPLAY_COUNTER)', async () => {
      const cli = await simulate(['--profile', 'h200', '--metrics-compat', 'dcgm'], {
        GPULSE_KMSG_MODE: 'off',
      });
      const body = await cli.waitForMetrics(
        (b) => allSeries(b, 'DCGM_FI_PROF_SM_ACTIVE').length === 1,
        40_000,
      );
      const r = spawnSync(findTool('promtool')!, ['check', 'metrics'], {
        input: body,
        encoding: 'utf8',
      });
      const findings = (r.stdout + r.stderr).trim().split('\n').filter(Boolean);
      const camel = findings.filter((l) =>
        /^DCGM_FI_\w+ label names should be written in 'snake_case' not 'camelCase'$/.test(l),
      );
      // dcgm-exporter's own names carry two findings gpulse cannot change without breaking
      // dashboards: the `modelName` label on every family, and "COUNTER" inside one name.
      expect(findings.filter((l) => !camel.includes(l))).toEqual([
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER metric name should not include type 'counter'",
      ]);
      const compatFamilies = new Set(
        body
          .split('\n')
          .filter((l) => l.startsWith('DCGM_FI_'))
          .map((l) => l.split('{')[0]),
      );
      expect(new Set(camel.map((l) => l.split(' ')[0]))).toEqual(compatFamilies);
      expect(r.status).toBe(3);
    }, 60_000);
  },
);
