import { XMLParser } from 'fast-xml-parser';
import { THROTTLE_REASON_BITS, type ThrottleReason } from '../../../agent/core/facts.js';
import {
  XML_BINDINGS,
  isNotAValue,
  notAvailableCell,
  type QueryField,
  type XmlBinding,
} from './fields.js';

/** An element of an `nvidia-smi -q -x` document. */
export interface XNode {
  readonly name: string;
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: readonly XNode[];
  /** Trimmed text content (leaves), `None` in `<mig_devices>None</mig_devices>`. */
  readonly text: string;
}

type Ordered = Record<string, unknown>;

function toNode(entry: Ordered): XNode | undefined {
  const name = Object.keys(entry).find((k) => k !== ':@');
  if (name === undefined || name === '#text' || name.startsWith('?')) return undefined;
  const raw = entry[name];
  const list = Array.isArray(raw) ? (raw as Ordered[]) : [];
  const children: XNode[] = [];
  let text = '';
  for (const item of list) {
    if ('#text' in item) text += String(item['#text']);
    else {
      const node = toNode(item);
      if (node) children.push(node);
    }
  }
  const attrs = (entry[':@'] ?? {}) as Record<string, string>;
  return { name, attrs, children, text: text.trim() };
}

/** Parses a document and returns its root element (`<nvidia_smi_log>`). */
export function parseXml(text: string): XNode {
  const parser = new XMLParser({
    preserveOrder: true,
    ignoreAttributes: false,
    attributeNamePrefix: '',
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
    processEntities: true,
  });
  const entries = parser.parse(text) as Ordered[];
  for (const entry of entries) {
    const node = toNode(entry);
    if (node) return node;
  }
  throw new Error('no root element');
}

/** First child element with this name. */
export function child(node: XNode | undefined, name: string): XNode | undefined {
  return node?.children.find((c) => c.name === name);
}

/** The element at a `/`-separated path, or the first ancestor on it that is a leaf. */
function walk(
  gpu: XNode,
  root: XNode,
  path: string,
): { node: XNode; complete: boolean } | undefined {
  const parts = path.split('/');
  let node: XNode | undefined = gpu;
  if (parts[0] === '..') {
    node = root;
    parts.shift();
  }
  for (let i = 0; i < parts.length; i++) {
    const next = child(node, parts[i] ?? '');
    if (next === undefined) {
      // `<remapped_rows>N/A</remapped_rows>` stands for every field below it.
      if (i > 0 && node !== undefined && node.children.length === 0 && isNotAValue(node.text)) {
        return { node, complete: false };
      }
      return undefined;
    }
    node = next;
  }
  return node === undefined ? undefined : { node, complete: true };
}

/** CSV cell for an element's text under a binding. */
export function cellFromText(binding: XmlBinding, text: string): string {
  if (isNotAValue(text)) return notAvailableCell(binding.field, text);
  switch (binding.conversion) {
    case 'text':
      return text;
    case 'celsius':
      return text.replace(/ C$/, '');
    case 'width':
      return text.replace(/x$/, '');
    case 'hex':
      return `0x${text}`;
    case 'banks':
      return text.replace(/ bank\(s\)$/, '');
  }
}

/** Element text for a CSV cell under a binding (the inverse of `cellFromText`). */
export function textFromCell(binding: XmlBinding, cell: string): string {
  if (cell === '' || cell === 'N/A') return 'N/A';
  if (cell.startsWith('[') && cell.endsWith(']')) return cell.slice(1, -1);
  switch (binding.conversion) {
    case 'text':
      return cell;
    case 'celsius':
      return `${cell} C`;
    case 'width':
      return `${cell}x`;
    case 'hex':
      return cell.replace(/^0x/, '');
    case 'banks':
      return `${cell} bank(s)`;
  }
}

