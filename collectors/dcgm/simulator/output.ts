/**
 * Text layouts of `dcgmi`, written as DCGM prints them (dcgmi/DeviceMonitor.cpp for dmon,
 * dcgmi/Query.cpp with DcgmiOutputColumns for `discovery -l`) and checked against the fixtures.
 */
import type { DcgmField } from '../catalogue.js';

/** dmon pads every value column to its field's width + 6, then 2 spaces (PADDING). */
function columnWidth(field: DcgmField): number {
  return field.width + 6;
}

function fixed(text: string, max: number): string {
  // FixedSizeString: longer texts are cut and end in "...".
  return text.length <= max ? text : `${text.slice(0, max - 3)}...`;
}

/** The two header lines of a dmon table: short names, then units. */
export function dmonHeader(fields: readonly DcgmField[]): string {
  let head = '#Entity'.padEnd(10);
  let units = 'ID'.padEnd(10);
  for (const f of fields) {
    head += fixed(f.shortName, columnWidth(f)).padEnd(columnWidth(f) + 2);
    units += fixed(f.unit, columnWidth(f)).padEnd(columnWidth(f) + 2);
  }
  return `${head}\n${units}\n`;
}

/** A value as dmon prints it: doubles with 3 decimals, integers as they are, blanks as N/A. */
export function dmonValue(field: DcgmField, value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return 'N/A';
  return field.type === 'double' ? value.toFixed(3) : String(Math.round(value));
}

/** One entity's row. */
export function dmonRow(
  entity: string,
  fields: readonly DcgmField[],
  values: readonly (number | undefined)[],
): string {
  let line = entity.padEnd(10);
  fields.forEach((f, i) => {
    line += fixed(dmonValue(f, values[i]), columnWidth(f)).padEnd(columnWidth(f) + 2);
  });
  return `${line}\n`;
}

/** A GPU as discovery lists it. */
export interface DiscoveryEntry {
  readonly gpuId: number;
  readonly name: string;
  readonly pciBusId: string;
  readonly uuid: string;
}

const GPU_RULE = `+${'-'.repeat(8)}+${'-'.repeat(70)}+`;
const SWITCH_RULE = `+${'-'.repeat(11)}+`;

function cell(text: string, width: number): string {
  return ` ${text.padEnd(width - 1)}`;
}

/** `dcgmi discovery -l`: the GPU table, one section per GPU, then the (empty) NvSwitch table. */
export function discoveryText(gpus: readonly DiscoveryEntry[]): string {
  const lines = [`${gpus.length} GPU${gpus.length === 1 ? '' : 's'} found.`, GPU_RULE];
  lines.push(`|${cell('GPU ID', 8)}|${cell('Device Information', 70)}|`, GPU_RULE);
  for (const g of gpus) {
    lines.push(`|${cell(String(g.gpuId), 8)}|${cell(`Name: ${g.name}`, 70)}|`);
    lines.push(`|${cell('', 8)}|${cell(`PCI Bus ID: ${g.pciBusId}`, 70)}|`);
    lines.push(`|${cell('', 8)}|${cell(`Device UUID: ${g.uuid}`, 70)}|`);
    lines.push(GPU_RULE);
  }
  lines.push(
    '0 NvSwitches found.',
    SWITCH_RULE,
    `|${cell('Switch ID', 11)}|`,
    SWITCH_RULE,
    SWITCH_RULE,
  );
  return `${lines.join('\n')}\n`;
}
