import { readFileSync } from 'node:fs';
import type { WorldFailure } from '../../simulation/world.js';
import { parseCaptureSections, parseHelpFields, parseQueryCsv, type HelpEntry } from './capture.js';
import { COMPUTE_APP_FIELDS, notAvailableCell, type QueryField } from './fields.js';
import { readFixture } from './fixtures.js';
import {
  cellsFromXml,
  ctime,
  ctimeFromCsvTimestamp,
  fieldsFromXml,
  gpuNodes,
  parseXml,
  processesFromXml,
  templateFileFor,
  templateFromXml,
  writeXml,
  type GenGpu,
  type XmlTemplate,
} from './xml.js';

/** One GPU as a source reports it at an instant. */
export interface GpuRow {
  readonly index: number;
  readonly uuid: string | undefined;
  readonly busId: string | undefined;
  readonly name: string;
  /** Printed cells (with units) by canonical field name. */
  readonly cells: ReadonlyMap<string, string>;
  /** `nvidia-smi -L` lines of this GPU (with its MIG devices). */
  readonly listLines: readonly string[];
  /** MIG device UUIDs, which `-i` also accepts. */
  readonly migUuids: readonly string[];
}

/** One `--query-compute-apps` row. */
export interface AppRow {
  readonly gpuIndex: number;
  readonly cells: ReadonlyMap<string, string>;
}

/** What a source says at an instant. */
export interface Reading {
  readonly failure: WorldFailure | undefined;
  readonly gpus: readonly GpuRow[];
  readonly apps: readonly AppRow[];
}

/** Where the simulated nvidia-smi gets its answers: a profile (moving) or a capture (frozen). */
export interface SmiSource {
  /** `--query-gpu` fields, in `--help-query-gpu` order. */
  readonly gpuFields: readonly QueryField[];
  readonly appFields: readonly QueryField[];
  /** `--version` output. */
  version(): string;
  /** `-h` output. */
  help(): string;
  helpQueryGpu(): string;
  helpQueryComputeApps(): string;
  read(nowMs: number): Reading;
  /** `-q -x` output for the selected GPUs (indexes) of a reading. */
  xml(reading: Reading, selected: readonly number[], nowMs: number): string;
}

// Descriptions for generated --help-query-* text come from a real driver's own help: 610
// for 610+ (it marks driver_version deprecated), 590 for everything older.
const CATALOG_610 =
  'captures/linux-x86_64__nvidia-geforce-rtx-2080-super__610.57.04__nvidia-gpu-exporter.txt';
const CATALOG_590 =
  'captures/linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01__nvidia-gpu-exporter.txt';

/** Help texts of one real driver. */
export interface HelpCatalog {
  readonly gpu: readonly HelpEntry[];
  readonly apps: string;
  readonly help: string;
}

const catalogs = new Map<string, HelpCatalog>();

/** Help entries and texts of the real driver closest to `driver` (each loaded once). */
export function helpCatalog(driver?: string): HelpCatalog {
  const file = Number(/^(\d+)/.exec(driver ?? '')?.[1] ?? '0') >= 610 ? CATALOG_610 : CATALOG_590;
  let catalog = catalogs.get(file);
  if (catalog === undefined) {
    const sections = parseCaptureSections(readFixture(file));
    catalog = {
      gpu: parseHelpFields(sections.get('capabilities :: help-query-gpu') ?? ''),
      apps: sections.get('capabilities :: help-query-compute-apps') ?? '',
      help: sections.get('capabilities :: help (-h)') ?? '',
    };
    catalogs.set(file, catalog);
  }
  return catalog;
}

/** Aliases a driver accepts for a field, from the help catalog. */
export function aliasesOf(name: string, entries: readonly HelpEntry[]): string[] {
  const entry = entries.find((e) => e.names[0] === name);
  return entry ? entry.names.slice(1).filter((a) => a !== name) : [];
}

/** `--help-query-gpu` text listing exactly these fields (descriptions from the catalog). */
export function generatedHelpQueryGpu(fields: readonly QueryField[], driver?: string): string {
  const entries = helpCatalog(driver).gpu;
  const lines = ['List of valid properties to query for the switch "--query-gpu":', ''];
  for (const f of fields) {
    lines.push([f.name, ...f.aliases].map((n) => `"${n}"`).join(' or '));
    lines.push(entries.find((e) => e.names.includes(f.name))?.description ?? f.name, '');
  }
  return lines.join('\n') + '\n';
}

