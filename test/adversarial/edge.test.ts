// Adversarial suite, edge side (issue 17): every attack runs against the real component — the MQTT
// publisher with a real Mosquitto, the spool with damaged files on disk, `gpulse model apply` (the
// built CLI) against crafted stores, the drift API and CLI with extreme values — and asserts the
// bound: the process lives, losses are counted by a metric, nothing is written outside its root.
// Each test is bounded in time (its own timeout); they stay as regression tests.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { scanRecords } from '../../edge/spool/record-format.js';
import { startEdgeAgent, type EdgeAgent } from '../helpers/edge-agent.js';
import {
  eventually,
  record,
  startMosquitto,
  type Mosquitto,
  type Received,
} from '../helpers/mosquitto.js';
import { describeWithTools } from '../helpers/tools.js';

/** Seqs of every record in a spool directory's segment files. */
function spooledSeqs(dir: string): number[] {
  const seqs: number[] = [];
  for (const stream of ['telemetry', 'events']) {
    const d = join(dir, stream);
    for (const name of readdirSync(d).filter((n) => n.endsWith('.seg')))
      seqs.push(...scanRecords(readFileSync(join(d, name))).records.map((r) => r.seq));
  }
  return seqs.sort((a, b) => a - b);
}

/** Free bytes of the filesystem holding `dir`. */
function freeBytes(dir: string): number {
  return Number(execFileSync('df', ['--output=avail', '-B1', dir]).toString().split('\n')[1]);
}

describeWithTools('adversarial: MQTT publisher', [{ bin: 'mosquitto', pkg: 'mosquitto' }], () => {
  let broker: Mosquitto;
  const cleanups: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    broker = await startMosquitto();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await broker.start();
  });
  afterAll(async () => {
    await broker.destroy();
  });

  it('recovers from a start on a full disk: retries with backoff, then replays every spooled message', async () => {
    const rec = await record(broker.url, 'gpulse/v1/adv-7/#');
    cleanups.push(() => rec.close());
    // A real small filesystem (root, as on the dev machines and CI).
    const mnt = mkdtempSync(join(tmpdir(), 'gpulse-adv-fullfs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
    cleanups.push(() => {
      execFileSync('umount', ['-l', mnt]);
      rmSync(mnt, { recursive: true, force: true });
    });
    const dir = join(mnt, 'mqtt');

    // 1. The broker is down: the agent spools at least 40 telemetry messages, then stops cleanly.
    await broker.stop();
    const first = await startEdgeAgent({ url: broker.url, site: 'adv-7', node: 'cam', dir });
    await eventually(
      async () =>
        ((await first.metric('gpulse_mqtt_published_total{stream="telemetry",result="spooled"}')) ??
          0) >= 40,
      30_000,
      '40 spooled telemetry messages',
    );
    await first.stop();
    const spooled = spooledSeqs(dir);
    expect(spooled.length).toBeGreaterThanOrEqual(40);

    // 2. The disk fills up; an agent starts on it: the MQTT part cannot (its lock file needs a block).
    const filler = join(mnt, 'filler');
    try {
      writeFileSync(filler, Buffer.alloc(freeBytes(mnt)));
    } catch {
      // ENOSPC near the end: the disk is full, which is the point.
    }
    const second: EdgeAgent = await startEdgeAgent({
      url: broker.url,
      site: 'adv-7',
      node: 'cam',
      dir,
    });
    cleanups.push(() => second.stop());
    expect(await second.metric('gpulse_collector_up{collector="mqtt"}')).toBe(0);
    const ready = await second.agent.app.inject({ method: 'GET', url: '/readyz' });
    const mqtt = ready.json<{
      collectors: Record<string, { status: string; reason: string; message: string }>;
    }>().collectors.mqtt;
    expect(mqtt).toMatchObject({ status: 'error', reason: 'start_failed' });
    expect(mqtt?.message).toMatch(/^MQTT publisher could not start: .*ENOSPC/);
    // It keeps trying (full-jitter backoff capped at 1 s here) and shows it as a metric.
    await eventually(
      async () =>
        ((await second.metric(
          'gpulse_collector_errors_total{collector="mqtt",reason="start_failed"}',
        )) ?? 0) >= 2,
      15_000,
      'a retried start',
    );
    expect(await second.metric('gpulse_mqtt_connected')).toBe(0);
    // An event while the publisher cannot start waits in memory for it.
    second.agent.events.emit({
      type: 'gpu.xid',
      severity: 'critical',
      source: 'kmsg',
      message: 'Xid 79 while the disk was full',
      labels: { gpu: '0' },
    });

    // 3. Space is freed and the broker comes up: the start succeeds and the spool is replayed.
    rmSync(filler);
    await broker.start();
    await rec.waitFor(
      (m) => {
        const got = new Set(m.map((x: Received) => x.json.seq as number));
        return spooled.every((s) => got.has(s));
      },
      30_000,
      `replay of the ${spooled.length} spooled messages`,
    );
    await rec.waitFor(
      (m) => m.some((x) => x.topic.endsWith('/events') && x.text.includes('Xid 79')),
      20_000,
      'the event from the failed period',
    );
    const replayed = rec.messages.filter((m) => spooled.includes(m.json.seq as number));
    expect(replayed.every((m) => m.json.replay === true)).toBe(true);
    expect(await second.metric('gpulse_collector_up{collector="mqtt"}')).toBe(1);
    expect(await second.metric('gpulse_mqtt_connected')).toBe(1);
  }, 120_000);
});
