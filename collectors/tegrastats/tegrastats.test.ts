import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CollectorState } from '../../agent/core/types.js';
import { collectorHarness, sampleValue } from '../../test/helpers/collector-harness.js';
import { tegrastatsConfigSchema } from './config.js';
import { parseTegrastatsLine } from './parse.js';
import { createTegrastatsCollector, findExecutable } from './tegrastats.js';

const harness = collectorHarness('tegrastats');
const { dir } = harness;

const NANO = readFileSync(
  join(
    import.meta.dirname,
    'fixtures',
    'nano-4gb__l4t-32-jetpack4__pom-5v-rails__iram__nvdec-vic__jetson-inference-1206.log',
  ),
  'utf8',
)
  .split('\n')
  .filter(Boolean);

/**
 * Writes a stand-in tegrastats: `body` is JavaScript run with `interval` (from --interval) and
 * `lines` (the Nano capture) in scope. Real processes, so exits, hangs and garbage are real too.
 */
function standIn(name: string, body: string): string {
  return harness.standIn(
    name,
    `const args = process.argv.slice(2);
const interval = Number(args[args.indexOf('--interval') + 1]);
const lines = ${JSON.stringify(NANO)};
require('fs').appendFileSync(${JSON.stringify(join(dir, `${name}.starts`))}, args.join(' ') + '\\n');
${body}
`,
  );
}

function run(binary: string, extra: Record<string, unknown> = {}) {
  const config = tegrastatsConfigSchema.parse({
    binary,
    interval: 200,
    root: join(dir, 'no-device-tree'),
    uuid: 'GPU-test',
    model: 'Test Jetson',
    ...extra,
  });
  return harness.run(createTegrastatsCollector(config, { random: () => 0.5 }));
}

function health(s: CollectorState, name: string): number | undefined {
  return s.health.find((x) => x.desc.name === name)?.value;
}

// Prints the capture's lines in turn, one per interval, as tegrastats does.
const REPLAY = `let k = 0; setInterval(() => console.log(lines[k++ % lines.length]), interval);`;

