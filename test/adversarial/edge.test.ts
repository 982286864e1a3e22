// Adversarial suite, edge side (issue 17): every attack runs against the real component — the MQTT
// publisher with a real Mosquitto, the spool with damaged files on disk, `gpulse model apply` (the
// built CLI) against crafted stores, the drift API and CLI with extreme values — and asserts the
// bound: the process lives, losses are counted by a metric, nothing is written outside its root.
// Each test is bounded in time (its own timeout); they stay as regression tests.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildAgent } from '../../agent/build-agent.js';
import { FakeClock } from '../../agent/core/clock.js';
import { loadConfig } from '../../agent/config.js';
import { DriftComponent } from '../../agent/components/drift/drift.js';
import {
  parseReferenceProfile,
  type NumericFeatureProfile,
} from '../../agent/components/drift/profile.js';
import { parseEnvelope, parseSignedManifest } from '../../edge/models/manifest.js';
import { readPrivateKey, signManifest } from '../../edge/models/signing.js';
import { scanRecords } from '../../edge/mqtt/spool/record-format.js';
import { CLI, requireBuild } from '../helpers/cli.js';
import { silentLogger } from '../helpers/log-sink.js';
import {
  createHarness,
  harnessApplyArgs,
  indexObjects,
  type Harness,
} from '../helpers/models/harness.js';
import { fineTune, writeModel } from '../helpers/models/model-gen.js';
import { createMqttComponent } from '../../edge/mqtt/component.js';
import { fakeGpuCollector, startEdgeAgent, type EdgeAgent } from '../helpers/edge-agent.js';
import { eventually, useMosquitto, type Received, type Recorder } from '../helpers/mosquitto.js';
import { describeWithTools, tools } from '../helpers/tools.js';

/** Waits (30 s at most) until the recorder has received every one of `seqs`. */
function receivedAll(rec: Recorder, seqs: readonly number[], what: string): Promise<void> {
  return rec.waitFor(
    (m) => {
      const got = new Set(m.map((x: Received) => x.json.seq as number));
      return seqs.every((q) => got.has(q));
    },
    30_000,
    what,
  );
}

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

