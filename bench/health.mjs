// Benchmarks of the GPU health paths (not tests): Xid scanning of kernel logs against GNU grep,
// dmon table parsing against awk, the /dev/kmsg ring read against `dmesg --raw`, and the cost of
// the dcgm-exporter compatible series per snapshot. Median of several runs; each peer runs in
// the same process run on the same data. Usage: npm run bench:health
import { execFileSync } from 'node:child_process';
import {
  accessSync,
  constants,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, table } from './lib.mjs';

const root = new URL('..', import.meta.url).pathname;
const dist = (p) => join(root, 'dist', p);
const { parseXidLine } = await import(dist('collectors/kmsg/parse-kmsg.js'));
const { parseDmonLine } = await import(dist('collectors/dcgm/parse-dcgmi.js'));
const { dcgmCatalogue } = await import(dist('collectors/dcgm/catalogue.js'));
const { dmonHeader, dmonRow } = await import(dist('collectors/dcgm/simulator/output.js'));
const { openKmsgReader } = await import(dist('collectors/kmsg/kmsg-reader.js'));
const { GpuHealth } = await import(dist('agent/components/gpu-health/component.js'));
const { renderSamples } = await import(dist('exporters/prometheus/render.js'));
const { gpuReadingSamples } = await import(dist('collectors/gpu-series.js'));

const RUNS = 5;
const dir = mkdtempSync(join(tmpdir(), 'gpulse-bench-health-'));
const rows = [];
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const fmt = (x, d = 1) => x.toFixed(d);

function time(fn) {
  const t0 = process.hrtime.bigint();
  const result = fn();
  return { ms: ms(t0), result };
}

function runPeer(cmd, args) {
  const t0 = process.hrtime.bigint();
  const out = execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 30 });
  return { ms: ms(t0), out };
}

