// One GPU of eight falls off the bus: `gpulse simulate --scenario gpu-lost` (the simulated
// nvidia-smi prints the handle error in that GPU's place, the simulated DCGM blanks its row but
// its Xid 79), with the dcgm-exporter names on and the telemetry relayed over a real Mosquitto to
// a fleet gateway. Every surface must show seven healthy GPUs with all their series and one lost
// GPU as lost: never silence for all eight, never zeros.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../edge/gateway/command.js';
import { createGateway, type Gateway } from '../../edge/gateway/gateway.js';
import { allSeries, startCli, type CliProcess } from '../helpers/cli.js';
import { silentLogger } from '../helpers/log-sink.js';
import { eventually, removeDir, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { gpuOnSurfaces, gpuSeries, readSurfaces, type Surfaces } from '../helpers/surfaces.js';
import { describeWithTools, tools } from '../helpers/tools.js';
import { mqttArgs } from '../helpers/edge-agent.js';

const LOST = 2;
const HEALTHY = [0, 1, 3, 4, 5, 6, 7];
const SITE = 'lab';
const NODE = 'h100-box';

/** Native families every healthy simulated H100 has (a subset, with values). */
const NATIVE_VALUES = [
  'gpulse_gpu_utilization_ratio',
  'gpulse_gpu_temperature_celsius',
  'gpulse_gpu_memory_used_bytes',
  'gpulse_gpu_power_draw_watts',
  'gpulse_gpu_clock_hz',
];
/** dcgm-exporter families every healthy GPU has. */
const COMPAT_VALUES = [
  'DCGM_FI_DEV_GPU_UTIL',
  'DCGM_FI_DEV_GPU_TEMP',
  'DCGM_FI_DEV_FB_USED',
  'DCGM_FI_DEV_POWER_USAGE',
  'DCGM_FI_DEV_SM_CLOCK',
];

describeWithTools('one GPU lost of eight, on every surface', tools('mosquitto'), () => {
  let broker: Mosquitto;
  let gateway: Gateway;
  let gatewayBase: string;
  let cli: CliProcess;
  let spool: string;
  /** Every label set of gpulse_gpu_info seen per GPU, from the agent's first exposition on. */
  const infoLabels = new Map<string, Set<string>>();
  let watching = true;
  let watcher: Promise<void> = Promise.resolve();

  beforeAll(async () => {
    broker = await startMosquitto();
    const { config } = loadGatewayConfig({
      flags: { 'mqtt-url': broker.url, listen: '127.0.0.1:0' },
    });
    gateway = createGateway(config, { log: silentLogger(), version: '0.0.0-test' });
    gatewayBase = await gateway.start();
    spool = mkdtempSync(join(tmpdir(), 'gpulse-lost-'));
    cli = await startCli(
      [
        'simulate',
        '--metrics-compat',
        'dcgm',
        '--scenario',
        `gpu-lost:after=40s,gpu=${LOST}`,
        '--interval',
        '500ms',
        '--xml-interval',
        '2s',
        ...mqttArgs({ url: broker.url, site: SITE, node: NODE, every: '500ms', spoolDir: spool }),
      ],
      { GPULSE_LOG_LEVEL: 'info', GPULSE_DCGM_INTERVAL: '500ms' },
    );
    // Every exposition from the first one on: an info series must never change its labels.
    watcher = (async () => {
      while (watching) {
        const body = await fetch(`${cli.base}/metrics`)
          .then((r) => r.text())
          .catch(() => '');
        for (const s of allSeries(body, 'gpulse_gpu_info')) {
          const gpu = s.labels.gpu ?? '';
          const set = infoLabels.get(gpu) ?? new Set<string>();
          set.add(JSON.stringify(s.labels));
          infoLabels.set(gpu, set);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
  }, 60_000);

  afterAll(async () => {
    watching = false;
    await watcher;
    await cli?.stop();
    await gateway?.stop();
    await broker?.destroy();
    if (spool) removeDir(spool);
  });

  const surfaces = () =>
    readSurfaces({ agent: cli.base, gateway: { base: gatewayBase, site: SITE, node: NODE } });

  it('before the loss: eight GPUs up everywhere, each info series complete from its first exposition', async () => {
    let s: Surfaces | undefined;
    await eventually(
      async () => {
        s = await surfaces();
        return (
          [...HEALTHY, LOST].every((g) => {
            const on = gpuOnSurfaces(s!, g);
            return on.gatewayUp === 1 && on.api?.cudaVersion === '13.1';
          }) && infoLabels.size === 8
        );
      },
      35_000,
      'eight GPUs up on the agent and the gateway',
    );
    for (const g of [...HEALTHY, LOST]) {
      const on = gpuOnSurfaces(s!, g);
      expect(on.up).toBe(1);
      expect(on.api).toMatchObject({ up: true, lost: null, cudaVersion: '13.1' });
    }
    // The CUDA version comes only with -q -x, later than the first CSV rows: the info series
    // waited for it instead of going out with cuda_version="" first.
    expect(infoLabels.size).toBe(8);
    for (const [gpu, sets] of infoLabels) {
      expect(
        [...sets].map((l) => (JSON.parse(l) as Record<string, string>).cuda_version),
        gpu,
      ).toEqual(['13.1']);
    }
  }, 45_000);

  it('after: seven GPUs keep every series, the lost one is lost on every surface', async () => {
    let s: Surfaces | undefined;
    // The loss itself shows at once; DCGM's Xid 79 counts after its 10 s grace (the kernel
    // log may report it first), then the gateway relays it.
    await eventually(
      async () => {
        s = await surfaces();
        const lost = gpuOnSurfaces(s, LOST);
        return (
          lost.up === 0 &&
          lost.gatewayUp === 0 &&
          lost.events.some((e) => e.type === 'gpu.xid' && e.data?.xid === 79) &&
          allSeries(s.gateway ?? '', 'gpulse_gpu_xid_errors_total').some(
            (x) => x.labels.node === NODE && x.labels.gpu === String(LOST) && x.value === 1,
          )
        );
      },
      // The loss comes 40 s after the agent started, DCGM's Xid 10 s later, then the relay.
      100_000,
      'GPU 2 lost, with its Xid 79, on the agent and the gateway',
    );
    const surf = s!;
    const lost = gpuOnSurfaces(surf, LOST);
    const uuid = lost.api?.uuid ?? '';
    expect(uuid).toMatch(/^GPU-[0-9a-f-]{36}$/);

    // Native /metrics: up 0, its identity, its Xid; no gauge at all (no zeros, nothing stale).
    // (DCGM's PCIe/NVLink byte counters keep the total they had reached: counters, not values.)
    expect(lost.native).toEqual(
      expect.arrayContaining(['gpulse_gpu_info', 'gpulse_gpu_up', 'gpulse_gpu_xid_errors_total']),
    );
    for (const name of NATIVE_VALUES) expect(lost.native).not.toContain(name);
    expect(
      lost.native.filter(
        (n) => !['gpulse_gpu_info', 'gpulse_gpu_up'].includes(n) && !n.endsWith('_total'),
      ),
    ).toEqual([]);
    expect(gpuSeries(surf, 'gpulse_gpu_xid_errors_total', String(LOST))).toEqual([
      { labels: { gpu: '2', uuid, xid: '79', severity: 'critical' }, value: 1 },
    ]);
    // dcgm-exporter names: its Xid alone, as dcgm-exporter shows a lost GPU.
    expect(lost.compat).toEqual(['DCGM_FI_DEV_XID_ERRORS']);
    expect(
      allSeries(surf.metrics, 'DCGM_FI_DEV_XID_ERRORS').find((x) => x.labels.gpu === '2')?.labels
        .UUID,
    ).toBe(uuid);
    expect(
      allSeries(surf.metrics, 'DCGM_FI_DEV_XID_ERRORS').find((x) => x.labels.gpu === '2')?.value,
    ).toBe(79);
    // The API.
    expect(lost.api).toMatchObject({
      index: LOST,
      name: 'NVIDIA H100 80GB HBM3',
      pciBusId: '00000000:18:00.0',
      up: false,
      lost: { reason: 'Unknown Error' },
      values: {},
      processes: [],
      xids: { recent: [expect.objectContaining({ xid: 79, severity: 'critical' })] },
    });
    // Events: lost once, and its Xid 79.
    expect(lost.events.map((e) => [e.type, e.severity])).toEqual([
      ['gpu.lost', 'critical'],
      ['gpu.xid', 'critical'],
    ]);
    expect(lost.events[0]?.labels).toEqual({ gpu: '2', uuid });
    // The gateway relays the same: up 0, identity and Xid, no values.
    expect(lost.gatewayNative).toEqual(lost.native);

    for (const g of HEALTHY) {
      const on = gpuOnSurfaces(surf, g);
      expect(on.up, `GPU ${g}`).toBe(1);
      expect(on.gatewayUp, `GPU ${g} via the gateway`).toBe(1);
      for (const name of NATIVE_VALUES) expect(on.native, `GPU ${g}`).toContain(name);
      for (const name of NATIVE_VALUES) expect(on.gatewayNative, `GPU ${g}`).toContain(name);
      for (const name of COMPAT_VALUES) expect(on.compat, `GPU ${g}`).toContain(name);
      expect(on.api).toMatchObject({ up: true, lost: null, sources: ['nvidia-smi', 'dcgm'] });
      expect(on.api?.values.utilizationRatio).toBeGreaterThan(0);
      expect(on.events).toEqual([]);
      const util = allSeries(surf.metrics, 'DCGM_FI_DEV_GPU_UTIL').find(
        (x) => x.labels.gpu === String(g),
      );
      expect(util?.value).toBeGreaterThan(0);
    }
    expect(
      allSeries(surf.metrics, 'gpulse_collector_status').find(
        (x) => x.labels.collector === 'nvidia-smi',
      )?.labels.status,
    ).toBe('ok');
    // Still one info series per GPU, same labels since the first exposition.
    for (const [gpu, sets] of infoLabels) expect([...sets], `GPU ${gpu}`).toHaveLength(1);
  }, 150_000);
});