describeWithTools('adversarial: MQTT publisher', tools('mosquitto'), () => {
  const suite = useMosquitto({ restart: true });
  const { cleanups, tempDir, recorder } = suite;

  it('recovers from a start on a full disk: retries with backoff, then replays every spooled message', async () => {
    const rec = await recorder('gpulse/v1/adv-7/#');
    // A real small filesystem (root, as on the dev machines and CI).
    const mnt = mkdtempSync(join(tmpdir(), 'gpulse-adv-fullfs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
    cleanups.push(() => {
      execFileSync('umount', ['-l', mnt]);
      rmSync(mnt, { recursive: true, force: true });
    });
    const dir = join(mnt, 'mqtt');

    // 1. The broker is down: the agent spools at least 40 telemetry messages, then stops cleanly.
    await suite.broker.stop();
    const first = await startEdgeAgent({ url: suite.broker.url, site: 'adv-7', node: 'cam', dir });
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
      url: suite.broker.url,
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
    await suite.broker.start();
    await receivedAll(rec, spooled, `replay of the ${spooled.length} spooled messages`);
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

  it('replays the whole spool when mqtt.replayRate is 0 (it divided by zero into a 1 ms loop)', async () => {
    const rec = await recorder('gpulse/v1/adv-rate/#');
    const dir = tempDir('gpulse-adv-rate-');
    const { config } = loadConfig({
      env: { GPULSE_MQTT_RECONNECT_MAX: '1s' },
      flags: {
        listen: '127.0.0.1:0',
        'mqtt-url': suite.broker.url,
        site: 'adv-rate',
        node: 'cam',
        'mqtt-spool-dir': dir,
        'mqtt-interval': '200ms',
        'mqtt-flush': '200ms',
      },
    });
    // Set past the config schema, which may bound it: the component itself must cope.
    const mqttConfig = { ...config.mqtt, spool: { ...config.mqtt.spool, replayRate: 0 } };
    await suite.broker.stop();
    const mqtt = createMqttComponent(mqttConfig);
    const agent = buildAgent(config, {
      log: silentLogger(),
      version: 't',
      collectors: [fakeGpuCollector(2)],
      components: [mqtt],
    });
    await agent.start();
    cleanups.push(() => agent.stop());
    const spooledCount = async () => {
      const body = (await agent.app.inject('/metrics')).body;
      return Number(
        /gpulse_mqtt_published_total\{stream="telemetry",result="spooled"\} (\d+)/.exec(
          body,
        )?.[1] ?? 0,
      );
    };
    await eventually(async () => (await spooledCount()) >= 10, 30_000, '10 spooled messages');
    const spooled = spooledSeqs(dir);
    await suite.broker.start();
    await receivedAll(rec, spooled, `replay of ${spooled.length} spooled messages at replayRate 0`);
  }, 90_000);

  it('counts every message lost from a damaged spool, once, and replays the rest', async () => {
    const rec = await recorder('gpulse/v1/adv-13/#');
    const dir = tempDir('gpulse-adv-spool-');
    const flags = { 'mqtt-spool-max-bytes': '256KiB' }; // 16 KiB segments
    const tdir = join(dir, 'telemetry');
    const segments = () =>
      readdirSync(tdir)
        .filter((n) => n.endsWith('.seg'))
        .sort((a, b) => Number(a.slice(0, -4)) - Number(b.slice(0, -4)));
    // The same agent (same state directory) before the damage and at each restart after it.
    const start = () =>
      startEdgeAgent({ url: suite.broker.url, site: 'adv-13', node: 'cam', dir, flags });

    // The broker is down: the agent spools telemetry into at least six segments.
    await suite.broker.stop();
    const first = await start();
    await eventually(
      () => {
        try {
          return segments().length >= 6;
        } catch {
          return false;
        }
      },
      60_000,
      'six telemetry segments',
    );
    expect(await first.metric('gpulse_mqtt_spool_dropped_total{reason="size"}')).toBe(0);
    await first.stop();

    // Damage: renumber the segments across the 12-digit boundary (999999999998, 999999999999,
    // 1000000000000, ...), delete the second, cut the tail of the (sealed) third, cut one record
    // out of the middle of the fourth.
    const names = segments();
    const renamed = names.map((n, i) => {
      const to = join(tdir, `${999_999_999_998 + i}.seg`.padStart(16, '0'));
      renameSync(join(tdir, n), to);
      return to;
    });
    const recordsOf = (path: string) => scanRecords(readFileSync(path)).records;
    const deleted = recordsOf(renamed[1] as string).length;
    rmSync(renamed[1] as string);
    const third = readFileSync(renamed[2] as string);
    const thirdLast = recordsOf(renamed[2] as string).at(-1)!;
    writeFileSync(renamed[2] as string, third.subarray(0, thirdLast.offset + 10));
    const fourth = readFileSync(renamed[3] as string);
    const cut = recordsOf(renamed[3] as string)[1]!;
    writeFileSync(
      renamed[3] as string,
      Buffer.concat([fourth.subarray(0, cut.offset), fourth.subarray(cut.offset + cut.size)]),
    );
    const survivors = spooledSeqs(dir);
    expect(deleted).toBeGreaterThan(0);

    // A restart with the broker up: every survivor is replayed, every loss counted by reason.
    await suite.broker.start();
    const second = await start();
    cleanups.push(() => second.stop());
    await receivedAll(rec, survivors, `replay of the ${survivors.length} surviving messages`);
    expect(await second.metric('gpulse_mqtt_spool_dropped_total{reason="missing"}')).toBe(
      deleted + 1,
    );
    expect(await second.metric('gpulse_mqtt_spool_dropped_total{reason="corrupt"}')).toBe(1);
    // The lost seqs never arrive; nothing else is missing between the first and last survivor.
    const got = new Set(rec.messages.map((x) => x.json.seq as number));
    const lo = survivors[0] as number;
    const hi = survivors.at(-1) as number;
    let absent = 0;
    for (let q = lo; q <= hi; q++) if (!got.has(q)) absent++;
    expect(absent).toBe(deleted + 2);
    await second.stop();

    // Counted once: another restart finds nothing new.
    const third2 = await start();
    cleanups.push(() => third2.stop());
    expect(await third2.metric('gpulse_mqtt_spool_dropped_total{reason="missing"}')).toBe(0);
    expect(await third2.metric('gpulse_mqtt_spool_dropped_total{reason="corrupt"}')).toBe(0);
  }, 120_000);
});

/** Runs the built `gpulse model apply` against a harness; resolves with its exit code and JSON. */
function modelApply(
  h: Harness,
  extra: readonly string[] = [],
): Promise<{ code: number | null; result: Record<string, unknown>; stderr: string }> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'model',
      ...harnessApplyArgs(h),
      '--trial',
      '0s',
      '--retries',
      '0',
      '--log-level',
      'warn',
      '--json',
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) =>
    child.on('close', (code) => {
      let result: Record<string, unknown> = {};
      try {
        result = JSON.parse(stdout) as Record<string, unknown>;
      } catch {
        // no JSON: the command failed before it had a result (stderr says why)
      }
      resolve({ code, result, stderr });
    }),
  );
}

/** SHA-256 of a file (comparing 4 MiB buffers with toEqual takes minutes). */
function sha256Of(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Every symbolic link under a directory (relative paths). */
function linksUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isSymbolicLink()) out.push(r);
      else if (e.isDirectory()) walk(join(d, e.name), r);
    }
  };
  walk(dir, '');
  return out;
}

