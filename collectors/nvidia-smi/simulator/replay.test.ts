import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NVML_REASON_BITS } from '../../../test/helpers/nvml.js';
import { parseHelpFields, parseQueryCsv } from './capture.js';
import { fixturesDir, readFixture } from './fixtures.js';
import { runSimulated } from './harness.js';
import { CsvCaptureSource, XmlCaptureSource } from './source.js';

const NOW = Date.UTC(2026, 6, 14, 8, 0, 0);
const CSV_DIR = join(fixturesDir(), 'csv');
const XML_DIR = join(fixturesDir(), 'xml');
const gpuCsvs = readdirSync(CSV_DIR).filter((f) => f.includes('__query-gpu'));
const appCsvs = readdirSync(CSV_DIR).filter((f) => f.includes('query-compute-apps'));
const xmls = readdirSync(XML_DIR).filter((f) => f.endsWith('.xml'));

function withNewline(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}

/** Field names of `--help-query-gpu` output. */
function helpFields(help: string): string[] {
  return parseHelpFields(help).map((e) => e.names[0] ?? '');
}

describe.each(gpuCsvs)('CSV capture %s', (file) => {
  const path = join(CSV_DIR, file);
  const text = readFixture(`csv/${file}`);
  const header = (text.split('\n')[0] ?? '').split(', ');
  const fields = header.map((h) => h.replace(/ \[[^\]]+\]$/, ''));
  // The VirtualClient monitor ran with nounits: units in the header, none in the cells.
  const nounits = file.includes('virtualclient');
  const env = { GPULSE_SIM_CAPTURE: path };

  it('replays the capture byte for byte for its own field list', async () => {
    const run = await runSimulated(
      [`--query-gpu=${fields.join(',')}`, `--format=csv${nounits ? ',nounits' : ''}`],
      env,
      { nowMs: NOW },
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(withNewline(text));
  });

  it('answers any subset in any order with the capture cells, units only where asked', async () => {
    const table = parseQueryCsv(text);
    const picked = [...fields].reverse().filter((_, i) => i % 3 === 0);
    const run = await runSimulated(
      [`--query-gpu=${picked.join(',')}`, '--format=csv,noheader,nounits'],
      env,
      { nowMs: NOW },
    );
    const expected = table.rows.map((row) =>
      picked
        .map((name) => {
          const c = table.columns.findIndex((col) => col.name === name);
          const cell = row[c] ?? '';
          const unit = table.columns[c]?.unit;
          return unit !== undefined && cell.endsWith(` ${unit}`)
            ? cell.slice(0, -unit.length - 1)
            : cell;
        })
        .join(', '),
    );
    expect(run.stdout).toBe(expected.map((l) => `${l}\n`).join(''));
  });

  it('lists exactly the capture fields in --help-query-gpu; other fields are invalid', async () => {
    const help = await runSimulated(['--help-query-gpu'], env, { nowMs: NOW });
    expect(helpFields(help.stdout)).toEqual(fields);
    const missing = ['power.draw.instant', 'compute_cap', 'fan.speed'].find(
      (f) => !fields.includes(f),
    );
    if (missing !== undefined) {
      const run = await runSimulated([`--query-gpu=${missing}`, '--format=csv'], env, {
        nowMs: NOW,
      });
      expect(run.code).toBe(2);
      expect(run.stdout).toBe(`Field "${missing}" is not a valid field to query.\n\n`);
    }
  });

  it('writes -q -x whose derived cells match the capture (schema by driver)', async () => {
    const run = await runSimulated(['-q', '-x'], env, { nowMs: NOW });
    const source = new CsvCaptureSource(text, undefined);
    const back = new XmlCaptureSource(run.stdout).read().gpus;
    const original = source.read().gpus;
    expect(back).toHaveLength(original.length);
    // Edited samples: the ECC counters were renumbered by hand, so totals do not add up, and
    // the synthetic second row of the WDDM sample claims another driver version.
    const edited = /edited|na-fields|synthetic/.test(file);
    original.forEach((gpu, i) => {
      for (const [field, cell] of gpu.cells) {
        const derived = back[i]?.cells.get(field);
        if (derived === undefined || field === 'timestamp') continue;
        if (edited && (field.startsWith('ecc.') || field === 'driver_version')) continue;
        expect({ field, cell: derived }).toEqual({ field, cell });
      }
      // The XML has whole seconds only.
      const stamp = gpu.cells.get('timestamp');
      if (stamp !== undefined)
        expect(back[i]?.cells.get('timestamp')).toBe(`${stamp.slice(0, 19)}.000`);
    });
  });
});