/** `--version` text for a driver known only by its version string. */
export function generatedVersion(driver: string | undefined, cuda: string | undefined): string {
  const nvml = driver?.split('.').slice(0, 2).join('.');
  return [
    `NVIDIA-SMI version  : ${driver ?? 'N/A'}`,
    `NVML version        : ${nvml ?? 'N/A'}`,
    `DRIVER version      : ${driver ?? 'N/A'}`,
    `CUDA Version        : ${cuda ?? 'N/A'}`,
    '',
  ].join('\n');
}

/** `-h` text with the driver's version in its first line. */
export function generatedHelp(driver: string | undefined): string {
  const text = helpCatalog(driver).help;
  return (driver ? text.replace(/-- v\S+/, `-- v${driver}`) : text) + '\n';
}

let templates = new Map<string, XmlTemplate>();

/** The XML template (real document of that driver generation), parsed once per process. */
export function xmlTemplate(driverVersion: string): XmlTemplate {
  const file = templateFileFor(driverVersion);
  let t = templates.get(file);
  if (t === undefined) {
    t = templateFromXml(readFixture(`xml/${file}`));
    templates = new Map(templates).set(file, t);
  }
  return t;
}

function listLine(index: number, name: string, uuid: string | undefined): string {
  return `GPU ${index}: ${name} (UUID: ${uuid ?? 'N/A'})`;
}

/** What a replayed capture answers with: its query fields, its reading and the versions it names. */
interface Capture {
  readonly gpuFields: readonly QueryField[];
  readonly reading: Reading;
  readonly driver: string | undefined;
  readonly cuda: string | undefined;
}

/** The version, help and reading answers that CSV and XML captures give alike. */
abstract class CaptureSource implements SmiSource {
  readonly gpuFields: readonly QueryField[];
  readonly appFields = COMPUTE_APP_FIELDS;
  private readonly reading: Reading;
  protected readonly driver: string | undefined;
  private readonly cuda: string | undefined;

  constructor(capture: Capture) {
    this.gpuFields = capture.gpuFields;
    this.reading = capture.reading;
    this.driver = capture.driver;
    this.cuda = capture.cuda;
  }

  version(): string {
    return generatedVersion(this.driver, this.cuda);
  }

  help(): string {
    return generatedHelp(this.driver);
  }

  helpQueryGpu(): string {
    return generatedHelpQueryGpu(this.gpuFields, this.driver);
  }

  helpQueryComputeApps(): string {
    return helpCatalog(this.driver).apps + '\n';
  }

  read(): Reading {
    return this.reading;
  }

  abstract xml(reading: Reading, selected: readonly number[], nowMs: number): string;
}

/** Reads an `--query-gpu` CSV capture and its optional `--query-compute-apps` companion. */
function csvCapture(csvText: string, appsText: string | undefined): Capture {
  const table = parseQueryCsv(csvText);
  const driver = table.rows[0]?.[table.columns.findIndex((c) => c.name === 'driver_version')];
  const entries = helpCatalog(driver).gpu;
  const gpuFields = table.columns.map((c) => ({
    name: c.name,
    unit: c.unit,
    aliases: aliasesOf(c.name, entries),
  }));
  const gpus = table.rows.map((row, r): GpuRow => {
    const cells = new Map(table.columns.map((c, i) => [c.name, row[i] ?? ''] as const));
    const indexCell = Number(cells.get('index'));
    const index = Number.isInteger(indexCell) ? indexCell : r;
    const name = cells.get('name') ?? 'N/A';
    const uuid = cells.get('uuid');
    return {
      index,
      uuid,
      busId: cells.get('pci.bus_id'),
      name,
      cells,
      listLines: [listLine(index, name, uuid)],
      migUuids: [],
    };
  });
  const apps: AppRow[] = [];
  if (appsText !== undefined) {
    const appTable = parseQueryCsv(appsText);
    for (const row of appTable.rows) {
      const cells = new Map(appTable.columns.map((c, i) => [c.name, row[i] ?? ''] as const));
      const owner = gpus.find(
        (g) =>
          (g.uuid !== undefined && g.uuid === cells.get('gpu_uuid')) ||
          (g.busId !== undefined && g.busId === cells.get('gpu_bus_id')),
      );
      apps.push({ gpuIndex: owner?.index ?? gpus[0]?.index ?? 0, cells });
    }
  }
  return {
    gpuFields,
    reading: { failure: undefined, gpus, apps },
    driver: gpus[0]?.cells.get('driver_version'),
    cuda: undefined,
  };
}

/** Replays an `--query-gpu` CSV capture (with units in the header) exactly. */
export class CsvCaptureSource extends CaptureSource {
  constructor(csvText: string, appsText: string | undefined) {
    super(csvCapture(csvText, appsText));
  }

