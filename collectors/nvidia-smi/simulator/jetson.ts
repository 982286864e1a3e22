import { hash32 } from '../../simulation/load-curve.js';
import type { JetsonDevice } from '../../simulation/jetson.js';
import { notAvailableCell, type QueryField } from './fields.js';
import { readFixture } from './fixtures.js';
import { csvTimestamp } from './output.js';
import { loadProfile } from './profiles.js';
import {
  generatedHelp,
  generatedHelpQueryGpu,
  generatedVersion,
  helpCatalog,
  xmlTemplate,
  type GpuRow,
  type Reading,
  type SmiSource,
} from './source.js';
import { ctime, writeXml } from './xml.js';

/** What a Jetson's `nvidia-smi` table capture says: header versions and the GPU's name. */
export interface JetsonSmiCapture {
  readonly smiVersion: string;
  /** Undefined where the header says `Driver Version: N/A` (JetPack 6 developer preview). */
  readonly driverVersion?: string;
  /** Undefined where the header says `CUDA Version: N/A` (no CUDA user space found). */
  readonly cudaVersion?: string;
  readonly name: string;
}

/** Reads the header and first GPU row of a captured `nvidia-smi` table (fixtures/jetson/). */
export function parseSmiTable(text: string): JetsonSmiCapture {
  const header = /NVIDIA-SMI (\S+)\s+Driver Version: (\S+)\s+CUDA Version: (\S+)/.exec(text);
  const row = /^\|\s+0\s+(.+?)\s{2,}\S+\s+\|/m.exec(text);
  if (header === null || row === null) throw new Error('not an nvidia-smi table capture');
  const known = (v: string | undefined): string | undefined =>
    v === undefined || v === 'N/A' ? undefined : v;
  return {
    smiVersion: header[1] ?? '',
    driverVersion: known(header[2]),
    cudaVersion: known(header[3]),
    name: row[1] ?? '',
  };
}

// Cells a Jetson answers; every other field reads [N/A] ("Orin (nvgpu), [N/A], [N/A], ..." is
// what the public reports of --query-gpu on JetPack 6 show). The bus id is what `nvidia-smi -q`
// prints on an AGX Orin ("GPU 00000000:00:00.0"): the GPU sits on the SoC, not on PCIe.
const BUS_ID = '00000000:00:00.0';

/**
 * nvidia-smi on a Jetson (JetPack 6): one integrated GPU, "Orin (nvgpu)", whose UUID, name and
 * versions are known and whose every value is N/A. No Jetson `--help-query-gpu` output is public,
 * so the field list is the newest capture's; only the cells differ.
 */
export class JetsonSmiSource implements SmiSource {
  readonly gpuFields: readonly QueryField[];
  readonly appFields: readonly QueryField[];
  private readonly capture: JetsonSmiCapture;
  private readonly uuid: string;

  constructor(private readonly device: JetsonDevice & { readonly nvidiaSmiCapture: string }) {
    const reference = loadProfile('h100');
    this.gpuFields = reference.fields;
    this.appFields = reference.appFields;
    this.capture = parseSmiTable(readFixture(device.nvidiaSmiCapture));
    const hex = [0, 1, 2, 3]
      .map((k) => hash32(device.profile, 'uuid', k).toString(16).padStart(8, '0'))
      .join('');
    this.uuid = `GPU-${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
  }

  /** The UUID this board's GPU has (tests compare the tegrastats identity with it). */
  get gpuUuid(): string {
    return this.uuid;
  }

  version(): string {
    return generatedVersion(this.capture.driverVersion, this.capture.cudaVersion);
  }

  help(): string {
    return generatedHelp(this.capture.smiVersion);
  }

  helpQueryGpu(): string {
    return generatedHelpQueryGpu(this.gpuFields, this.capture.smiVersion);
  }

  helpQueryComputeApps(): string {
    return helpCatalog(this.capture.smiVersion).apps + '\n';
  }

  read(nowMs: number): Reading {
    const known = new Map<string, string>([
      ['timestamp', csvTimestamp(nowMs)],
      ['count', '1'],
      ['index', '0'],
      ['name', this.capture.name],
      ['uuid', this.uuid],
      ['driver_version', this.capture.driverVersion ?? '[N/A]'],
      ['pci.bus_id', BUS_ID],
      ['pci.domain', '0x0000'],
      ['pci.bus', '0x00'],
      ['pci.device', '0x00'],
    ]);
    const cells = new Map(
      this.gpuFields.map((f) => [f.name, known.get(f.name) ?? notAvailableCell(f.name, 'N/A')]),
    );
    const gpu: GpuRow = {
      index: 0,
      uuid: this.uuid,
      busId: BUS_ID,
      name: this.capture.name,
      cells,
      listLines: [`GPU 0: ${this.capture.name} (UUID: ${this.uuid})`],
      migUuids: [],
    };
    // No compute-apps rows: per-process GPU memory is not reported for the integrated GPU.
    return { failure: undefined, gpus: [gpu], apps: [] };
  }

  xml(reading: Reading, selected: readonly number[], nowMs: number): string {
    const gpus = reading.gpus.filter((g) => selected.includes(g.index));
    return writeXml(xmlTemplate(this.capture.smiVersion), {
      timestamp: ctime(nowMs),
      driverVersion: this.capture.driverVersion ?? 'N/A',
      cudaVersion: this.capture.cudaVersion ?? 'N/A',
      attachedGpus: reading.gpus.length,
      gpus: gpus.map((g) => ({
        cells: g.cells,
        // `nvidia-smi -q` on an AGX Orin: "Product Architecture : Ampere".
        extras: { minor_number: '0', product_architecture: 'Ampere' },
        migDevices: [],
        processes: [],
      })),
    });
  }
}