describe.each(appCsvs)('compute-apps capture %s', (file) => {
  it('replays the processes byte for byte next to their GPU capture', async () => {
    const gpuFile = file.replace('query-compute-apps', 'query-gpu-all-fields');
    const text = readFixture(`csv/${file}`);
    const fields = (text.split('\n')[0] ?? '')
      .split(', ')
      .map((h) => h.replace(/ \[[^\]]+\]$/, ''));
    const run = await runSimulated(
      [`--query-compute-apps=${fields.join(',')}`, '--format=csv'],
      { GPULSE_SIM_CAPTURE: join(CSV_DIR, gpuFile), GPULSE_SIM_APPS_CAPTURE: join(CSV_DIR, file) },
      { nowMs: NOW },
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(withNewline(text));
  });
});

/** What a reader of the XML text finds for one `<gpu>` block, by regular expressions. */
function expectedFromXml(gpuBlock: string): Map<string, string> {
  const out = new Map<string, string>();
  // MIG devices have their own <fb_memory_usage>; the GPU's figures are outside them.
  const block = gpuBlock.replace(/<mig_devices>[\s\S]*?<\/mig_devices>/, '');
  const na = (text: string): boolean =>
    text === 'N/A' || text === 'Requested functionality has been deprecated';
  const put = (field: string, text: string | undefined, map: (t: string) => string): void => {
    if (text === undefined) return;
    out.set(field, na(text) ? `[${text}]` : map(text));
  };
  const same = (t: string): string => t;
  put('memory.used', /<fb_memory_usage>[\s\S]*?<used>([^<]*)<\/used>/.exec(block)?.[1], same);
  put('memory.total', /<fb_memory_usage>[\s\S]*?<total>([^<]*)<\/total>/.exec(block)?.[1], same);
  put('temperature.gpu', /<gpu_temp>([^<]*)<\/gpu_temp>/.exec(block)?.[1], (t) =>
    t.replace(/ C$/, ''),
  );
  put('utilization.gpu', /<gpu_util>([^<]*)<\/gpu_util>/.exec(block)?.[1], same);
  put('utilization.memory', /<memory_util>([^<]*)<\/memory_util>/.exec(block)?.[1], same);
  const clocks = /<clocks>([\s\S]*?)<\/clocks>/.exec(block)?.[1] ?? '';
  put('clocks.current.graphics', /<graphics_clock>([^<]*)</.exec(clocks)?.[1], same);
  put('clocks.current.sm', /<sm_clock>([^<]*)</.exec(clocks)?.[1], same);
  put('clocks.current.memory', /<mem_clock>([^<]*)</.exec(clocks)?.[1], same);
  const power = /<(?:gpu_)?power_readings>([\s\S]*?)<\/(?:gpu_)?power_readings>/.exec(block)?.[1];
  if (power !== undefined) {
    const readings = ['average_power_draw', 'instant_power_draw', 'power_draw']
      .map((e) => new RegExp(`<${e}>([^<]*)</${e}>`).exec(power)?.[1])
      .filter((t): t is string => t !== undefined);
    put('power.draw', readings.find((t) => !na(t)) ?? readings[0], same);
  }
  for (const m of block.matchAll(/<clocks_(event|throttle)_reason_(\w+?)>([^<]*)</g)) {
    if (m[2] === 'display_clocks_setting') continue;
    put(`clocks_${m[1]}_reasons.${m[2]}`, m[3], same);
  }
  return out;
}