  xml(reading: Reading, selected: readonly number[], nowMs: number): string {
    const gpus = reading.gpus.filter((g) => selected.includes(g.index));
    const first = reading.gpus[0]?.cells;
    const stamp = first?.get('timestamp');
    return writeXml(xmlTemplate(this.driver ?? '999'), {
      timestamp: (stamp && ctimeFromCsvTimestamp(stamp)) || ctime(nowMs),
      driverVersion: this.driver ?? 'N/A',
      cudaVersion: 'N/A',
      attachedGpus: reading.gpus.length,
      gpus: gpus.map((g): GenGpu => ({
        cells: g.cells,
        extras: { minor_number: String(g.index) },
        migDevices: [],
        processes: reading.apps
          .filter((a) => a.gpuIndex === g.index)
          .map((a) => ({
            gpuInstanceId: 'N/A',
            computeInstanceId: 'N/A',
            pid: Number(a.cells.get('pid')),
            type: 'C',
            name: a.cells.get('process_name') ?? '',
            usedMemory: unbracket(a.cells.get('used_gpu_memory') ?? 'N/A'),
          })),
      })),
    });
  }
}

function unbracket(cell: string): string {
  return cell.startsWith('[') && cell.endsWith(']') ? cell.slice(1, -1) : cell;
}

/** Reads an `nvidia-smi -q -x` document: CSV cells and compute apps derived from its blocks. */
function xmlCapture(text: string): Capture {
  const root = parseXml(text);
  const nodes = gpuNodes(root);
  const rows = nodes.map((gpu, i) => cellsFromXml(root, gpu, i));
  const gpus = rows.map((cells, index): GpuRow => {
    const name = cells.get('name') ?? 'N/A';
    const uuid = cells.get('uuid');
    return {
      index,
      uuid,
      busId: cells.get('pci.bus_id') ?? nodes[index]?.attrs.id,
      name,
      cells,
      listLines: [listLine(index, name, uuid)],
      migUuids: [],
    };
  });
  const apps: AppRow[] = [];
  nodes.forEach((node, index) => {
    const g = gpus[index];
    if (g === undefined) return;
    for (const p of processesFromXml(node)) {
      // --query-compute-apps lists compute contexts only; pure graphics clients are left out.
      if (!p.type.includes('C')) continue;
      apps.push({
        gpuIndex: index,
        cells: new Map([
          ['timestamp', g.cells.get('timestamp') ?? '[N/A]'],
          ['gpu_name', g.name],
          ['gpu_bus_id', g.busId ?? '[N/A]'],
          ['gpu_serial', g.cells.get('serial') ?? '[N/A]'],
          ['gpu_uuid', g.uuid ?? '[N/A]'],
          ['pid', p.pid],
          ['process_name', p.name],
          [
            'used_gpu_memory',
            p.usedMemory === 'N/A' ? notAvailableCell('used_gpu_memory', 'N/A') : p.usedMemory,
          ],
        ]),
      });
    }
  });
  return {
    gpuFields: fieldsFromXml(root, rows),
    reading: { failure: undefined, gpus, apps },
    driver: root.children.find((c) => c.name === 'driver_version')?.text,
    cuda: root.children.find((c) => c.name === 'cuda_version')?.text,
  };
}

/** Replays an `nvidia-smi -q -x` capture: the document verbatim, CSV cells derived from it. */
export class XmlCaptureSource extends CaptureSource {
  constructor(private readonly text: string) {
    super(xmlCapture(text));
  }

  xml(reading: Reading, selected: readonly number[]): string {
    if (selected.length === reading.gpus.length) return this.text;
    // `-i` on a replayed document: drop the other <gpu> blocks, keep every byte of the rest.
    let n = 0;
    return this.text.replace(
      /^[ \t]*<gpu\b[^>]*>[\s\S]*?^[ \t]*<\/gpu>[ \t]*\r?\n(?:[ \t]*\r?\n)?/gm,
      (block) => (selected.includes(n++) ? block : ''),
    );
  }
}

/** Loads GPULSE_SIM_CAPTURE: an XML document or a `--query-gpu` CSV with units in the header. */
export function captureSource(path: string, appsPath: string | undefined): SmiSource {
  const text = readFileSync(path, 'utf8');
  const apps = appsPath === undefined ? undefined : readFileSync(appsPath, 'utf8');
  if (/^\s*<\?xml|^\s*<nvidia_smi_log/.test(text)) return new XmlCaptureSource(text);
  return new CsvCaptureSource(text, apps);
}
