import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseNvidiaSmiXml } from '../parse-xml.js';
import { fixturesDir } from './fixtures.js';
import { runSimulated } from './harness.js';
import { parseSmiTable } from './jetson.js';

const NOW = Date.UTC(2026, 6, 14, 8, 0, 0);
const ORIN = { GPULSE_SIM_PROFILE: 'jetson-orin', GPULSE_SIM_START: String(NOW) };

describe('the Jetson nvidia-smi captures', () => {
  const dir = join(fixturesDir(), 'jetson');
  const tables = readdirSync(dir).filter((f) => f.startsWith('nvidia-smi__'));

  it.each([
    [
      'agx-orin-64gb__jp6.2.1',
      { smiVersion: '540.4.0', driverVersion: '540.4.0', cudaVersion: '12.6' },
    ],
    ['agx-orin__jp6-dp', { smiVersion: '540.2.0', driverVersion: undefined, cudaVersion: '12.2' }],
    [
      'agx-orin__jp6-nixos',
      { smiVersion: '540.4.0', driverVersion: '540.4.0', cudaVersion: undefined },
    ],
    ['orin-nano__jp6.2', { smiVersion: '540.4.0', driverVersion: '540.4.0', cudaVersion: '12.6' }],
  ])('%s: header versions (N/A as absent) and the GPU "Orin (nvgpu)"', (key, want) => {
    const file = tables.find((f) => f.includes(key));
    expect(file).toBeDefined();
    expect(parseSmiTable(readFileSync(join(dir, file!), 'utf8'))).toEqual({
      ...want,
      name: 'Orin (nvgpu)',
    });
  });
});

describe('simulated nvidia-smi, profile jetson-orin', () => {
  it('answers --query-gpu with the name and identity and [N/A] for every value', async () => {
    const run = await runSimulated(
      [
        '--query-gpu=index,name,uuid,driver_version,utilization.gpu,memory.used,temperature.gpu,power.draw,pstate',
        '--format=csv,noheader,nounits',
      ],
      ORIN,
      { nowMs: NOW },
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /^0, Orin \(nvgpu\), GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}, 540\.4\.0, \[N\/A\], \[N\/A\], \[N\/A\], \[N\/A\], \[N\/A\]\n$/,
    );
  });

  it('lists the GPU with -L under the UUID --query-gpu gives', async () => {
    const list = await runSimulated(['-L'], ORIN, { nowMs: NOW });
    const csv = await runSimulated(['--query-gpu=uuid', '--format=csv,noheader'], ORIN, {
      nowMs: NOW,
    });
    expect(list.stdout).toBe(`GPU 0: Orin (nvgpu) (UUID: ${csv.stdout.trim()})\n`);
  });

  it('prints a -q -x document the collector reads as one GPU without values', async () => {
    const run = await runSimulated(['-q', '-x'], ORIN, { nowMs: NOW });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('<gpu id="00000000:00:00.0">');
    expect(run.stdout).toContain('<product_architecture>Ampere</product_architecture>');
    const doc = parseNvidiaSmiXml(run.stdout);
    expect(doc.gpus).toHaveLength(1);
    expect(doc.gpus[0]).toMatchObject({ name: 'Orin (nvgpu)', driverVersion: '540.4.0' });
    expect(doc.gpus[0]?.utilizationRatio).toBeUndefined();
    expect(doc.gpus[0]?.memoryTotalBytes).toBeUndefined();
    expect(doc.gpus[0]?.temperatureCelsius).toBeUndefined();
    expect(doc.processes).toEqual([]);
  });

  it('lists no compute processes and says its versions', async () => {
    const apps = await runSimulated(
      ['--query-compute-apps=pid,used_memory', '--format=csv,noheader'],
      ORIN,
      { nowMs: NOW },
    );
    expect(apps).toMatchObject({ code: 0, stdout: '' });
    const version = await runSimulated(['--version'], ORIN, { nowMs: NOW });
    expect(version.stdout).toContain('DRIVER version      : 540.4.0');
    expect(version.stdout).toContain('CUDA Version        : 12.6');
  });
});

describe('simulated nvidia-smi on a Jetson whose JetPack has none', () => {
  it('refuses the profile with a message (the agent runs only tegrastats there)', async () => {
    const run = await runSimulated(['-L'], { GPULSE_SIM_PROFILE: 'jetson-nano' }, { nowMs: NOW });
    expect(run.code).toBe(255);
    expect(run.stderr).toMatch(/jetson-nano: its JetPack ships no nvidia-smi/);
  });
});
