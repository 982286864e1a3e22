// `gpulse simulate --capture FILE` must serve exactly what the captured machine printed: for every
// real capture, the scraped series equal the series computed straight from the file.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gpuReadingSamples } from '../../collectors/gpu-series.js';
import { parseQueryGpuCsv } from '../../collectors/nvidia-smi/parse-csv.js';
import { parseNvidiaSmiXml } from '../../collectors/nvidia-smi/parse-xml.js';
import type { GpuReading } from '../../agent/core/facts.js';
import { allSeries, REPO_ROOT, startCli, type CliProcess } from '../helpers/cli.js';

const FIXTURES = join(REPO_ROOT, 'collectors', 'nvidia-smi', 'fixtures');
const xmls = readdirSync(join(FIXTURES, 'xml'))
  .filter((f) => f.endsWith('.xml'))
  .map((f) => join('xml', f));
const csvs = readdirSync(join(FIXTURES, 'csv'))
  .filter((f) => f.includes('query-gpu'))
  .map((f) => join('csv', f));

function expectedReadings(file: string): GpuReading[] {
  const text = readFileSync(join(FIXTURES, file), 'utf8');
  return file.endsWith('.xml') ? parseNvidiaSmiXml(text).gpus : parseQueryGpuCsv(text);
}

const started: CliProcess[] = [];
afterAll(async () => {
  await Promise.all(started.map((c) => c.stop()));
});

function close(a: number, b: number): boolean {
  return a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
}

describe('gpulse simulate --capture replays every real capture exactly', () => {
  it.concurrent.each([...xmls, ...csvs])(
    '%s',
    async (file) => {
      const readings = expectedReadings(file);
      expect(readings.length).toBeGreaterThan(0);
      const expected = gpuReadingSamples(readings);
      const cli = await startCli(
        [
          'simulate',
          '--capture',
          join(FIXTURES, file),
          '--interval',
          '300ms',
          '--xml-interval',
          '1s',
          '--log-level',
          'warn',
        ],
        {},
      );
      started.push(cli);
      const mismatches = (body: string): string[] => {
        const out: string[] = [];
        for (const s of expected) {
          // Identity labels the file leaves empty may be filled from the simulated XML (e.g. CUDA version).
          const want = Object.fromEntries(Object.entries(s.labels).filter(([, v]) => v !== ''));
          const got = allSeries(body, s.desc.name).filter((x) =>
            Object.entries(want).every(([k, v]) => x.labels[k] === v),
          );
          if (got.length !== 1 || !close(got[0]!.value, s.value)) {
            out.push(
              `${s.desc.name}${JSON.stringify(want)}: want ${s.value}, got ${got.map((g) => g.value).join(',') || 'nothing'}`,
            );
          }
        }
        return out;
      };
      // Values from the slower -q -x stream (MIG devices, retired pages) arrive a little later.
      const body = await cli
        .waitForMetrics((b) => mismatches(b).length === 0, 30_000)
        .catch(async () => (await cli.get('/metrics')).body);
      await cli.stop();
      expect(mismatches(body)).toEqual([]);
      expect(expected.length).toBeGreaterThan(0);
    },
    60_000,
  );
});