/** The cell a binding gives for one `<gpu>`, or undefined when the document lacks it. */
function bindingCell(binding: XmlBinding, gpu: XNode, root: XNode): string | undefined {
  let firstNotAValue: string | undefined;
  for (const path of binding.paths) {
    const found = walk(gpu, root, path);
    if (found === undefined) continue;
    const text = found.node.text;
    // power.draw falls back to the instantaneous reading where the average is N/A.
    if (found.complete && !isNotAValue(text)) return cellFromText(binding, text);
    firstNotAValue ??= isNotAValue(text) ? text : 'N/A';
  }
  for (const set of binding.sum ?? []) {
    const nodes = set.map((path) => walk(gpu, root, path));
    if (nodes.some((n) => n === undefined)) continue;
    const texts = nodes.map((n) => (n?.complete ? n.node.text : 'N/A'));
    const bad = texts.find((t) => isNotAValue(t) || !/^\d+$/.test(t));
    if (bad !== undefined) return notAvailableCell(binding.field, isNotAValue(bad) ? bad : 'N/A');
    return String(texts.reduce((sum, t) => sum + Number(t), 0));
  }
  return firstNotAValue === undefined ? undefined : notAvailableCell(binding.field, firstNotAValue);
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** `Fri Apr 10 10:23:01 2026` → `2026/04/10 10:23:01.000` (the XML has no milliseconds). */
export function csvTimestampFromCtime(text: string): string | undefined {
  const m = /^\w{3} (\w{3}) +(\d{1,2}) (\d{2}:\d{2}:\d{2}) (\d{4})$/.exec(text.trim());
  if (!m) return undefined;
  const month = MONTHS.indexOf(m[1] ?? '') + 1;
  if (month === 0) return undefined;
  const pad = (n: number | string): string => String(n).padStart(2, '0');
  return `${m[4]}/${pad(month)}/${pad(m[2] ?? '')} ${m[3]}.000`;
}

/** `2026/07/14 08:12:38.696` → `Tue Jul 14 08:12:38 2026`, as `<timestamp>` prints it. */
export function ctimeFromCsvTimestamp(cell: string): string | undefined {
  const m = /^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}:\d{2}:\d{2})/.exec(cell);
  if (!m) return undefined;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const weekday = DAYS[new Date(Date.UTC(year, month - 1, day)).getUTCDay()] ?? 'Sun';
  return `${weekday} ${MONTHS[month - 1] ?? 'Jan'} ${String(day).padStart(2, ' ')} ${m[4]} ${year}`;
}

/** Local time as `<timestamp>` prints it (`Fri Aug  4 11:44:30 2023`). */
export function ctime(ms: number): string {
  const d = new Date(ms);
  const hms = [d.getHours(), d.getMinutes(), d.getSeconds()]
    .map((n) => String(n).padStart(2, '0'))
    .join(':');
  return `${DAYS[d.getDay()] ?? 'Sun'} ${MONTHS[d.getMonth()] ?? 'Jan'} ${String(d.getDate()).padStart(2, ' ')} ${hms} ${d.getFullYear()}`;
}

const REASON_ELEMENTS: readonly [string, ThrottleReason][] = [
  ['gpu_idle', 'gpu_idle'],
  ['applications_clocks_setting', 'applications_clocks_setting'],
  ['sw_power_cap', 'sw_power_cap'],
  ['hw_slowdown', 'hw_slowdown'],
  ['sync_boost', 'sync_boost'],
  ['sw_thermal_slowdown', 'sw_thermal_slowdown'],
  ['hw_thermal_slowdown', 'hw_thermal_slowdown'],
  ['hw_power_brake_slowdown', 'hw_power_brake_slowdown'],
  ['display_clocks_setting', 'display_clock_setting'],
];

/** Mask as `clocks_event_reasons.active` prints it (`0x0000000000000001`). */
export function formatReasonMask(mask: number): string {
  return `0x${mask.toString(16).toUpperCase().padStart(16, '0')}`;
}

/** The throttle-reasons block of a `<gpu>` and the CSV prefix its fields use. */
function reasonsBlock(gpu: XNode): { node: XNode; prefix: string; element: string } | undefined {
  const events = child(gpu, 'clocks_event_reasons');
  if (events) {
    return { node: events, prefix: 'clocks_event_reasons', element: 'clocks_event_reason_' };
  }
  const throttle = child(gpu, 'clocks_throttle_reasons');
  return throttle
    ? { node: throttle, prefix: 'clocks_throttle_reasons', element: 'clocks_throttle_reason_' }
    : undefined;
}

/** The CSV cells an XML capture answers for one `<gpu>` (keys: canonical field names). */
export function cellsFromXml(root: XNode, gpu: XNode, index: number): Map<string, string> {
  const cells = new Map<string, string>();
  const timestamp = child(root, 'timestamp');
  if (timestamp) {
    cells.set('timestamp', csvTimestampFromCtime(timestamp.text) ?? `[${timestamp.text}]`);
  }
  const attached = child(root, 'attached_gpus');
  if (attached) cells.set('count', attached.text);
  cells.set('index', String(index));
  for (const binding of XML_BINDINGS) {
    const cell = bindingCell(binding, gpu, root);
    if (cell !== undefined && !cells.has(binding.field)) cells.set(binding.field, cell);
  }
  const reasons = reasonsBlock(gpu);
  if (reasons) {
    let mask = 0;
    for (const [element, reason] of REASON_ELEMENTS) {
      if (child(reasons.node, reasons.element + element)?.text === 'Active') {
        mask += THROTTLE_REASON_BITS[reason];
      }
    }
    cells.set(`${reasons.prefix}.active`, formatReasonMask(mask));
  }
  return cells;
}