describe.each(xmls)('XML capture %s', (file) => {
  const path = join(XML_DIR, file);
  const text = readFixture(`xml/${file}`);
  const env = { GPULSE_SIM_CAPTURE: path };

  it('prints the document verbatim for -q -x (and -x -q, --query --xml-format)', async () => {
    for (const argv of [
      ['-q', '-x'],
      ['-x', '-q'],
      ['--query', '--xml-format'],
    ]) {
      const run = await runSimulated(argv, env, { nowMs: NOW });
      expect(run.code).toBe(0);
      expect(run.stdout).toBe(text);
    }
  });

  it('answers --query-gpu with what the XML says (memory, temperature, power, clocks, reasons)', async () => {
    const help = await runSimulated(['--help-query-gpu'], env, { nowMs: NOW });
    const fields = helpFields(help.stdout);
    const blocks = [...text.matchAll(/<gpu id="[^"]*">([\s\S]*?)<\/gpu>/g)].map((m) => m[1] ?? '');
    expect(blocks.length).toBeGreaterThan(0);
    const run = await runSimulated([`--query-gpu=${fields.join(',')}`, '--format=csv'], env, {
      nowMs: NOW,
    });
    expect(run.code).toBe(0);
    const table = parseQueryCsv(run.stdout);
    expect(table.rows).toHaveLength(blocks.length);
    let compared = 0;
    blocks.forEach((block, i) => {
      const row = new Map(table.columns.map((c, k) => [c.name, table.rows[i]?.[k]] as const));
      for (const [field, cell] of expectedFromXml(block)) {
        expect({ field, cell: row.get(field) }).toEqual({ field, cell });
        compared++;
      }
      expect(row.get('index')).toBe(String(i));
    });
    // Even the trimmed fragments carry memory and temperature.
    expect(compared).toBeGreaterThanOrEqual(2);
  });

  it('derives clocks_*_reasons.active as the mask of the active reasons', async () => {
    const help = helpFields((await runSimulated(['--help-query-gpu'], env, { nowMs: NOW })).stdout);
    const field = help.find((f) => f.endsWith('_reasons.active'));
    if (field === undefined) return;
    const run = await runSimulated([`--query-gpu=${field}`, '--format=csv,noheader'], env, {
      nowMs: NOW,
    });
    // The XML's tags name one reason differently (display_clocks_setting).
    const bits: Record<string, number> = {
      ...NVML_REASON_BITS,
      display_clocks_setting: NVML_REASON_BITS.display_clock_setting,
    };
    const masks = [...text.matchAll(/<gpu id="[^"]*">([\s\S]*?)<\/gpu>/g)].map((m) => {
      let mask = 0;
      for (const r of (m[1] ?? '').matchAll(/<clocks_(?:event|throttle)_reason_(\w+?)>Active</g)) {
        mask += bits[r[1] ?? ''] ?? 0;
      }
      return `0x${mask.toString(16).toUpperCase().padStart(16, '0')}\n`;
    });
    expect(run.stdout).toBe(masks.join(''));
  });

  it('lists the XML processes of compute type in --query-compute-apps', async () => {
    const run = await runSimulated(
      ['--query-compute-apps=pid,process_name,used_gpu_memory', '--format=csv,noheader'],
      env,
      { nowMs: NOW },
    );
    const expected = [...text.matchAll(/<process_info>([\s\S]*?)<\/process_info>/g)]
      .map((m) => m[1] ?? '')
      .filter((p) => /<type>[^<]*C[^<]*<\/type>/.test(p))
      .map((p) => {
        const get = (tag: string): string =>
          new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(p)?.[1] ?? '';
        const mem = get('used_memory');
        return `${get('pid')}, ${get('process_name')}, ${mem === 'N/A' ? '[N/A]' : mem}\n`;
      });
    expect(run.stdout).toBe(expected.join(''));
  });
});

describe('XML capture with -i', () => {
  it('keeps only the selected <gpu> block and every other byte', async () => {
    const file = 'tesla-k80-x4-processes__430.26__v10__pai.xml';
    const text = readFixture(`xml/${file}`);
    const run = await runSimulated(
      ['-q', '-x', '-i', '2'],
      { GPULSE_SIM_CAPTURE: join(XML_DIR, file) },
      {
        nowMs: NOW,
      },
    );
    const ids = [...run.stdout.matchAll(/<gpu id="([^"]+)">/g)].map((m) => m[1]);
    const all = [...text.matchAll(/<gpu id="([^"]+)">/g)].map((m) => m[1]);
    expect(ids).toEqual([all[2]]);
    const head = text.slice(0, text.lastIndexOf('\n', text.indexOf('<gpu ')) + 1);
    expect(run.stdout.startsWith(head)).toBe(true);
    expect(run.stdout.endsWith(text.slice(text.lastIndexOf('</gpu>') + '</gpu>'.length))).toBe(
      true,
    );
  });
});
