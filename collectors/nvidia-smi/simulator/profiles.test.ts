import { describe, expect, it } from 'vitest';
import { parseCaptureSections, parseQueryCsv } from './capture.js';
import { readFixture } from './fixtures.js';
import { runSimulated } from './harness.js';
import { PROFILES } from './profiles.js';
import { XmlCaptureSource } from './source.js';

const NOW = Date.UTC(2026, 6, 14, 8, 0, 0);

/** The printed form of a cell without its value: what a parser depends on. */
function shape(cell: string): string {
  if (cell === '' || cell === 'N/A' || (cell.startsWith('[') && cell.endsWith(']'))) return cell;
  if (/^0x[0-9A-F]+$/.test(cell)) return `hex${cell.length - 2}`;
  if (/^\d{4}\/\d{2}\/\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$/.test(cell)) return 'timestamp';
  if (/^GPU-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$/.test(cell)) return 'uuid';
  if (/^[0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.[0-7]$/.test(cell)) return 'bus-id';
  if (cell === 'Active' || cell === 'Not Active') return 'flag';
  if (/^P\d{1,2}$/.test(cell)) return 'pstate';
  const m = /^-?\d+(?:\.(\d+))?(?: (.+))?$/.exec(cell);
  if (m) return `number.${m[1]?.length ?? 0}${m[2] === undefined ? '' : ` ${m[2]}`}`;
  return `text:${cell}`;
}

interface CaptureRows {
  readonly header: string;
  readonly fields: string[];
  readonly idle: Map<string, string>;
  readonly load: Map<string, string>;
  readonly help: string;
  readonly version: string;
}

function captureRows(file: string): CaptureRows {
  const sections = parseCaptureSections(readFixture(file));
  const idleText = sections.get('idle :: query-gpu (csv, what the exporter parses)') ?? '';
  const idle = parseQueryCsv(idleText);
  const load = parseQueryCsv(
    sections.get('load :: query-gpu (csv, what the exporter parses)') ?? '',
  );
  const row = (t: typeof idle): Map<string, string> =>
    new Map(t.columns.map((c, i) => [c.name, t.rows[0]?.[i] ?? ''] as const));
  return {
    header: idleText.split('\n')[0] ?? '',
    fields: idle.columns.map((c) => c.name),
    idle: row(idle),
    load: row(load),
    help: sections.get('capabilities :: help-query-gpu') ?? '',
    version: sections.get('capabilities :: version') ?? '',
  };
}

function cellsOf(stdout: string): Map<string, string>[] {
  const t = parseQueryCsv(stdout);
  return t.rows.map((r) => new Map(t.columns.map((c, i) => [c.name, r[i] ?? ''] as const)));
}

const env = (profile: string, extra: Record<string, string> = {}): Record<string, string> => ({
  GPULSE_SIM_PROFILE: profile,
  GPULSE_SIM_START: String(NOW - 3_600_000),
  ...extra,
});

/** Runs the simulator on a profile (with more GPULSE_SIM_* settings) at NOW. */
const runProfile = (profile: string, args: string[], extra: Record<string, string> = {}) =>
  runSimulated(args, env(profile, extra), { nowMs: NOW });

describe.each(Object.entries(PROFILES))('profile %s', (name, def) => {
  const capture = captureRows(def.capture);
  const query = ['--query-gpu=' + capture.fields.join(','), '--format=csv'];

  it('prints the capture header for the capture field list, one row per GPU', async () => {
    const run = await runProfile(name, query);
    expect(run.code).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines[0]).toBe(capture.header);
    expect(lines.filter((l) => l !== '')).toHaveLength(def.gpuCount + 1);
  });

  it('prints every cell in a format the real capture shows for that field', async () => {
    for (const procs of [undefined, '']) {
      const extra: Record<string, string> =
        procs === undefined ? {} : { GPULSE_SIM_PROCESSES: procs };
      const run = await runProfile(name, query, extra);
      for (const row of cellsOf(run.stdout)) {
        for (const field of capture.fields) {
          const allowed = [
            shape(capture.idle.get(field) ?? ''),
            shape(capture.load.get(field) ?? ''),
          ];
          expect({ field, shape: shape(row.get(field) ?? '') }).toSatisfy((v: { shape: string }) =>
            allowed.includes(v.shape),
          );
        }
      }
    }
  });

  it('answers --help-query-gpu and --version with the capture text', async () => {
    const help = await runProfile(name, ['--help-query-gpu']);
    expect(help.stdout).toBe(capture.help + '\n');
    const version = await runProfile(name, ['--version']);
    expect(version.stdout).toBe(capture.version + '\n');
  });

  it('writes -q -x whose values match the CSV of the same instant', async () => {
    const fields = ['memory.used', 'temperature.gpu', 'power.draw', 'clocks.current.sm', 'pstate'];
    const csv = await runSimulated(['--query-gpu=' + fields.join(','), '--format=csv'], env(name), {
      nowMs: NOW,
    });
    const xml = await runProfile(name, ['-q', '-x']);
    expect(xml.stdout).toMatch(
      /^<\?xml version="1\.0" \?>\n<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v13\.dtd">/,
    );
    const back = new XmlCaptureSource(xml.stdout).read();
    const rows = cellsOf(csv.stdout);
    expect(back.gpus).toHaveLength(def.gpuCount);
    back.gpus.forEach((g, i) => {
      for (const f of fields) expect(g.cells.get(f)).toBe(rows[i]?.get(f));
    });
  });
});

