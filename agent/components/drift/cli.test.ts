import { execFile } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, requireBuild, startCli, type CliProcess } from '../../../test/helpers/cli.js';
import { tempDirs } from '../../../test/helpers/temp-dirs.js';
import { ProgressLine } from '../../progress-line.js';
import { runProfileCommand } from './cli.js';
import { parseReferenceProfile, type NumericFeatureProfile } from './profile.js';
import { syntheticRows } from './synthetic.js';

const execFileAsync = promisify(execFile);

const temp = tempDirs('gpulse-drift-cli-');
let cli: CliProcess | undefined;
afterEach(async () => {
  await cli?.stop();
  cli = undefined;
});

async function run(options: Parameters<typeof runProfileCommand>[0]) {
  let stdout = '';
  let stderr = '';
  const code = await runProfileCommand(options, {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
  });
  return { code, stdout, stderr };
}

const SHAPE = {
  numeric: { age: { mean: 40, sd: 10 } },
  categorical: { country: { fr: 5, de: 3, es: 2 } },
};

describe('gpulse drift profile', () => {
  it('profiles JSON lines and CSV input to the same summary', async () => {
    const d = temp();
    const rows: Record<string, unknown>[] = syntheticRows(SHAPE, 2000, 1).map((r) => ({
      ...r,
      age: Math.round((r.age as number) * 100) / 100,
    }));
    writeFileSync(join(d, 'data.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    writeFileSync(
      join(d, 'data.csv'),
      `age,country\n${rows.map((r) => `${String(r.age)},${String(r.country)}`).join('\n')}\n`,
    );
    const a = await run({ input: join(d, 'data.jsonl'), out: join(d, 'a.json'), model: 'm' });
    const b = await run({ input: join(d, 'data.csv'), out: join(d, 'b.json'), model: 'm' });
    expect(a).toMatchObject({ code: 0, stderr: '' });
    expect(a.stdout).toMatch(
      /^wrote .*a\.json: 2000 rows, 2 features \(1 numeric, 1 categorical\), \d+\.\d KiB, in \d+\.\d s \([\d,]+ rows\/s\)\n$/,
    );
    expect(b.code).toBe(0);
    const pa = parseReferenceProfile(readFileSync(join(d, 'a.json'), 'utf8'));
    const pb = parseReferenceProfile(readFileSync(join(d, 'b.json'), 'utf8'));
    expect(pb.features).toEqual(pa.features);
    expect((pa.features.age as NumericFeatureProfile).edges).toHaveLength(21);
    expect(pa.model).toBe('m');
  });

  it('reads empty CSV cells as nulls and keeps --categorical columns as text', async () => {
    const d = temp();
    const csv = [
      'zip,income',
      '01234,10',
      '01234,',
      '75001,30',
      '10115,40',
      '20095,50',
      '80331,60',
    ];
    writeFileSync(join(d, 'data.csv'), csv.join('\n'));
    const r = await run({
      input: join(d, 'data.csv'),
      out: join(d, 'p.json'),
      categorical: ['zip'],
    });
    expect(r.code).toBe(0);
    const p = parseReferenceProfile(readFileSync(join(d, 'p.json'), 'utf8'));
    expect(p.features.zip).toMatchObject({
      kind: 'categorical',
      categories: expect.arrayContaining([{ value: '01234', count: 2 }]) as unknown,
    });
    expect(p.features.income).toMatchObject({ count: 5, nulls: 1 });
  });

  it('says which line is wrong and writes nothing', async () => {
    const d = temp();
    writeFileSync(join(d, 'bad.jsonl'), '{"a":1}\n{"a":2}\n{"a":\n');
    const r = await run({ input: join(d, 'bad.jsonl'), out: join(d, 'p.json') });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad\.jsonl:3: not valid JSON/);
    expect(() => readFileSync(join(d, 'p.json'))).toThrow();
    const missing = await run({ input: join(d, 'nope.csv'), out: join(d, 'p.json') });
    expect(missing.stderr).toContain('no such file');
  });

  it('refuses NaN, infinite and overflowing numbers, saying where and what to do', async () => {
    const d = temp();
    writeFileSync(join(d, 'nan.csv'), 'a,b\n1,x\n2,y\nNaN,z\n');
    const nan = await run({ input: join(d, 'nan.csv'), out: join(d, 'p.json') });
    expect(nan.code).toBe(1);
    expect(nan.stderr).toMatch(
      /nan\.csv: line 4, column "a": NaN is not a finite number .*leave the cell empty/,
    );
    writeFileSync(join(d, 'big.csv'), 'a\n1\n-1e999\n');
    const big = await run({ input: join(d, 'big.csv'), out: join(d, 'p.json') });
    expect(big.stderr).toMatch(/big\.csv: line 3, column "a": -1e999 is not a finite number/);
    writeFileSync(join(d, 'big.jsonl'), '{"a":1}\n{"a":1e999}\n');
    const jsonl = await run({ input: join(d, 'big.jsonl'), out: join(d, 'p.json') });
    expect(jsonl.stderr).toMatch(
      /big\.jsonl:2: row 0, feature "a": Infinity is not a finite number/,
    );
    expect(() => readFileSync(join(d, 'p.json'))).toThrow();
    // In a --categorical column "NaN" is just text.
    const text = await run({
      input: join(d, 'nan.csv'),
      out: join(d, 'p.json'),
      categorical: ['a'],
    });
    expect(text.code).toBe(0);
  });

  it('shows rows, share of the file and rate on a terminal, then one summary line', async () => {
    const d = temp();
    const rows = syntheticRows(SHAPE, 5000, 4);
    const input = join(d, 'ref.jsonl');
    writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const size = statSync(input).size;
    const terminal = { isTTY: true, columns: 200, writes: [] as string[] };
    const progress = new ProgressLine(
      { ...terminal, write: (t: string) => terminal.writes.push(t) },
      { intervalMs: 0 },
    );
    // The command reads the clock at the start, then two seconds later at every report.
    let clock = 0;
    const now = () => {
      const t = clock;
      clock = 2000;
      return t;
    };
    let stdout = '';
    const code = await runProfileCommand(
      { input, out: join(d, 'ref.profile.json') },
      { stdout: (t) => (stdout += t), stderr: () => undefined, progress, now },
    );
    expect(code).toBe(0);
    const kib = (size / 1024).toFixed(1);
    const [first, second, last, writing, erased] = terminal.writes;
    // Every frame starts with a carriage return and ends erasing the rest of the line.
    const text = (frame: string | undefined) => frame?.replace(/^\r/, '').replace('\x1b[K', '');
    expect(text(first)).toMatch(
      new RegExp(
        `^reading ${input}: 2,000 rows, [\\d.]+ KiB of ${kib} KiB \\([\\d.]+%\\), 1,000 rows/s$`,
      ),
    );
    expect(text(second)).toMatch(/^reading .*: 4,000 rows, .*, 2,000 rows\/s$/);
    expect(last).toBe(
      `\rreading ${input}: 5,000 rows, ${kib} KiB of ${kib} KiB (100.0%), 2,500 rows/s\x1b[K`,
    );
    expect(writing).toBe(`\rwriting ${join(d, 'ref.profile.json')}\x1b[K`);
    expect(erased).toBe('\r\x1b[K');
    expect(terminal.writes).toHaveLength(5);
    expect(stdout).toMatch(
      /^wrote .*ref\.profile\.json: 5000 rows, 2 features \(1 numeric, 1 categorical\), \d+\.\d KiB, in 2\.0 s \(2,500 rows\/s\)\n$/,
    );
  });

  it('runs from the built CLI and feeds a running agent', async () => {
    requireBuild();
    const d = temp();
    const rows = syntheticRows(SHAPE, 3000, 2);
    writeFileSync(join(d, 'ref.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    const { stdout } = await execFileAsync(process.execPath, [
      CLI,
      'drift',
      'profile',
      '--input',
      join(d, 'ref.jsonl'),
      '--out',
      join(d, 'ref.profile.json'),
      '--bins',
      '10',
    ]);
    expect(stdout).toContain('3000 rows, 2 features');
    const bad = await execFileAsync(process.execPath, [
      CLI,
      'drift',
      'profile',
      '--input',
      join(d, 'x.csv'),
      '--out',
      join(d, 'y.json'),
    ]).catch((err: { code: number; stderr: string }) => err);
    expect(bad).toMatchObject({ code: 1 });
    expect((bad as { stderr: string }).stderr).toContain('no such file');

    writeFileSync(
      join(d, 'gpulse.yaml'),
      `drift:\n  interval: 1s\n  minSamples: 50\n  hysteresis: { raise: 1, clear: 1 }\n  models:\n    fraud:\n      profile: ${join(d, 'ref.profile.json')}\n`,
    );
    cli = await startCli(['run', '--config', join(d, 'gpulse.yaml'), '--nvidia-smi-mode', 'off']);
    const shifted = syntheticRows({ ...SHAPE, numeric: { age: { mean: 70, sd: 10 } } }, 300, 3);
    const res = await fetch(`${cli.base}/api/v1/models/fraud/observations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(shifted),
    });
    expect(res.status).toBe(202);
    const body = await cli.waitForMetrics((b) =>
      b.includes('gpulse_drift_detected{model="fraud",feature="age"} 1'),
    );
    expect(body).toContain('gpulse_drift_detected{model="fraud",feature="country"} 0');
    expect(body).toContain('gpulse_drift_reference_rows{model="fraud"} 3000');
    const drift = (await (await fetch(`${cli.base}/api/v1/models/fraud/drift`)).json()) as {
      features: { feature: string; method: string }[];
    };
    expect(drift.features.find((f) => f.feature === 'age')?.method).toBe('wasserstein');
  });
});
