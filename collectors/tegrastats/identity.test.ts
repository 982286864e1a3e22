import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { collectorHarness } from '../../test/helpers/collector-harness.js';
import { isIntegratedGpuName, parseGpuList } from '../nvidia-smi/integrated.js';
import { parseTegraRelease, readDeviceTreeString, resolveIdentity } from './identity.js';

const harness = collectorHarness('jetson-id');
const { dir } = harness;

const SMI_FIXTURES = join(import.meta.dirname, '..', 'nvidia-smi', 'fixtures', 'jetson');

/** A root with /proc/device-tree/{model,serial-number} and /etc/nv_tegra_release. */
function root(name: string, files: Record<string, string>): string {
  const r = join(dir, name);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(r, path, '..'), { recursive: true });
    writeFileSync(join(r, path), text, 'latin1');
  }
  return r;
}

/** A stand-in nvidia-smi printing `listing` for -L (exit `code`). */
function smi(name: string, listing: string, code = 0): string {
  return harness.standIn(
    name,
    `if (process.argv[2] === '-L') process.stdout.write(${JSON.stringify(listing)});\nprocess.exitCode = ${code};\n`,
  );
}

/** resolveIdentity with the time a stand-in nvidia-smi may take. */
const resolveWithSmi = (options: Omit<Parameters<typeof resolveIdentity>[0], 'timeoutMs'>) =>
  resolveIdentity({ ...options, timeoutMs: 5000 });

const ORIN_TREE = {
  // Device-tree strings end in NUL.
  'proc/device-tree/model': 'NVIDIA Jetson AGX Orin Developer Kit\0',
  'proc/device-tree/serial-number': '1421522014512\0',
  'etc/nv_tegra_release':
    '# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n',
};

describe('nvidia-smi -L on a Jetson', () => {
  it('reads the real (reporter-masked) capture: the integrated GPU, no usable UUID', () => {
    const text = readFileSync(
      join(
        SMI_FIXTURES,
        'nvidia-smi-L__agx-orin__jp6-nixos__uuid-removed-by-reporter__jetpack-nixos-371.txt',
      ),
      'utf8',
    );
    expect(parseGpuList(text)).toEqual([{ index: 0, name: 'Orin (nvgpu)' }]);
    expect(isIntegratedGpuName('Orin (nvgpu)')).toBe(true);
    expect(isIntegratedGpuName('NVIDIA H100 80GB HBM3')).toBe(false);
    expect(isIntegratedGpuName(undefined)).toBe(false);
  });

  it('keeps a real UUID and skips MIG lines', () => {
    expect(
      parseGpuList(
        'GPU 0: NVIDIA A100 (UUID: GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee)\n  MIG 1g.10gb Device 0: (UUID: MIG-1)\n',
      ),
    ).toEqual([
      { index: 0, name: 'NVIDIA A100', uuid: 'GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee' },
    ]);
  });
});

describe('resolveIdentity', () => {
  it('takes the UUID nvidia-smi gives the integrated GPU and the model from the device tree', async () => {
    const uuid = 'GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9';
    const id = await resolveWithSmi({
      root: root('orin', ORIN_TREE),
      nvidiaSmi: smi('smi-orin', `GPU 0: Orin (nvgpu) (UUID: ${uuid})\n`),
    });
    expect(id).toEqual({
      uuid,
      model: 'NVIDIA Jetson AGX Orin Developer Kit',
      l4tRelease: '36.4.3',
      uuidSource: 'nvidia-smi',
    });
  });

  it('falls back to the serial number without nvidia-smi (JetPack 4/5)', async () => {
    const id = await resolveWithSmi({
      root: root('nano', {
        'proc/device-tree/model': 'NVIDIA Jetson Nano Developer Kit\0',
        'proc/device-tree/serial-number': '1422019012345\0\0',
      }),
      nvidiaSmi: join(dir, 'no-such-nvidia-smi'),
    });
    expect(id).toEqual({
      uuid: 'jetson-1422019012345',
      model: 'NVIDIA Jetson Nano Developer Kit',
      uuidSource: 'serial-number',
    });
  });

  it('ignores a failing nvidia-smi and one that lists only discrete GPUs', async () => {
    const r = root('orin2', ORIN_TREE);
    const failing = await resolveWithSmi({
      root: r,
      nvidiaSmi: smi('smi-fail', 'GPU 0: Orin (nvgpu) (UUID: GPU-12345678-0000)\n', 9),
    });
    expect(failing.uuid).toBe('jetson-1421522014512');
    const discrete = await resolveWithSmi({
      root: r,
      nvidiaSmi: smi(
        'smi-dgpu',
        'GPU 0: NVIDIA T4 (UUID: GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee)\n',
      ),
    });
    expect(discrete.uuidSource).toBe('serial-number');
  });

  it('lets the config name both, and asks nobody then', async () => {
    const id = await resolveWithSmi({
      root: root('cfg', ORIN_TREE),
      model: 'Line 3 camera',
      uuid: 'jetson-line3',
      nvidiaSmi: smi('smi-never', 'should not be asked'),
    });
    expect(id).toMatchObject({
      uuid: 'jetson-line3',
      model: 'Line 3 camera',
      uuidSource: 'config',
    });
  });

  it('has a constant identity and a generic name where nothing is readable', async () => {
    expect(await resolveIdentity({ root: join(dir, 'empty'), timeoutMs: 1000 })).toEqual({
      uuid: 'jetson-0',
      model: 'NVIDIA Jetson',
      uuidSource: 'fallback',
    });
  });

  it('refuses a serial number that is not a plain token (it becomes a label value)', async () => {
    const id = await resolveIdentity({
      root: root('odd', { 'proc/device-tree/serial-number': 'a b"c\0' }),
      timeoutMs: 1000,
    });
    expect(id.uuid).toBe('jetson-0');
  });
});

describe('device tree and release files', () => {
  it('strips the NUL terminator and padding', async () => {
    const r = root('pad', { 'proc/device-tree/model': 'quill\0\0\0' });
    expect(await readDeviceTreeString(r, 'model')).toBe('quill');
    expect(await readDeviceTreeString(r, 'missing')).toBeUndefined();
  });

  it('reads L4T releases of JetPack 4 and 6', () => {
    expect(
      parseTegraRelease(
        '# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, DATE: Sat Feb 19 17:05:08 UTC 2022\n',
      ),
    ).toBe('32.7.1');
    expect(parseTegraRelease(ORIN_TREE['etc/nv_tegra_release'])).toBe('36.4.3');
    expect(parseTegraRelease('garbage')).toBeUndefined();
  });
});
