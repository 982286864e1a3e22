import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runSimulated } from '../../nvidia-smi/simulator/harness.js';
import { parseQueryGpuRow, splitCsvLine } from '../../nvidia-smi/parse-csv.js';
import { fieldById, fieldByName } from '../catalogue.js';
import { parseDiscovery, parseDmonLine } from '../parse-dcgmi.js';
import { discoveryText, dmonHeader, dmonRow } from './output.js';
import { EXIT_NO_HOST_ENGINE, EXIT_PROFILING_NOT_SUPPORTED, runDcgmi } from './run.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
const START = Date.UTC(2026, 0, 5, 12, 0, 0);

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the simulated dcgmi in-process on a fake clock (sleep advances time at once). */
async function dcgmi(
  argv: string[],
  env: Record<string, string>,
  nowMs = START + 30_000,
): Promise<Run> {
  let now = nowMs;
  const out: string[] = [];
  const err: string[] = [];
  const controller = new AbortController();
  const code = await runDcgmi(
    argv,
    { GPULSE_SIM_START: String(START), ...env },
    {
      write: (t) => out.push(t),
      writeError: (t) => err.push(t),
      now: () => now,
      sleep: (ms) => {
        now += ms;
        if (now > nowMs + 3_600_000) controller.abort();
        return Promise.resolve();
      },
      signal: controller.signal,
    },
  );
  return { code, stdout: out.join(''), stderr: err.join('') };
}

function rows(stdout: string) {
  return stdout
    .split('\n')
    .map(parseDmonLine)
    .filter((l) => l.kind === 'row');
}

describe('simulated dcgmi output layout', () => {
  it('writes discovery -l byte for byte as the real Tesla T4 capture', () => {
    expect(
      discoveryText([
        {
          gpuId: 0,
          name: 'Tesla T4',
          pciBusId: '00000001:00:00.0',
          uuid: 'GPU-934a71d6-e50c-86a3-f752-3743a8c1bbb2',
        },
      ]),
    ).toBe(readFileSync(join(FIXTURES, 'dcgmi-discovery-l__tesla-t4__virtualclient.txt'), 'utf8'));
  });

  it('writes the dmon header, unit line and rows as the real capture lays them out', () => {
    const fixture = readFileSync(
      join(FIXTURES, 'dcgmi-dmon__prof-fields-1001-1004-1005__virtualclient.txt'),
      'utf8',
    ).split('\n');
    const fields = [1001, 1004, 1005].map((id) => fieldById(id)!);
    expect(dmonHeader(fields)).toBe(`${fixture[0]}\n${fixture[1]}\n`);
    expect(dmonRow('GPU 0', fields, [0.17, 0.121, 0.032])).toBe(`${fixture[3]}\n`);
    expect(dmonRow('GPU 0', fields, [0.998, 0.885, 0.3])).toBe(`${fixture[13]}\n`);
    expect(dmonRow('GPU 0', fields, [0.998, undefined, 0.3])).toBe(
      'GPU 0     0.998        N/A          0.300        \n',
    );
  });
});