describe('adversarial: model updates through `gpulse model apply`', () => {
  let h: Harness;
  let outside: string;

  beforeAll(() => requireBuild());
  afterEach(async () => {
    await h.cleanup();
    rmSync(outside, { recursive: true, force: true });
  });

  /** v1 (1.0.0) committed with the built CLI, the store ready for the next release. */
  async function withV1(version = '1.0.0'): Promise<Buffer> {
    h = await createHarness();
    outside = mkdtempSync(join(tmpdir(), 'gpulse-adv-outside-'));
    const v1 = randomBytes(4 * 1024 * 1024);
    await writeModel(join(h.tmp, 'm1'), v1);
    await h.publish(join(h.tmp, 'm1'), version, 1);
    const first = await modelApply(h);
    expect(first.code, first.stderr).toBe(0);
    return v1;
  }

  it('refuses a manifest whose version takes the reserved .partial ending', async () => {
    const v1 = await withV1();
    await writeModel(join(h.tmp, 'm2'), fineTune(v1));
    await h.publish(join(h.tmp, 'm2'), '7.0.0', 2);
    // Re-signed with the trusted key: only the name rule stands between it and the device.
    const path = join(h.store, 'detector', 'manifest.json');
    const signed = parseSignedManifest(parseEnvelope(readFileSync(path, 'utf8')).signed);
    writeFileSync(
      path,
      JSON.stringify(
        signManifest({ ...signed, version: '7.0.0.partial' }, await readPrivateKey(h.keyPath)),
      ),
    );
    const r = await modelApply(h);
    expect(r.code).toBe(1);
    expect(r.result).toMatchObject({ outcome: 'refused' });
    expect(String(r.result.message)).toMatch(/reserved for the updater's work directories/);
    expect(readdirSync(join(h.root, 'versions'))).toEqual(['1.0.0']);
    expect(readlinkSync(join(h.root, 'current'))).toBe('versions/1.0.0');
  }, 60_000);

  it('never works in a committed version left named X.partial by an older build', async () => {
    const v1 = await withV1('6.9.0');
    // The layout an older build allowed: version "7.0.0.partial" committed and current.
    const legacy = '7.0.0.partial';
    renameSync(join(h.root, 'versions', '6.9.0'), join(h.root, 'versions', legacy));
    renameSync(
      join(h.root, 'manifests', '6.9.0.json'),
      join(h.root, 'manifests', `${legacy}.json`),
    );
    const statePath = join(h.root, 'state.json');
    writeFileSync(statePath, readFileSync(statePath, 'utf8').replaceAll('"6.9.0"', `"${legacy}"`));
    rmSync(join(h.root, 'current'));
    symlinkSync(`versions/${legacy}`, join(h.root, 'current'));
    const config = sha256Of(join(h.root, 'versions', legacy, 'config.json'));
    const weights = sha256Of(join(h.root, 'versions', legacy, 'weights.bin'));
    await writeModel(join(h.tmp, 'm2'), fineTune(v1));
    await h.publish(join(h.tmp, 'm2'), '7.0.0', 2);
    // A failing update to 7.0.0 (every chunk corrupt on the wire).
    await h.serve({
      fault: (p) =>
        p.includes('blobs/') || p.includes('chunks/') ? { kind: 'corrupt' } : undefined,
    });
    const failed = await modelApply(h);
    expect(failed.code).toBe(1);
    expect(failed.result).toMatchObject({ outcome: 'failed', version: '7.0.0' });
    expect(sha256Of(join(h.root, 'versions', legacy, 'config.json'))).toBe(config);
    expect(sha256Of(join(h.root, 'versions', legacy, 'weights.bin'))).toBe(weights);
    expect(readlinkSync(join(h.root, 'current'))).toBe(`versions/${legacy}`);
    // And a good store then commits 7.0.0 beside it, the legacy version kept as previous.
    await h.serve();
    const ok = await modelApply(h);
    expect(ok.code, ok.stderr).toBe(0);
    expect(readlinkSync(join(h.root, 'previous'))).toBe(`versions/${legacy}`);
    expect(sha256Of(join(h.root, 'versions', legacy, 'config.json'))).toBe(config);
  }, 90_000);

  it('never writes through links planted in a resumed work directory', async () => {
    const v1 = await withV1();
    const v2 = fineTune(v1, 0.5);
    await writeModel(join(h.tmp, 'm2'), v2);
    await h.publish(join(h.tmp, 'm2'), '2.0.0', 2);
    // A first attempt fails half way: its work directory stays for the next one to resume. The
    // chunk index (objects in chunks/ too) is served intact, chunk data is not.
    const index = [...(await indexObjects(h.store, 2))];
    await h.serve({
      fault: (p, attempt) =>
        (p.includes('chunks/') && !index.some((sha) => p.endsWith(sha))) ||
        (p.includes('blobs/') && attempt > 1)
          ? { kind: 'corrupt' }
          : undefined,
    });
    const first = await modelApply(h, ['--transport', 'ranges']);
    expect(first.result).toMatchObject({ outcome: 'failed' });
    const work = join(h.root, 'versions', '.partial-2.0.0');
    expect(lstatSync(join(work, 'weights.bin')).isFile()).toBe(true);
    // Planted: the big file is a link to a file outside the model root, the small one a hard link.
    const victim = join(outside, 'victim.bin');
    const victim2 = join(outside, 'victim2.json');
    writeFileSync(victim, 'precious');
    writeFileSync(victim2, '{"keep":true}');
    rmSync(join(work, 'weights.bin'));
    symlinkSync(victim, join(work, 'weights.bin'));
    rmSync(join(work, 'config.json'));
    linkSync(victim2, join(work, 'config.json'));
    await h.serve();
    const second = await modelApply(h);
    expect(second.code).toBe(1);
    expect(second.result).toMatchObject({ outcome: 'failed', reason: 'workdir_tainted' });
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(readFileSync(victim2, 'utf8')).toBe('{"keep":true}');
    // The work directory went to quarantine as it was (the link still a link), unused.
    const moved = readdirSync(join(h.root, 'quarantine')).filter((n) => n.startsWith('.workdir-'));
    expect(moved).toHaveLength(1);
    expect(linksUnder(join(h.root, 'quarantine', moved[0] as string))).toEqual(['weights.bin']);
    expect(readlinkSync(join(h.root, 'current'))).toBe('versions/1.0.0');
    // The next attempt starts afresh and commits a version with no link in it.
    const third = await modelApply(h);
    expect(third.code, third.stderr).toBe(0);
    expect(third.result).toMatchObject({ outcome: 'committed', version: '2.0.0' });
    expect(linksUnder(join(h.root, 'versions'))).toEqual([]);
    expect(sha256Of(join(h.root, 'versions', '2.0.0', 'weights.bin'))).toBe(
      createHash('sha256').update(v2).digest('hex'),
    );
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(readFileSync(victim2, 'utf8')).toBe('{"keep":true}');
  }, 120_000);

  it('never writes into a work directory or versions/ that is a link out of the root', async () => {
    const v1 = await withV1();
    await writeModel(join(h.tmp, 'm2'), fineTune(v1));
    await h.publish(join(h.tmp, 'm2'), '2.0.0', 2);
    // An interrupted attempt (the store answers 503 for every chunk) leaves a work directory...
    await h.serve({
      fault: (p) =>
        p.includes('blobs/') || p.includes('chunks/') ? { kind: 'status', code: 503 } : undefined,
    });
    expect((await modelApply(h)).result).toMatchObject({ outcome: 'failed' });
    // ...which is replaced by a link to a directory outside the root.
    const work = join(h.root, 'versions', '.partial-2.0.0');
    rmSync(work, { recursive: true, force: true });
    mkdirSync(join(outside, 'elsewhere'));
    writeFileSync(join(outside, 'elsewhere', 'weights.bin'), 'precious');
    symlinkSync(join(outside, 'elsewhere'), work);
    await h.serve();
    const resumed = await modelApply(h);
    expect(resumed.result).toMatchObject({ outcome: 'failed', reason: 'workdir_tainted' });
    expect(readdirSync(join(outside, 'elsewhere'))).toEqual(['weights.bin']);
    expect(readFileSync(join(outside, 'elsewhere', 'weights.bin'), 'utf8')).toBe('precious');
    // versions/ itself a link out of the root: refused before anything is written.
    renameSync(join(h.root, 'versions'), join(outside, 'versions'));
    symlinkSync(join(outside, 'versions'), join(h.root, 'versions'));
    await h.serve();
    const refused = await modelApply(h);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/versions is a symbolic link or not a directory/);
    expect(readdirSync(join(outside, 'versions')).sort()).toEqual(['1.0.0']);
  }, 90_000);
});