describe.each(Object.entries(PROFILES).filter(([, def]) => def.gpuCount === 1))(
  'one-GPU profile %s with no processes',
  (name, def) => {
    it('reproduces the idle capture row, except identity and jittering instant power', async () => {
      const capture = captureRows(def.capture);
      const run = await runProfile(
        name,
        ['--query-gpu=' + capture.fields.join(','), '--format=csv'],
        { GPULSE_SIM_PROCESSES: '' },
      );
      const row = cellsOf(run.stdout)[0];
      const moving = new Set(['timestamp', 'uuid', 'serial', 'power.draw.instant']);
      // Without an averaged reading power.draw is the instantaneous one, which jitters.
      if (capture.idle.get('power.draw.average') === '[N/A]') moving.add('power.draw');
      for (const field of capture.fields) {
        if (moving.has(field)) continue;
        expect({ field, cell: row?.get(field) }).toEqual({ field, cell: capture.idle.get(field) });
      }
    });
  },
);

describe('h100-8x', () => {
  it('has eight distinct H100s on the VirtualClient bus ids', async () => {
    const run = await runProfile('h100-8x', [
      '--query-gpu=index,name,pci.bus_id,uuid,memory.total',
      '--format=csv,noheader',
    ]);
    const rows = run.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(', '));
    expect(rows.map((r) => r[0])).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
    expect(new Set(rows.map((r) => r[1]))).toEqual(new Set(['NVIDIA H100 80GB HBM3']));
    expect(rows.slice(0, 4).map((r) => r[2])).toEqual([
      '00000000:0A:00.0',
      '00000000:11:00.0',
      '00000000:18:00.0',
      '00000000:69:00.0',
    ]);
    expect(new Set(rows.map((r) => r[2])).size).toBe(8);
    expect(new Set(rows.map((r) => r[3])).size).toBe(8);
    expect(new Set(rows.map((r) => r[4]))).toEqual(new Set(['81559 MiB']));
  });

  it('runs one training rank per GPU by default, under load', async () => {
    const apps = await runProfile('h100-8x', [
      '--query-compute-apps=gpu_uuid,pid,process_name,used_gpu_memory',
      '--format=csv,noheader',
    ]);
    const lines = apps.stdout.trim().split('\n');
    expect(lines).toHaveLength(8);
    for (const l of lines) expect(l).toMatch(/^GPU-[0-9a-f-]{36}, \d+, python, \d+ MiB$/);
    const gpus = await runProfile('h100-8x', [
      '--query-gpu=utilization.gpu,clocks_event_reasons.gpu_idle',
      '--format=csv,noheader,nounits',
    ]);
    for (const l of gpus.stdout.trim().split('\n')) {
      const [util, idle] = l.split(', ');
      expect(Number(util)).toBeGreaterThan(5);
      expect(idle).toBe('Not Active');
    }
  });
});

describe('h200-mig', () => {
  it('lists its MIG devices under the GPU, as -L does', async () => {
    const run = await runProfile('h200-mig', ['-L']);
    const lines = run.stdout.split('\n');
    expect(lines[0]).toMatch(/^GPU 0: NVIDIA H200 \(UUID: GPU-[0-9a-f-]{36}\)$/);
    expect(lines.slice(1, 6).map((l) => l.replace(/MIG-[0-9a-f-]{36}/, 'MIG-x'))).toEqual([
      '  MIG 1c.3g.71gb  Device  0: (UUID: MIG-x)',
      '  MIG 2c.3g.71gb  Device  1: (UUID: MIG-x)',
      '  MIG 2g.35gb     Device  2: (UUID: MIG-x)',
      '  MIG 1g.18gb     Device  3: (UUID: MIG-x)',
      '  MIG 1g.18gb     Device  4: (UUID: MIG-x)',
    ]);
  });

  it('writes the MIG devices and placed processes into -q -x, memory as captured', async () => {
    const run = await runProfile('h200-mig', ['-q', '-x']);
    const migs = [...run.stdout.matchAll(/<mig_device>([\s\S]*?)<\/mig_device>/g)].map((m) => {
      const body = m[1] ?? '';
      const pick = (re: RegExp): string | undefined => re.exec(body)?.[1];
      return [
        pick(/<gpu_instance_id>(\d+)</),
        pick(/<compute_instance_id>(\d+)</),
        pick(/<fb_memory_usage>[\s\S]*?<used>([^<]+)</),
      ];
    });
    // The load capture's -q shows exactly these numbers for its three processes in GI 2.
    expect(migs).toEqual([
      ['2', '0', '16925 MiB'],
      ['2', '1', '16925 MiB'],
      ['3', '0', '17 MiB'],
      ['9', '0', '9 MiB'],
      ['10', '0', '9 MiB'],
    ]);
    expect(run.stdout).toMatch(
      /<process_info>\s*<gpu_instance_id>2<\/gpu_instance_id>\s*<compute_instance_id>1<\/compute_instance_id>\s*<pid>12267<\/pid>/,
    );
    const csv = await runProfile('h200-mig', [
      '--query-gpu=utilization.gpu,memory.used,mig.mode.current',
      '--format=csv,noheader',
    ]);
    expect(csv.stdout).toBe('[N/A], 16959 MiB, Enabled\n');
  });
});

describe('rtx-2080-super-windows', () => {
  it('reports per-process memory as [N/A], as WDDM does', async () => {
    const run = await runProfile('rtx-2080-super-windows', [
      '--query-compute-apps=pid,used_gpu_memory',
      '--format=csv,noheader',
    ]);
    const lines = run.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(10);
    for (const l of lines) expect(l).toMatch(/^\d+, \[N\/A\]$/);
  });
});