/** The `<gpu>` elements of a document, in order (index order, as nvidia-smi enumerates). */
export function gpuNodes(root: XNode): XNode[] {
  return root.children.filter((c) => c.name === 'gpu');
}

/**
 * The `--query-gpu` fields an XML capture can answer, in `--help-query-gpu` order: those
 * whose elements appear in at least one `<gpu>`, plus the derived ones.
 */
export function fieldsFromXml(
  root: XNode,
  rows: readonly ReadonlyMap<string, string>[],
): QueryField[] {
  const present = new Set(rows.flatMap((r) => [...r.keys()]));
  const order: string[] = [];
  const push = (name: string): void => {
    if (present.has(name) && !order.includes(name)) order.push(name);
  };
  push('timestamp');
  for (const binding of XML_BINDINGS) {
    if (binding.field === 'name') push('count');
    if (binding.field === 'display_mode') push('index');
    if (binding.field.endsWith('.gpu_idle') && binding.paths[0]?.startsWith('clocks_')) {
      push(`${binding.field.split('.')[0] ?? ''}.active`);
    }
    push(binding.field);
  }
  push('index');
  return order.map((name): QueryField => {
    const binding = XML_BINDINGS.find((b) => b.field === name);
    // 535+ drivers renamed throttle to event reasons and kept the old names as aliases.
    const aliases =
      name === 'clocks_event_reasons.active'
        ? ['clocks_throttle_reasons.active']
        : [...(binding?.aliases ?? [])];
    return { name, aliases, unit: binding?.unit };
  });
}

/** A process row of an XML capture. */
export interface XmlProcess {
  readonly pid: string;
  readonly type: string;
  readonly name: string;
  readonly usedMemory: string;
}

/** The `<process_info>` entries of a `<gpu>`. */
export function processesFromXml(gpu: XNode): XmlProcess[] {
  return (child(gpu, 'processes')?.children ?? [])
    .filter((c) => c.name === 'process_info')
    .map((p) => ({
      pid: child(p, 'pid')?.text ?? '',
      type: child(p, 'type')?.text ?? 'C',
      name: child(p, 'process_name')?.text ?? '',
      usedMemory: child(p, 'used_memory')?.text ?? 'N/A',
    }));
}

// ---------------------------------------------------------------------------------------------
// Writing documents from CSV cells

/** A MIG device to write into `<mig_devices>`. */
export interface GenMigDevice {
  readonly index: number;
  readonly gpuInstanceId: number;
  readonly computeInstanceId: number;
  readonly attributes: Readonly<Record<string, number>>;
  readonly sramUncorrectable: string;
  readonly memoryTotalMiB: number;
  readonly memoryUsedMiB: number;
  readonly bar1TotalMiB: number;
}

/** A process to write into `<processes>`. */
export interface GenProcess {
  readonly gpuInstanceId: string;
  readonly computeInstanceId: string;
  readonly pid: number;
  readonly type: string;
  readonly name: string;
  /** `1234 MiB` or `N/A`. */
  readonly usedMemory: string;
}

/** One GPU to write. */
export interface GenGpu {
  readonly cells: ReadonlyMap<string, string>;
  /** Element path → text for elements no CSV field covers (product_brand, minor_number). */
  readonly extras: Readonly<Record<string, string>>;
  readonly migDevices: readonly GenMigDevice[];
  readonly processes: readonly GenProcess[];
}

/** Document-level values. */
export interface GenDocument {
  readonly timestamp: string;
  readonly driverVersion: string;
  readonly cudaVersion: string;
  readonly attachedGpus: number;
  readonly gpus: readonly GenGpu[];
}

/** A parsed template document and its schema version, chosen by driver version. */
export interface XmlTemplate {
  readonly dtd: string;
  readonly gpu: XNode;
}

const DEPRECATED = 'Requested functionality has been deprecated';

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

// Where several bindings cover one element, the one naming only that element speaks for it
// (power.draw.average, not power.draw, owns <average_power_draw>).
const BINDING_BY_PATH: ReadonlyMap<string, readonly XmlBinding[]> = (() => {
  const map = new Map<string, XmlBinding[]>();
  for (const b of XML_BINDINGS) {
    for (const path of b.paths) {
      const list = map.get(path) ?? [];
      list.push(b);
      map.set(path, list);
    }
  }
  for (const list of map.values()) list.sort((a, b) => a.paths.length - b.paths.length);
  return map;
})();