try {
  // 1. Xid scan: every kernel log fixture, 20 times over (what a day of a noisy host looks like).
  const fixtures = join(root, 'collectors/kmsg/fixtures');
  const text = readdirSync(fixtures)
    .filter((f) => f.endsWith('.log'))
    .map((f) => readFileSync(join(fixtures, f), 'utf8'))
    .join('\n');
  const big = Array(20).fill(text).join('\n');
  const logFile = join(dir, 'kernel.log');
  writeFileSync(logFile, big);
  const mb = Buffer.byteLength(big) / 1e6;
  const lines = big.split('\n').length;
  const ours = [];
  const greps = [];
  let ourCount = 0;
  let grepCount = 0;
  for (let i = 0; i < RUNS; i++) {
    const r = time(() => {
      let n = 0;
      for (const line of readFileSync(logFile, 'utf8').split('\n')) if (parseXidLine(line)) n++;
      return n;
    });
    ours.push(r.ms);
    ourCount = r.result;
    const g = runPeer('grep', ['-c', 'NVRM: Xid (PCI:', logFile]);
    greps.push(g.ms);
    grepCount = Number(g.out.trim());
  }
  if (ourCount !== grepCount)
    throw new Error(`Xid counts differ: gpulse ${ourCount}, grep ${grepCount}`);
  rows.push([
    `Xid scan, ${fmt(mb)} MB / ${lines} lines (${ourCount} Xids)`,
    `${fmt(median(ours))} ms`,
    `grep -c: ${fmt(median(greps))} ms`,
    `${fmt(median(ours) / median(greps), 2)}×`,
  ]);

  // 2. dmon table: 8 GPUs × every catalogue field × 2000 ticks, header reprinted as dcgmi does.
  const fields = [...dcgmCatalogue()];
  let dmon = '';
  for (let k = 0; k < 2000; k++) {
    if (k === 0 || k % 14 === 1) dmon += dmonHeader(fields);
    for (let g = 0; g < 8; g++) {
      dmon += dmonRow(
        `GPU ${g}`,
        fields,
        fields.map((f, i) =>
          i % 9 === 0 ? undefined : f.type === 'double' ? ((k + i) % 1000) / 1000 : k * 31 + i,
        ),
      );
    }
  }
  const dmonFile = join(dir, 'dmon.txt');
  writeFileSync(dmonFile, dmon);
  const oursD = [];
  const awks = [];
  let rowsParsed = 0;
  for (let i = 0; i < RUNS; i++) {
    const r = time(() => {
      let n = 0;
      for (const line of readFileSync(dmonFile, 'utf8').split('\n'))
        if (parseDmonLine(line).kind === 'row') n++;
      return n;
    });
    oursD.push(r.ms);
    rowsParsed = r.result;
    awks.push(runPeer('awk', ['$1=="GPU"{n++} END{print n}', dmonFile]).ms);
  }
  rows.push([
    `dmon parse, ${rowsParsed} rows × ${fields.length} fields (${fmt(Buffer.byteLength(dmon) / 1e6)} MB)`,
    `${fmt(median(oursD))} ms`,
    `awk row count: ${fmt(median(awks))} ms`,
    `${fmt(median(oursD) / median(awks), 2)}×`,
  ]);

  // 3. This machine's kernel ring: the first read of /dev/kmsg against dmesg --raw.
  let readable = true;
  try {
    accessSync('/dev/kmsg', constants.R_OK);
  } catch {
    readable = false;
  }
  if (readable) {
    const oursK = [];
    const dmesgs = [];
    let records = 0;
    for (let i = 0; i < RUNS; i++) {
      const t0 = process.hrtime.bigint();
      const reader = await openKmsgReader('/dev/kmsg');
      const chunk = await reader.read();
      await reader.close();
      oursK.push(ms(t0));
      records = chunk.lines.length;
      dmesgs.push(runPeer('dmesg', ['--raw']).ms);
    }
    rows.push([
      `/dev/kmsg first read (${records} lines)`,
      `${fmt(median(oursK))} ms`,
      `dmesg --raw: ${fmt(median(dmesgs))} ms`,
      `${fmt(median(oursK) / median(dmesgs), 2)}×`,
    ]);
  }

  // 4. One snapshot of 8 GPUs (nvidia-smi + DCGM + kmsg): derive and render, compat on vs off.
  const MIB = 1048576;
  const readings = Array.from({ length: 8 }, (_, g) => ({
    index: g,
    uuid: `GPU-${String(g).repeat(8)}-0000-0000-0000-000000000000`,
    name: 'NVIDIA H100 80GB HBM3',
    pciBusId: `00000000:${(0x18 + g * 0x11).toString(16).toUpperCase()}:00.0`,
    driverVersion: '590.48.01',
    utilizationRatio: 0.9,
    memoryUsedBytes: 40000 * MIB,
    memoryFreeBytes: 41000 * MIB,
    memoryTotalBytes: 81559 * MIB,
    temperatureCelsius: 60,
    powerDrawWatts: 600,
    clocksHz: { sm: 1.98e9, memory: 2.619e9 },
    maxClocksHz: {},
    throttle: {
      gpu_idle: false,
      sw_power_cap: false,
      hw_slowdown: false,
      hw_thermal_slowdown: false,
    },
    throttleSeconds: { sw_power_cap: 12 },
  }));
  const dcgmGpus = readings.map((r, g) => ({
    gpuId: g,
    at: 0,
    reading: r,
    fields: Object.fromEntries(fields.map((f, i) => [f.name, i])),
  }));
  const state = (collector, facts, at) => ({
    collector,
    status: 'ok',
    updatedAt: at,
    lastSuccessAt: at,
    output: { samples: collector === 'nvidia-smi' ? gpuReadingSamples(readings) : [], facts },
    errors: new Map(),
    health: [],
  });
  const pipeline = (compat) => {
    const health = new GpuHealth({ compat, hostname: 'bench' });
    let at = 1e12;
    return () => {
      at += 1000;
      const snapshot = {
        version: at,
        takenAt: at,
        collectors: new Map([
          ['nvidia-smi', state('nvidia-smi', { gpus: readings }, at)],
          ['dcgm', state('dcgm', { dcgmGpus, xidErrors: [], xidTotals: [] }, at)],
          ['kmsg', state('kmsg', { xidErrors: [], xidTotals: [] }, at)],
        ]),
        derived: [],
      };
      const derived = health.deriver.derive(snapshot);
      const all = [...snapshot.collectors.get('nvidia-smi').output.samples, ...derived];
      return renderSamples(all, 'prometheus').length;
    };
  };
  const result = {};
  for (const compat of ['none', 'dcgm']) {
    const step = pipeline(compat);
    for (let i = 0; i < 50; i++) step();
    const per = [];
    let bytes = 0;
    for (let r = 0; r < RUNS; r++) {
      const t = time(() => {
        for (let i = 0; i < 200; i++) bytes = step();
      });
      per.push((t.ms / 200) * 1000);
    }
    result[compat] = { us: median(per), bytes };
  }
  rows.push([
    `snapshot → exposition, 8 GPUs, compat dcgm (${fmt(result.dcgm.bytes / 1024)} KiB)`,
    `${fmt(result.dcgm.us, 0)} µs`,
    `compat none (${fmt(result.none.bytes / 1024)} KiB): ${fmt(result.none.us, 0)} µs`,
    `${fmt(result.dcgm.us / result.none.us, 2)}×`,
  ]);

  console.log(`GPU health benchmarks: median of ${RUNS} runs (node ${process.version})\n`);
  table(['what', 'gpulse', 'peer (same run)', 'ratio'], rows);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