describe('simulated dcgmi', () => {
  it('lists the 8 H100s of the default profile with the UUIDs and bus ids nvidia-smi shows', async () => {
    const d = await dcgmi(['discovery', '-l'], {});
    expect(d.code).toBe(0);
    const gpus = parseDiscovery(d.stdout);
    expect(gpus.map((g) => g.gpuId)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const smi = await runSimulated(
      ['--query-gpu=index,uuid,pci.bus_id,name', '--format=csv,noheader'],
      { GPULSE_SIM_START: String(START) },
      { nowMs: START + 30_000 },
    );
    const smiRows = smi.stdout.trim().split('\n').map(splitCsvLine);
    expect(gpus.map((g) => [String(g.gpuId), g.uuid, g.pciBusId, g.name])).toEqual(smiRows);
  });

  it('streams one row per GPU per interval and reprints the header after 15 blocks, then every 14', async () => {
    const r = await dcgmi(['dmon', '-e', '1001,1002,1004,1005', '-d', '1000', '-c', '31'], {});
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n').map(parseDmonLine);
    const headerAt: number[] = [];
    let block = 0;
    let rowsSeen = 0;
    for (const l of lines) {
      if (l.kind === 'header') headerAt.push(block);
      if (l.kind === 'row' && ++rowsSeen % 8 === 0) block++;
    }
    expect(rowsSeen).toBe(31 * 8);
    expect(headerAt).toEqual([0, 15, 29]);
    for (const row of rows(r.stdout)) {
      expect(row.values).toHaveLength(4);
      for (const v of row.values) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1);
      }
    }
    // A busy training GPU: SM active well above zero.
    expect(rows(r.stdout)[0]?.values[1]).toBeGreaterThan(0.3);
  });

  it('says what the real one says when no host engine answers, and exits 235 (DCGM_ST_CONNECTION_NOT_VALID)', async () => {
    const r = await dcgmi(['dmon', '-e', '1002', '--host', 'localhost'], {
      GPULSE_SIM_DCGM: 'absent',
    });
    expect(r.code).toBe(EXIT_NO_HOST_ENGINE);
    expect(EXIT_NO_HOST_ENGINE).toBe(235);
    expect(r.stdout).toBe(
      'Error: unable to establish a connection to the specified host: localhost\n' +
        'Error: Unable to connect to host engine. Host engine connection invalid/disconnected.\n',
    );
    const noDriver = await dcgmi(['discovery', '-l'], { GPULSE_SIM_SCENARIO: 'no-driver' });
    expect(noDriver.code).toBe(EXIT_NO_HOST_ENGINE);
  });

  it('refuses profiling fields on GeForce boards but serves device fields', async () => {
    const prof = await dcgmi(['dmon', '-e', '1002', '-c', '1'], {
      GPULSE_SIM_PROFILE: 'rtx-4080-super',
    });
    expect(prof.code).toBe(EXIT_PROFILING_NOT_SUPPORTED);
    expect(prof.stdout).toMatch(/^Error setting watches\. Result: -36: Profiling is not supported/);
    const dev = await dcgmi(['dmon', '-e', '203,252,155', '-c', '1'], {
      GPULSE_SIM_PROFILE: 'rtx-4080-super',
    });
    expect(dev.code).toBe(0);
    expect(rows(dev.stdout)).toHaveLength(1);
  });

  it('a lost GPU reads N/A everywhere but its Xid 79', async () => {
    const ids = ['230', '203', '252', '1002'];
    const r = await dcgmi(['dmon', '-e', ids.join(','), '-c', '1'], {
      GPULSE_SIM_SCENARIO: 'gpu-lost:after=10s,gpu=2',
    });
    const byGpu = new Map(rows(r.stdout).map((row) => [row.entityId, row.values]));
    expect(byGpu.get(2)).toEqual([79, undefined, undefined, undefined]);
    expect(byGpu.get(0)?.[0]).toBe(0);
    expect(
      byGpu
        .get(0)
        ?.slice(1)
        .every((v) => v !== undefined),
    ).toBe(true);
  });

  it('reports the thermal-throttle bits (0x20 | 0x40) during the episode and not before', async () => {
    const env = {
      GPULSE_SIM_SCENARIO: 'thermal-throttle:after=10s,for=20s',
      GPULSE_SIM_PROFILE: 'h100',
    };
    const before = await dcgmi(['dmon', '-e', '112', '-c', '1'], env, START + 5_000);
    const during = await dcgmi(['dmon', '-e', '112', '-c', '1'], env, START + 20_000);
    expect(rows(before.stdout)[0]?.values[0]).toBe(0);
    expect(rows(during.stdout)[0]?.values[0]).toBe(0x60);
  });

  it.each([
    ['thermal-throttle', 'DCGM_FI_DEV_THERMAL_VIOLATION'],
    ['power-brake', 'DCGM_FI_DEV_POWER_VIOLATION'],
  ])(
    'under %s the violation counters grow by the elapsed time in their class, 0 in the others',
    async (scenario, hit) => {
      const env = {
        GPULSE_SIM_SCENARIO: `${scenario}:after=10s,for=60s`,
        GPULSE_SIM_PROFILE: 'h100',
      };
      const names = [
        'DCGM_FI_DEV_POWER_VIOLATION',
        'DCGM_FI_DEV_THERMAL_VIOLATION',
        'DCGM_FI_DEV_SYNC_BOOST_VIOLATION',
      ];
      const ids = names.map((n) => fieldByName(n)!.id).join(',');
      const at = async (ms: number) =>
        rows((await dcgmi(['dmon', '-e', ids, '-c', '1'], env, START + ms)).stdout)[0]!.values;
      // Before, during (17 s apart) and after the episode.
      const [t5, t20, t37, t80] = await Promise.all([
        at(5_000),
        at(20_000),
        at(37_000),
        at(80_000),
      ]);
      names.forEach((name, i) => {
        const during = t37[i]! - t20[i]!;
        expect(during, name).toBe(name === hit ? 17e9 : 0);
        expect(during, name).toBeLessThanOrEqual(17e9);
        // The whole 60 s episode, however long the run: never more than the episode itself.
        expect(t80[i]! - t5[i]!, name).toBe(name === hit ? 60e9 : 0);
      });
    },
  );

  it('the driver counters nvidia-smi prints grow at most 1 s per second per reason', async () => {
    const reasons = [
      'sw_power_cap',
      'sync_boost',
      'sw_thermal_slowdown',
      'hw_thermal_slowdown',
      'hw_power_brake_slowdown',
    ];
    const fields = ['index', 'uuid', ...reasons.map((r) => `clocks_event_reasons_counters.${r}`)];
    for (const scenario of ['thermal-throttle', 'power-brake']) {
      const env = {
        GPULSE_SIM_START: String(START),
        GPULSE_SIM_PROFILE: 'h100',
        GPULSE_SIM_SCENARIO: `${scenario}:after=10s,for=60s`,
      };
      const read = async (ms: number) => {
        const smi = await runSimulated(
          [`--query-gpu=${fields.join(',')}`, '--format=csv,noheader,nounits'],
          env,
          { nowMs: START + ms },
        );
        return parseQueryGpuRow(splitCsvLine(smi.stdout.trim()), fields)!.throttleSeconds;
      };
      const [a, b] = [await read(20_000), await read(37_000)];
      for (const r of reasons) {
        const key = r as keyof typeof a;
        expect(b[key]! - a[key]!, `${scenario} ${r}`).toBeLessThanOrEqual(17);
        expect(b[key]! - a[key]!, `${scenario} ${r}`).toBeGreaterThanOrEqual(0);
      }
      const active =
        scenario === 'thermal-throttle'
          ? (['sw_thermal_slowdown', 'hw_thermal_slowdown'] as const)
          : (['hw_power_brake_slowdown'] as const);
      for (const r of active) expect(b[r]! - a[r]!).toBeCloseTo(17, 6);
    }
  });

  it('counts no NVLink errors on the healthy NVLink board; a single board has no NVLink (N/A)', async () => {
    const ids = [409, 419, 429, 439].join(',');
    const board = rows((await dcgmi(['dmon', '-e', ids, '-c', '1'], {})).stdout);
    expect(board).toHaveLength(8);
    for (const row of board) expect(row.values).toEqual([0, 0, 0, 0]);
    const single = rows(
      (await dcgmi(['dmon', '-e', ids, '-c', '1'], { GPULSE_SIM_PROFILE: 'h100' })).stdout,
    );
    expect(single[0]?.values).toEqual([undefined, undefined, undefined, undefined]);
  });

  it('hangs with the world: no rows while hung, rows again afterwards', async () => {
    const r = await dcgmi(['dmon', '-e', '203', '-d', '1000', '-c', '20'], {
      GPULSE_SIM_SCENARIO: 'hang:after=32s,for=5s',
      GPULSE_SIM_PROFILE: 'h100',
    });
    // 20 blocks from t=30s: blocks at 32..36 s fall inside the hang.
    expect(rows(r.stdout)).toHaveLength(15);
  });

  it('rejects unknown options and field ids like dcgmi', async () => {
    const bad = await dcgmi(['dmon', '-x'], {});
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^PARSE ERROR: Argument: -x/);
    const unknown = await dcgmi(['dmon', '-e', '4242', '-c', '1'], {});
    expect(unknown.stdout).toBe('Error: Invalid field ID: 4242\n');
  });
});