function leafText(path: string, template: XNode, gpu: GenGpu): string {
  for (const binding of BINDING_BY_PATH.get(path) ?? []) {
    const cell = gpu.cells.get(binding.field);
    if (cell !== undefined) return textFromCell(binding, cell);
  }
  const extra = gpu.extras[path];
  if (extra !== undefined) return extra;
  if (template.text === DEPRECATED) return DEPRECATED;
  if (template.name === 'power_state') return gpu.cells.get('pstate') ?? 'N/A';
  if (
    template.name.startsWith('clocks_event_reason_') ||
    template.name.startsWith('clocks_throttle_reason_')
  ) {
    return 'Not Active';
  }
  return 'N/A';
}

function writeMig(lines: string[], indent: string, mig: GenMigDevice): void {
  const t = indent;
  const a = (label: string): number => mig.attributes[label] ?? 0;
  lines.push(
    `${t}<mig_device>`,
    `${t}\t<index>${mig.index}</index>`,
    `${t}\t<gpu_instance_id>${mig.gpuInstanceId}</gpu_instance_id>`,
    `${t}\t<compute_instance_id>${mig.computeInstanceId}</compute_instance_id>`,
    `${t}\t<device_attributes>`,
    `${t}\t\t<shared>`,
    `${t}\t\t\t<multiprocessor_count>${a('Multiprocessor count')}</multiprocessor_count>`,
    `${t}\t\t\t<copy_engine_count>${a('Copy Engine count')}</copy_engine_count>`,
    `${t}\t\t\t<encoder_count>${a('Encoder count')}</encoder_count>`,
    `${t}\t\t\t<decoder_count>${a('Decoder count')}</decoder_count>`,
    `${t}\t\t\t<ofa_count>${a('OFA count')}</ofa_count>`,
    `${t}\t\t\t<jpg_count>${a('JPG count')}</jpg_count>`,
    `${t}\t\t</shared>`,
    `${t}\t</device_attributes>`,
    `${t}\t<ecc_error_count>`,
    `${t}\t\t<volatile_count>`,
    `${t}\t\t\t<sram_uncorrectable>${mig.sramUncorrectable}</sram_uncorrectable>`,
    `${t}\t\t</volatile_count>`,
    `${t}\t</ecc_error_count>`,
    `${t}\t<fb_memory_usage>`,
    `${t}\t\t<total>${mig.memoryTotalMiB} MiB</total>`,
    `${t}\t\t<reserved>0 MiB</reserved>`,
    `${t}\t\t<used>${mig.memoryUsedMiB} MiB</used>`,
    `${t}\t\t<free>${mig.memoryTotalMiB - mig.memoryUsedMiB} MiB</free>`,
    `${t}\t</fb_memory_usage>`,
    `${t}\t<bar1_memory_usage>`,
    `${t}\t\t<total>${mig.bar1TotalMiB} MiB</total>`,
    `${t}\t\t<used>0 MiB</used>`,
    `${t}\t\t<free>${mig.bar1TotalMiB} MiB</free>`,
    `${t}\t</bar1_memory_usage>`,
    `${t}</mig_device>`,
  );
}

function writeProcess(lines: string[], indent: string, p: GenProcess): void {
  const t = indent;
  lines.push(
    `${t}<process_info>`,
    `${t}\t<gpu_instance_id>${p.gpuInstanceId}</gpu_instance_id>`,
    `${t}\t<compute_instance_id>${p.computeInstanceId}</compute_instance_id>`,
    `${t}\t<pid>${p.pid}</pid>`,
    `${t}\t<type>${p.type}</type>`,
    `${t}\t<process_name>${escapeXml(p.name)}</process_name>`,
    `${t}\t<used_memory>${p.usedMemory}</used_memory>`,
    `${t}</process_info>`,
  );
}

/**
 * Row remapping as a structure when the cells have it (A100/H100 class), even where the
 * template board printed `<remapped_rows>N/A</remapped_rows>`; false: nothing to write.
 */
