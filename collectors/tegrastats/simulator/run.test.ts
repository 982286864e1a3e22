import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { JETSON_DEVICES } from '../../simulation/jetson.js';
import { parseTegrastatsLine, type TegrastatsReading } from '../parse.js';
import { runSimulatedTegrastats } from './harness.js';
import { formatCelsius, renderLine, tegrastatsTimestamp } from './render.js';
import { USAGE } from './run.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
const NOW = Date.UTC(2026, 6, 14, 8, 0, 0);
const dir = mkdtempSync(join(tmpdir(), 'gpulse-tegra-sim-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sim(profile: string, extra: Record<string, string> = {}, agoMs = 60_000) {
  return { GPULSE_SIM_PROFILE: profile, GPULSE_SIM_START: String(NOW - agoMs), ...extra };
}

function parsed(line: string): TegrastatsReading {
  const r = parseTegrastatsLine(line);
  if (!r) throw new Error(`unparsable: ${line}`);
  return r;
}

/** The shape of a line: which fields, sensors, rails, cores and engines it has, not their values. */
function shape(r: TegrastatsReading) {
  return {
    timestamp: r.timestamp !== undefined,
    ram: r.ram && Object.keys(r.ram).sort(),
    swap: r.swap && Object.keys(r.swap).sort(),
    iram: r.iram && Object.keys(r.iram).sort(),
    cpus: r.cpus.map((c) => (c.online ? Object.keys(c).sort().join() : 'off')),
    gpu: r.gpu && Object.keys(r.gpu).sort(),
    gpcs: r.gpu?.frequenciesHz?.length,
    emc: r.emc && Object.keys(r.emc).sort(),
    engines: r.engines.map((e) => `${e.name}:${Object.keys(e).sort().join()}`),
    sensors: r.temperatures.map((t) => t.sensor),
    rails: r.rails.map((x) => x.rail),
    unknown: r.unknown,
  };
}

describe.each(Object.values(JETSON_DEVICES))('profile $profile', (device) => {
  const captured = readFileSync(join(FIXTURES, device.tegrastatsCapture), 'utf8').split('\n')[0]!;

  it('prints lines of exactly the captured format, one per interval', async () => {
    const run = await runSimulatedTegrastats(['--interval', '1000'], sim(device.profile), {
      nowMs: NOW,
      maxLines: 5,
    });
    expect(run.code).toBe(0);
    expect(run.lines).toHaveLength(5);
    expect(run.times).toEqual([1, 2, 3, 4, 5].map((k) => NOW + k * 1000));
    // The sensors that read -256 C in the capture stay offline but for the GPU's, which is busy.
    const want = shape(parsed(captured));
    for (const line of run.lines) expect(shape(parsed(line))).toEqual(want);
    // Same bytes outside the numbers (NC rails, offline sensors, engines, spacing).
    const skeleton = (l: string) => l.replace(/-?\d+(\.\d+)?/g, '#');
    for (const line of run.lines) {
      expect(skeleton(line)).toBe(skeleton(captured));
    }
  });

  it('runs the board at its load point while its inference process runs', async () => {
    const run = await runSimulatedTegrastats(['--interval', '5000'], sim(device.profile), {
      nowMs: NOW,
      maxLines: 3,
    });
    const r = parsed(run.lines[2]!);
    expect(r.gpu!.utilizationRatio!).toBeGreaterThan(0.5);
    expect(r.gpu!.frequencyHz).toBe(device.load.gpuMHz * 1e6);
    expect(r.ram!.usedBytes).toBe(device.load.ramUsedMB * 1024 * 1024);
    const gpuTemp = r.temperatures.find((t) => t.sensor.toUpperCase() === 'GPU')?.celsius;
    expect(gpuTemp).toBeGreaterThan(device.idle.gpuC);
    expect(gpuTemp).toBeLessThanOrEqual(device.load.gpuC + 1);
  });

  it('sits at its idle point with no process (GPULSE_SIM_PROCESSES empty)', async () => {
    const run = await runSimulatedTegrastats(
      ['--interval', '1000'],
      sim(device.profile, { GPULSE_SIM_PROCESSES: '' }),
      { nowMs: NOW, maxLines: 1 },
    );
    const r = parsed(run.lines[0]!);
    expect(r.gpu).toMatchObject({
      utilizationRatio: device.idle.gpuPercent / 100,
      frequencyHz: device.idle.gpuMHz * 1e6,
    });
    expect(r.ram!.usedBytes).toBe(device.idle.ramUsedMB * 1024 * 1024);
  });
});

describe('simulated tegrastats against the world', () => {
  it('on an idle Orin prints the capture itself, but for the time and clocks of the idle cores', async () => {
    const run = await runSimulatedTegrastats(
      ['--interval', '1000'],
      sim('jetson-orin', { GPULSE_SIM_PROCESSES: '' }),
      { nowMs: NOW, maxLines: 1 },
    );
    const r = parsed(run.lines[0]!);
    expect(r.temperatures.find((t) => t.sensor === 'GPU')).toEqual({ sensor: 'GPU' });
    expect(r.timestamp).toBe(tegrastatsTimestamp(NOW + 1000));
    expect(r.rails.find((x) => x.rail === 'VDD_GPU_SOC')).toEqual({
      rail: 'VDD_GPU_SOC',
      currentWatts: 2.34,
      averageWatts: 2.34,
    });
  });

  it('thermal-throttle: the GPU heats past the slowdown point and its clock drops', async () => {
    const env = sim(
      'jetson-nano',
      { GPULSE_SIM_SCENARIO: 'thermal-throttle:after=0s,for=60s' },
      30_000,
    );
    const run = await runSimulatedTegrastats(['--interval', '1000'], env, {
      nowMs: NOW,
      maxLines: 1,
    });
    const r = parsed(run.lines[0]!);
    expect(r.temperatures.find((t) => t.sensor === 'GPU')!.celsius).toBeGreaterThan(87);
    expect(r.gpu!.frequencyHz!).toBeLessThan(921e6);
  });

  it('memory-full: RAM climbs to the total and the largest free blocks run out', async () => {
    const env = sim('jetson-tx2', { GPULSE_SIM_SCENARIO: 'memory-full:after=0s,ramp=10s' }, 30_000);
    const run = await runSimulatedTegrastats(['--interval', '1000'], env, {
      nowMs: NOW,
      maxLines: 1,
    });
    const r = parsed(run.lines[0]!);
    expect(r.ram!.usedBytes).toBe(r.ram!.totalBytes);
    expect(r.ram!.largestFreeBlocks).toBe(0);
  });

  it('hang: prints nothing while hung, then goes on', async () => {
    const env = sim('jetson-orin', { GPULSE_SIM_SCENARIO: 'hang:after=0s,for=10s' }, 0);
    const run = await runSimulatedTegrastats(['--interval', '1000'], env, {
      nowMs: NOW,
      maxLines: 2,
    });
    expect(run.times[0]).toBeGreaterThanOrEqual(NOW + 10_000);
    expect(run.lines).toHaveLength(2);
  });

  it('keeps each rail average the mean of what it printed since it started', async () => {
    const run = await runSimulatedTegrastats(['--interval', '700'], sim('jetson-nano'), {
      nowMs: NOW,
      maxLines: 6,
    });
    const rails = run.lines.map((l) => parsed(l).rails.find((x) => x.rail === 'POM_5V_GPU')!);
    rails.forEach((r, k) => {
      const mean = rails.slice(0, k + 1).reduce((s, x) => s + x.currentWatts, 0) / (k + 1);
      expect(Math.abs(r.averageWatts - mean)).toBeLessThanOrEqual(0.0015);
    });
  });
});

describe('capture replay (GPULSE_SIM_CAPTURE)', () => {
  it('prints the log line by line, from the top again at its end', async () => {
    const file = join(
      FIXTURES,
      'nano-4gb__l4t-32-jetpack4__pom-5v-rails__iram__nvdec-vic__jetson-inference-1206.log',
    );
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    const run = await runSimulatedTegrastats(
      ['--interval', '500'],
      { GPULSE_SIM_CAPTURE: file },
      {
        nowMs: NOW,
        maxLines: 6,
      },
    );
    expect(run.lines).toEqual([...lines, lines[0], lines[1]]);
    expect(run.times).toEqual([1, 2, 3, 4, 5, 6].map((k) => NOW + k * 500));
  });

  it('refuses a file that is not tegrastats output', async () => {
    const bad = join(dir, 'not-tegrastats.csv');
    writeFileSync(bad, 'timestamp, index, name\n2026/01/01 00:00:00.000, 0, NVIDIA H100\n');
    const run = await runSimulatedTegrastats([], { GPULSE_SIM_CAPTURE: bad }, { nowMs: NOW });
    expect(run.code).toBe(255);
    expect(run.stderr).toMatch(/is not tegrastats output/);
  });
});

describe('command line', () => {
  it('prints usage for --help', async () => {
    const run = await runSimulatedTegrastats(['--help'], {}, { nowMs: NOW });
    expect(run).toMatchObject({ code: 0, lines: USAGE.trim().split('\n') });
  });

  it.each([
    [['--interval', '0'], /--interval needs a positive number/],
    [['--interval'], /--interval needs a positive number/],
    [['--logfile', '/tmp/x'], /option --logfile is not simulated/],
  ])('refuses %j on stderr with exit 255', async (argv, message) => {
    const run = await runSimulatedTegrastats(argv, {}, { nowMs: NOW });
    expect(run.code).toBe(255);
    expect(run.stderr).toMatch(message);
  });

  it('accepts --interval=N and defaults to 1000 ms', async () => {
    const a = await runSimulatedTegrastats(['--interval=250'], sim('jetson-orin'), {
      nowMs: NOW,
      maxLines: 2,
    });
    expect(a.times).toEqual([NOW + 250, NOW + 500]);
    const b = await runSimulatedTegrastats([], sim('jetson-orin'), { nowMs: NOW, maxLines: 1 });
    expect(b.times).toEqual([NOW + 1000]);
  });

  it('refuses a profile that is not a Jetson', async () => {
    const run = await runSimulatedTegrastats([], { GPULSE_SIM_PROFILE: 'h100-8x' }, { nowMs: NOW });
    expect(run.code).toBe(255);
    expect(run.stderr).toMatch(/"h100-8x" is not a Jetson.*jetson-orin/);
  });
});

describe('renderLine', () => {
  it('reproduces a captured line byte for byte from its own values', () => {
    for (const file of [
      'tx2__l4t-32-jetpack4__denver-off__vdd-sys-rails__onnxruntime-3240.log',
      'nano-4gb__l4t-32-jetpack4__pom-5v-rails__iram__nvdec-vic__jetson-inference-1206.log',
      'agx-orin-64gb__jetpack5-6__timestamp-prefix__gpc-array__sensor-minus-256C__jetson-exporter-14.log',
    ]) {
      const line = readFileSync(join(FIXTURES, file), 'utf8').split('\n')[0]!;
      const r = parsed(line);
      const mib = 1024 * 1024;
      const out = renderLine(line, {
        timestamp: r.timestamp ?? '',
        ramUsedMB: r.ram!.usedBytes / mib,
        ramLargestFreeBlocks: r.ram!.largestFreeBlocks!,
        cpus: r.cpus
          .filter((c) => c.online)
          .map((c) => ({ percent: c.utilizationRatio! * 100, mhz: c.frequencyHz! / 1e6 })),
        emcPercent: r.emc!.utilizationRatio! * 100,
        gpuPercent: r.gpu!.utilizationRatio! * 100,
        gpuMHz: r.gpu!.frequencyHz! / 1e6,
        temperature: (_s, c) => c,
        rail: (name) => {
          const x = r.rails.find((y) => y.rail === name);
          return x && { currentMw: x.currentWatts * 1000, averageMw: x.averageWatts * 1000 };
        },
      });
      expect(out).toBe(line);
    }
  });

  it('formats °C with at most the captured decimals', () => {
    expect(formatCelsius(44.5625, '44.562')).toBe('44.563');
    expect(formatCelsius(41.2, '41.25')).toBe('41.2');
    expect(formatCelsius(39.6, '37')).toBe('40');
  });
});
