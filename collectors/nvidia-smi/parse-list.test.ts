import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GpuReading } from '../../agent/core/facts.js';
import { parseCaptureSections } from './simulator/capture.js';
import { gpuInstanceProfile } from '../dcgm/compat.js';
import { migLayoutKey, parseMigListing, withMigNames } from './parse-list.js';

const CAPTURES = join(import.meta.dirname, 'fixtures', 'captures');
const GPU0 = 'GPU-00000000-0000-0000-0000-000000000000';

/** The `nvidia-smi -L` section of a real capture. */
function listOf(file: string): string {
  const text = readFileSync(join(CAPTURES, file), 'utf8');
  const list = parseCaptureSections(text).get('capabilities :: list (-L)');
  if (list === undefined) throw new Error(`${file} has no -L section`);
  return list;
}

describe('nvidia-smi -L', () => {
  it('names the four MIG devices of the real H100 MIG capture with profile and MIG UUID', () => {
    const listing = parseMigListing(
      listOf('linux-x86_64__nvidia-h100-mig__590.48.01__nvidia-gpu-exporter.txt'),
    );
    expect([...listing.keys()]).toEqual([GPU0]);
    expect([...listing.get(GPU0)!.values()]).toEqual([
      { index: 0, profile: '3g.40gb', uuid: 'MIG-00000000-0000-0000-0000-000000000000' },
      { index: 1, profile: '2g.20gb', uuid: 'MIG-00000001-0000-0000-0000-000000000001' },
      { index: 2, profile: '1g.10gb', uuid: 'MIG-00000002-0000-0000-0000-000000000002' },
      { index: 3, profile: '1g.10gb', uuid: 'MIG-00000003-0000-0000-0000-000000000003' },
    ]);
  });

  it('keeps compute-instance profiles of the real H200 MIG capture, and their GPU instance profile', () => {
    const listing = parseMigListing(
      listOf('linux-x86_64__nvidia-h200-mig__590.48.01__nvidia-gpu-exporter.txt'),
    );
    const profiles = [...listing.get(GPU0)!.values()].map((d) => d.profile);
    expect(profiles).toEqual(['1c.3g.71gb', '2c.3g.71gb', '2g.35gb', '1g.18gb', '1g.18gb']);
    expect(profiles.map(gpuInstanceProfile)).toEqual([
      '3g.71gb',
      '3g.71gb',
      '2g.35gb',
      '1g.18gb',
      '1g.18gb',
    ]);
  });

  it('lists a GPU without MIG devices for every other real capture', () => {
    const others = readdirSync(CAPTURES).filter((f) => !f.includes('-mig__'));
    expect(others.length).toBeGreaterThanOrEqual(7);
    for (const file of others) {
      const listing = parseMigListing(listOf(file));
      expect([...listing.keys()], file).toEqual([GPU0]);
      expect(listing.get(GPU0)!.size, file).toBe(0);
    }
  });

  it('reads the pre-R470 MIG UUID form and skips a GPU line whose UUID a reporter removed', () => {
    // R450 prints MIG UUIDs as MIG-GPU-<gpu uuid>/<gi>/<ci> (nvidia-smi -L quoted in
    // NVIDIA/dcgm-exporter issue 105); the Jetson listing is the real jetpack-nixos capture.
    const old = parseMigListing(
      'GPU 0: A100-SXM4-40GB (UUID: GPU-a810a1fc-9f46-0e6f-5cef-bf34c2248e12)\n' +
        '  MIG 3g.20gb Device 0: (UUID: MIG-GPU-a810a1fc-9f46-0e6f-5cef-bf34c2248e12/1/0)\n' +
        '  MIG 3g.20gb Device 1: (UUID: MIG-GPU-a810a1fc-9f46-0e6f-5cef-bf34c2248e12/2/0)\n',
    );
    expect(old.get('GPU-a810a1fc-9f46-0e6f-5cef-bf34c2248e12')?.get(1)).toEqual({
      index: 1,
      profile: '3g.20gb',
      uuid: 'MIG-GPU-a810a1fc-9f46-0e6f-5cef-bf34c2248e12/2/0',
    });
    const jetson = readFileSync(
      join(
        import.meta.dirname,
        'fixtures',
        'jetson',
        'nvidia-smi-L__agx-orin__jp6-nixos__uuid-removed-by-reporter__jetpack-nixos-371.txt',
      ),
      'utf8',
    );
    expect(parseMigListing(jetson).size).toBe(0);
  });

  it('names the MIG devices of a -q -x reading by index, and says when the layout changed', () => {
    const gpu = {
      index: 0,
      uuid: GPU0,
      clocksHz: {},
      maxClocksHz: {},
      throttle: {},
      throttleSeconds: {},
      migDevices: [
        { index: 0, gpuInstanceId: 2, computeInstanceId: 0 },
        { index: 1, gpuInstanceId: 3, computeInstanceId: 0 },
        { index: 7, gpuInstanceId: 9, computeInstanceId: 0 },
      ],
    } satisfies GpuReading;
    const listing = parseMigListing(
      listOf('linux-x86_64__nvidia-h100-mig__590.48.01__nvidia-gpu-exporter.txt'),
    );
    const named = withMigNames(gpu, listing);
    expect(named.migDevices).toEqual([
      {
        index: 0,
        gpuInstanceId: 2,
        computeInstanceId: 0,
        profile: '3g.40gb',
        uuid: 'MIG-00000000-0000-0000-0000-000000000000',
      },
      {
        index: 1,
        gpuInstanceId: 3,
        computeInstanceId: 0,
        profile: '2g.20gb',
        uuid: 'MIG-00000001-0000-0000-0000-000000000001',
      },
      // Device 7 is not in this listing (created after -L ran): no name rather than a wrong one.
      { index: 7, gpuInstanceId: 9, computeInstanceId: 0 },
    ]);
    expect(withMigNames(gpu, new Map())).toBe(gpu);
    expect(migLayoutKey([gpu])).toBe(`${GPU0}/0/2/0,${GPU0}/1/3/0,${GPU0}/7/9/0`);
    expect(migLayoutKey([{ ...gpu, migDevices: undefined }])).toBe('');
  });
});