describe('adversarial: drift profiles of values near ±1.7e308', () => {
  const BIG = 1.7e308;
  /** Reference rows: a quarter at each extreme, the rest spread between. */
  const rows = Array.from({ length: 400 }, (_, i) => ({
    x: i % 4 === 0 ? BIG : i % 4 === 1 ? -BIG : (i - 200) * 1e305,
    c: i % 3 === 0 ? 'a' : 'b',
  }));
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('the CLI writes and the API hands out only profiles their schema accepts, round trip', async () => {
    requireBuild();
    dir = mkdtempSync(join(tmpdir(), 'gpulse-adv-drift-'));
    writeFileSync(join(dir, 'ref.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    writeFileSync(join(dir, 'ref.csv'), `x,c\n${rows.map((r) => `${r.x},${r.c}`).join('\n')}\n`);
    for (const input of ['ref.jsonl', 'ref.csv']) {
      execFileSync(process.execPath, [
        CLI,
        'drift',
        'profile',
        '--input',
        join(dir, input),
        '--out',
        join(dir, `${input}.profile.json`),
      ]);
      const p = parseReferenceProfile(readFileSync(join(dir, `${input}.profile.json`), 'utf8'));
      const x = p.features.x as NumericFeatureProfile;
      expect([x.min, x.max]).toEqual([-BIG, BIG]);
      expect(x.std).toBeGreaterThan(1e308);
    }
    // Overflowing and non-finite input is refused with where it is.
    writeFileSync(join(dir, 'bad.csv'), 'x\n1\n1e999\n');
    let stderr = '';
    try {
      execFileSync(
        process.execPath,
        [CLI, 'drift', 'profile', '--input', join(dir, 'bad.csv'), '--out', join(dir, 'bad.json')],
        { stdio: 'pipe' },
      );
    } catch (err) {
      stderr = String((err as { stderr: Buffer }).stderr);
    }
    expect(stderr).toMatch(/line 3, column "x": 1e999 is not a finite number/);

    // The API: rows in, profile out, that profile back in.
    const { config } = loadConfig({
      file: { name: 'gpulse.yaml', text: 'listen: 127.0.0.1:0\ndrift:\n  models:\n    m: {}\n' },
    });
    const drift = new DriftComponent(config.drift);
    const clock = new FakeClock(1_700_000_000_000);
    const agent = buildAgent(config, {
      log: silentLogger(),
      version: 't',
      clock,
      collectors: [],
      components: [drift],
    });
    await agent.start();
    try {
      const post = (url: string, body: unknown) =>
        agent.app.inject({
          method: 'POST',
          url,
          headers: { 'content-type': 'application/json' },
          payload: typeof body === 'string' ? body : JSON.stringify(body),
        });
      expect((await post('/api/v1/models/m/reference', rows)).statusCode).toBe(201);
      const served = (await agent.app.inject('/api/v1/models/m/reference')).body;
      const parsed = parseReferenceProfile(served);
      expect((parsed.features.x as NumericFeatureProfile).mean).not.toBeNull();
      expect((await post('/api/v1/models/m/reference', JSON.parse(served))).statusCode).toBe(201);
      // The CLI's profile is accepted as is.
      const fromCli = JSON.parse(
        readFileSync(join(dir, 'ref.csv.profile.json'), 'utf8'),
      ) as unknown;
      expect((await post('/api/v1/models/m/reference', fromCli)).statusCode).toBe(201);
      const refused = await post('/api/v1/models/m/observations', '[{"x":1},{"x":1e999}]');
      expect(refused.statusCode).toBe(400);
      expect(refused.body).toMatch(/row 1, feature \\"x\\": Infinity is not a finite number/);
      const observed = await post('/api/v1/models/m/observations', rows);
      expect(observed.statusCode).toBe(202);
      await clock.advance(60_000);
      // The current window's statistics and scores stay numbers on every surface.
      const result = (await agent.app.inject('/api/v1/models/m/drift')).json<{
        features: {
          feature: string;
          window: { mean: number; std: number };
          reference: { mean: number; std: number };
          scores: Record<string, number>;
        }[];
      }>();
      const x = result.features.find((f) => f.feature === 'x');
      expect(x?.window.mean).toBe(x?.reference.mean);
      expect(x?.window.std).toBe(x?.reference.std);
      expect(x?.scores).toMatchObject({ ks_statistic: 0, wasserstein: 0, psi: 0 });
      const metrics = (await agent.app.inject('/metrics')).body;
      expect(metrics).toContain('gpulse_drift_score{model="m",feature="x",method="wasserstein"} 0');
    } finally {
      await agent.stop();
    }
  }, 60_000);
});