describe('tegrastats collector', () => {
  it('runs one long-lived tegrastats --interval and turns each line into series and facts', async () => {
    const bin = standIn('replay', REPLAY);
    const { until } = run(bin);
    const s = await until((st) => st.status === 'ok');
    const gpu = s.output.facts?.gpus?.[0];
    const line = NANO.map((l) => parseTegrastatsLine(l)!).find(
      (r) =>
        r.ram?.usedBytes === gpu?.memoryUsedBytes &&
        r.gpu?.utilizationRatio === gpu?.utilizationRatio,
    );
    expect(line).toBeDefined();
    expect(gpu).toMatchObject({ index: 0, uuid: 'GPU-test', name: 'Test Jetson' });
    expect(sampleValue(s.output.samples, 'gpulse_gpu_clock_hz', { clock: 'graphics' })).toBe(
      line!.gpu!.frequencyHz,
    );
    expect(sampleValue(s.output.samples, 'gpulse_power_rail_watts', { rail: 'POM_5V_IN' })).toBe(
      line!.rails[0]!.currentWatts,
    );
    expect(health(s, 'gpulse_tegrastats_stream_up')).toBe(1);
    expect(health(s, 'gpulse_tegrastats_restarts_total')).toBe(0);
    expect(readFileSync(join(dir, 'replay.starts'), 'utf8')).toBe('--interval 200\n');
  });

  it('reports no data, and starts nothing, where there is no tegrastats (not a Jetson)', async () => {
    const { until, records } = run(join(dir, 'not-installed'));
    const s = await until((st) => st.status === 'no_data');
    expect(s.reason).toBe('binary_not_found');
    expect(s.message).toMatch(/GPULSE_TEGRASTATS/);
    expect(records.some((r) => r.msg === 'starting tegrastats')).toBe(false);
  });

  it('in required mode a missing tegrastats is an error', async () => {
    const { until } = run(join(dir, 'not-installed'), { mode: 'required' });
    const s = await until((st) => st.status === 'error');
    expect(s.reason).toBe('binary_not_found');
  });

  it('counts lines it cannot read and keeps serving the good ones', async () => {
    const bin = standIn(
      'garbage',
      `let k = 0; setInterval(() => { console.log(k % 2 ? '\\u0001\\u0002 nonsense' : lines[0]); k++; }, interval);`,
    );
    const { until } = run(bin);
    const s = await until(
      (st) =>
        st.status === 'ok' && (health(st, 'gpulse_tegrastats_rejected_lines_total') ?? 0) >= 2,
    );
    expect(s.errors.get('parse_error')).toBeGreaterThanOrEqual(2);
    expect(sampleValue(s.output.samples, 'gpulse_gpu_utilization_ratio')).toBe(0.28);
  });

  it('reports an exit with the tool\u2019s own words, restarts it and recovers', async () => {
    const bin = standIn(
      'dies-once',
      `const fs = require('fs'); const flag = ${JSON.stringify(join(dir, 'died'))};
if (!fs.existsSync(flag)) { fs.writeFileSync(flag, ''); console.error('open /sys/kernel/debug/clk: Permission denied'); process.exit(1); }
${REPLAY}`,
    );
    const { until } = run(bin);
    const failed = await until((st) => st.status === 'error');
    expect(failed.reason).toBe('exit_1');
    expect(failed.message).toMatch(/Permission denied/);
    const s = await until((st) => st.status === 'ok');
    expect(health(s, 'gpulse_tegrastats_restarts_total')).toBe(1);
  });

  it('a garbage flood is an error (garbage_output), not a collector starting forever', async () => {
    const bin = standIn(
      'flood',
      `const l = 'garbage,line\\n'.repeat(4096); const w = () => { while (process.stdout.write(l)); process.stdout.once('drain', w); }; w();`,
    );
    const { until, records } = run(bin);
    const s = await until((st) => st.status === 'error');
    expect(s.reason).toBe('garbage_output');
    expect(s.message).toMatch(
      /only lines that do not parse \(1000 rejected, none accepted\): "garbage,line"/,
    );
    expect(health(s, 'gpulse_tegrastats_rejected_lines_total')).toBeGreaterThanOrEqual(1000);
    expect(records.filter((r) => r.reason === 'garbage_output')).toHaveLength(1);
  });

  it('garbage at the pace of its interval is caught by the watchdog as garbage_output', async () => {
    const bin = standIn(
      'slow-garbage',
      `setInterval(() => console.log('no such field'), interval);`,
    );
    const { until } = run(bin, { stallIntervals: 2 });
    const s = await until((st) => st.status === 'error');
    expect(s.reason).toBe('garbage_output');
    expect(health(s, 'gpulse_tegrastats_rejected_lines_total')).toBeGreaterThanOrEqual(1);
  });

  it('kills a tegrastats that goes silent and starts it again', async () => {
    const bin = standIn('hangs', `console.log(lines[0]); setInterval(() => {}, 1000);`);
    const { until } = run(bin, { stallIntervals: 2 });
    await until((st) => st.status === 'ok');
    const hung = await until((st) => st.status === 'error');
    expect(hung.reason).toBe('hang');
    await until((st) => (health(st, 'gpulse_tegrastats_restarts_total') ?? 0) >= 1);
  });

  it('counts fields it does not know and logs each name once', async () => {
    const bin = standIn(
      'newer',
      `setInterval(() => console.log(lines[0] + ' NEWFIELD 7x'), interval);`,
    );
    const { until, records } = run(bin);
    await until((st) => (health(st, 'gpulse_tegrastats_unknown_fields_total') ?? 0) >= 6);
    const notes = records.filter((r) => String(r.msg).includes('does not know'));
    expect(notes).toHaveLength(1);
    expect(notes[0]!.fields).toEqual(['NEWFIELD', '7x']);
  });
});

describe('findExecutable', () => {
  it('looks a name up on PATH and takes a path as it is', async () => {
    const bin = standIn('found', '');
    expect(await findExecutable('found', `/nonexistent:${dir}`)).toBe(bin);
    expect(await findExecutable(bin, '')).toBe(bin);
    expect(await findExecutable('found', '/nonexistent')).toBeUndefined();
    expect(await findExecutable(join(dir, 'found.starts'), '')).toBeUndefined();
  });
});