describe('simulated dcgmi and simulated nvidia-smi agree where they overlap', () => {
  it.each([['h100-8x'], ['h200'], ['h100-mig'], ['rtx-4080-super']])(
    'utilization, memory and power of profile %s at the same instant',
    async (profile) => {
      const at = START + 47_250;
      const env = { GPULSE_SIM_PROFILE: profile, GPULSE_SIM_START: String(START) };
      const fields = [
        'DCGM_FI_DEV_GPU_UTIL',
        'DCGM_FI_DEV_FB_USED',
        'DCGM_FI_DEV_FB_FREE',
        'DCGM_FI_DEV_POWER_USAGE',
      ].map((n) => fieldByName(n)!);
      const d = await dcgmi(['dmon', '-e', fields.map((f) => f.id).join(','), '-c', '1'], env, at);
      expect(d.code).toBe(0);
      const names = [
        'index',
        'uuid',
        'utilization.gpu',
        'memory.used',
        'memory.free',
        'power.draw',
      ];
      const smi = await runSimulated(
        [`--query-gpu=${names.join(',')}`, '--format=csv,noheader,nounits'],
        env,
        { nowMs: at },
      );
      const smiReadings = smi.stdout
        .trim()
        .split('\n')
        .map((l) => parseQueryGpuRow(splitCsvLine(l), names)!);
      const dcgmRows = rows(d.stdout);
      expect(dcgmRows).toHaveLength(smiReadings.length);
      for (const [i, r] of smiReadings.entries()) {
        const [util, used, free, power] = dcgmRows[i]!.values;
        expect(dcgmRows[i]!.entityId).toBe(r.index);
        expect(util === undefined ? undefined : util / 100).toBe(r.utilizationRatio);
        expect(used! * 1048576).toBe(r.memoryUsedBytes);
        expect(free! * 1048576).toBe(r.memoryFreeBytes);
        expect(power).toBeCloseTo(r.powerDrawWatts!, 6);
      }
    },
  );
});