function writeRemappedRows(lines: string[], t: string, gpu: GenGpu): boolean {
  const cell = (field: string): string => {
    const c = gpu.cells.get(field);
    return c === undefined || c.startsWith('[') || c === '' ? 'N/A' : c;
  };
  const fields = [...gpu.cells.keys()].filter((f) => f.startsWith('remapped_rows.'));
  if (fields.every((f) => cell(f) === 'N/A')) return false;
  const banks = (level: string): string => {
    const c = cell(`remapped_rows.histogram.${level}`);
    return c === 'N/A' ? c : `${c} bank(s)`;
  };
  lines.push(
    `${t}<remapped_rows>`,
    `${t}\t<remapped_row_corr>${cell('remapped_rows.correctable')}</remapped_row_corr>`,
    `${t}\t<remapped_row_unc>${cell('remapped_rows.uncorrectable')}</remapped_row_unc>`,
    `${t}\t<remapped_row_pending>${cell('remapped_rows.pending')}</remapped_row_pending>`,
    `${t}\t<remapped_row_failure>${cell('remapped_rows.failure')}</remapped_row_failure>`,
    `${t}\t<row_remapper_histogram>`,
    ...['max', 'high', 'partial', 'low', 'none'].map(
      (level) =>
        `${t}\t\t<row_remapper_histogram_${level}>${banks(level)}</row_remapper_histogram_${level}>`,
    ),
    `${t}\t</row_remapper_histogram>`,
    `${t}</remapped_rows>`,
  );
  return true;
}

function writeElement(
  lines: string[],
  node: XNode,
  path: string,
  depth: number,
  gpu: GenGpu,
): void {
  const t = '\t'.repeat(depth);
  const here = path === '' ? node.name : `${path}/${node.name}`;
  switch (here) {
    case 'mig_devices':
      if (gpu.migDevices.length === 0) {
        lines.push(`${t}<mig_devices>`, `${t}\tNone`, `${t}</mig_devices>`);
      } else {
        lines.push(`${t}<mig_devices>`);
        for (const mig of gpu.migDevices) writeMig(lines, `${t}\t`, mig);
        lines.push(`${t}</mig_devices>`);
      }
      return;
    case 'processes':
      lines.push(`${t}<processes>`);
      for (const p of gpu.processes) writeProcess(lines, `${t}\t`, p);
      lines.push(`${t}</processes>`);
      return;
    case 'remapped_rows':
      if (writeRemappedRows(lines, t, gpu)) return;
      break;
    case 'accounted_processes':
    case 'supported_clocks':
      // Empty lists, as drivers print them when there is nothing to list.
      lines.push(`${t}<${node.name}>`, `${t}</${node.name}>`);
      return;
  }
  if (node.children.length === 0) {
    lines.push(`${t}<${node.name}>${escapeXml(leafText(here, node, gpu))}</${node.name}>`);
    return;
  }
  lines.push(`${t}<${node.name}>`);
  for (const c of node.children) writeElement(lines, c, here, depth + 1, gpu);
  lines.push(`${t}</${node.name}>`);
}

/**
 * Writes a whole `nvidia-smi -q -x` document in the template's element order and schema,
 * every value taken from the GPUs' CSV cells; elements no cell covers say N/A.
 */
export function writeXml(template: XmlTemplate, doc: GenDocument): string {
  const lines = [
    '<?xml version="1.0" ?>',
    `<!DOCTYPE nvidia_smi_log SYSTEM "${template.dtd}">`,
    '<nvidia_smi_log>',
    `\t<timestamp>${doc.timestamp}</timestamp>`,
    `\t<driver_version>${doc.driverVersion}</driver_version>`,
    `\t<cuda_version>${doc.cudaVersion}</cuda_version>`,
    `\t<attached_gpus>${doc.attachedGpus}</attached_gpus>`,
  ];
  for (const gpu of doc.gpus) {
    const id = gpu.cells.get('pci.bus_id') ?? 'N/A';
    lines.push(`\t<gpu id="${escapeXml(id)}">`);
    for (const c of template.gpu.children) writeElement(lines, c, '', 2, gpu);
    lines.push('\t</gpu>', '');
  }
  lines.push('</nvidia_smi_log>', '');
  return lines.join('\n');
}

/** Template file (under fixtures/xml) for a driver version: the schema that driver printed. */
export function templateFileFor(driverVersion: string): string {
  const major = Number(/^(\d+)/.exec(driverVersion)?.[1] ?? '0');
  if (major >= 580) return 'rtx-3080__595.58.03__v13__telegraf.xml';
  if (major >= 560) return 'rtx-3060__570.124.04__v12__telegraf.xml';
  if (major >= 535) return 'a100-sxm4-80gb-mig-enabled__535.54.03__v12__telegraf.xml';
  return 'quadro-p2000__525.125.06__v12__telegraf.xml';
}

/** Builds a template from a real document: its first `<gpu>` gives the element order. */
export function templateFromXml(text: string): XmlTemplate {
  const dtd = /SYSTEM "([^"]+)"/.exec(text)?.[1] ?? 'nvsmi_device_v12.dtd';
  const gpu = gpuNodes(parseXml(text))[0];
  if (gpu === undefined) throw new Error('template has no <gpu>');
  return { dtd, gpu };
}
