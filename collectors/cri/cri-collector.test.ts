// The cri collector against a gRPC server built from the same CRI .proto, answering as CRI-O
// (not in Debian, so not run for real here): the ids come from CRI-O's real cgroup lines through
// the agent's own cgroup parser, and every call the collector makes is counted on the server.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { containerFromCgroupPath } from '../../agent/attribution/cgroup-container.js';
import { FakeClock, systemClock } from '../../agent/core/clock.js';
import { CollectorError, NoDataError } from '../../agent/core/errors.js';
import type { CollectContext, CollectorOutput, PolledCollector } from '../../agent/core/types.js';
import { collectorHarness, sampleValue } from '../../test/helpers/collector-harness.js';
import { FakeCrio } from '../../test/helpers/fake-cri.js';
import { silentLogger } from '../../test/helpers/log-sink.js';
import { tempDirs } from '../../test/helpers/temp-dirs.js';
import { criConfigSchema, type CriConfig } from './config.js';
import { createCriCollector } from './cri-collector.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const tempDir = tempDirs('gpulse-cri-');

/** The CRI-O cgroup lines of the fixtures: elastic/apm's spec and runc#4620's excerpt. */
function crioCgroupLines(): {
  readonly apm: string;
  readonly runc: string;
  readonly conmon: string;
} {
  const spec = JSON.parse(
    readFileSync(
      join(
        FIXTURES,
        'cgroup-lines__crio-scope-openshift-docker-scope-ecs-gnome-vte-spawn__with-expected-ids__elastic-apm-spec.json',
      ),
      'utf8',
    ),
  ) as Record<string, { groupLine: string }>;
  const excerpts = readFileSync(
    join(FIXTURES, 'proc-pid-cgroup__github-issue-excerpts.txt'),
    'utf8',
  )
    .split('\n')
    .filter((l) => !l.startsWith('#'));
  const pathOf = (line: string | undefined) => (line ?? '').split(':').slice(2).join(':');
  return {
    apm: pathOf(spec.testUnderscores?.groupLine),
    runc: pathOf(excerpts.find((l) => l.startsWith('13:freezer:') && l.includes('/crio-'))),
    conmon: pathOf(excerpts.find((l) => l.includes('crio-conmon-'))),
  };
}

/** The container a CRI-O cgroup line names, as the GPU collectors record it. */
function idOf(path: string): { id: string; podUid: string } {
  const c = containerFromCgroupPath(path);
  if (!c?.podUid) throw new Error(`no container in ${path}`);
  expect(c.runtime).toBe('cri-o');
  return { id: c.id, podUid: c.podUid };
}

const IMAGE_ID = `sha256:${'ab'.repeat(32)}`;
const OTHER_IMAGE_ID = `sha256:${'cd'.repeat(32)}`;

/** A CRI-O container with what the kubelet gives it: an image by id, kubelet labels. */
function container(id: string, sandbox: string, name: string, image = IMAGE_ID): object {
  return {
    id,
    pod_sandbox_id: sandbox,
    metadata: { name, attempt: 0 },
    image: { image },
    image_ref: image,
    state: 'CONTAINER_RUNNING',
    labels: { 'io.kubernetes.container.name': name },
  };
}

function sandbox(id: string, name: string, namespace: string, uid: string): object {
  return { id, metadata: { name, uid, namespace, attempt: 0 }, state: 'SANDBOX_READY' };
}

const SANDBOX = 'f'.repeat(64);

let crio: FakeCrio | undefined;
let clock: FakeClock;
let unnamed: Set<string>;

beforeEach(() => {
  clock = new FakeClock();
  unnamed = new Set();
});

afterEach(() => {
  crio?.stop();
  crio = undefined;
});

/** The facts of the fixtures' trainer container (the `apm` cgroup line) in namespace ml. */
function trainerFacts(apm: { id: string; podUid: string }, pod: string, tag: string): object {
  return {
    id: apm.id,
    name: 'trainer',
    image: `quay.io/ml/trainer:${tag}`,
    pod,
    namespace: 'ml',
    podUid: apm.podUid,
  };
}

function ctx(): CollectContext {
  return { signal: new AbortController().signal, log: silentLogger(), now: () => clock.now() };
}

function collector(socket: string, settings: Record<string, unknown> = {}): PolledCollector {
  const config: CriConfig = criConfigSchema.parse({ socket, ...settings });
  return createCriCollector(config, { clock, unnamedGpuContainers: () => unnamed });
}

/** `gpulse_cri_requests_total` by "method code". */
function requests(out: CollectorOutput): Record<string, number> {
  return Object.fromEntries(
    out.samples
      .filter((s) => s.desc.name === 'gpulse_cri_requests_total')
      .map((s) => [`${s.labels.method} ${s.labels.code}`, s.value]),
  );
}

/** A runtime with the two CRI-O containers of the fixtures in one pod each. */
async function crioWithFixtures(): Promise<{
  socket: string;
  apm: { id: string; podUid: string };
  runc: { id: string; podUid: string };
}> {
  const lines = crioCgroupLines();
  const apm = idOf(lines.apm);
  const runc = idOf(lines.runc);
  const socket = join(tempDir(), 'crio.sock');
  crio = new FakeCrio(socket, {
    containers: [container(apm.id, SANDBOX, 'trainer')],
    sandboxes: [sandbox(SANDBOX, 'trainer-0', 'ml', apm.podUid)],
    images: [{ id: IMAGE_ID, repo_tags: ['quay.io/ml/trainer:v1'], repo_digests: [] }],
  });
  await crio.start();
  return { socket, apm, runc };
}

describe('cri collector against a CRI-O stand-in', () => {
  it('names a GPU container from its CRI-O cgroup line: Kubernetes name, image, pod, namespace, uid', async () => {
    const { socket, apm } = await crioWithFixtures();
    expect(apm).toEqual({
      id: '2227daf62df6694645fee5df53c1f91271546a9560e8600a525690ae252b7f63',
      podUid: '90d81341-92de-11e7-8cf2-507b9d4141fa',
    });
    // The monitor next to each CRI-O container is no workload: it never becomes an id to look up.
    expect(containerFromCgroupPath(crioCgroupLines().conmon)).toBeUndefined();
    unnamed.add(apm.id);
    const out = await collector(socket).collect(ctx());
    expect(out.facts?.containers).toEqual([trainerFacts(apm, 'trainer-0', 'v1')]);
    expect(requests(out)).toEqual({
      'Version OK': 1,
      'ListContainers OK': 1,
      'ListPodSandbox OK': 1,
      'ListImages OK': 1,
    });
    const info = out.samples.find((s) => s.desc.name === 'gpulse_cri_runtime_info');
    expect(info?.labels).toEqual({
      runtime: 'cri-o',
      version: '1.28.1',
      api_version: 'v1',
      socket,
    });
    expect(info?.value).toBe(1);
    expect(out.samples.find((s) => s.desc.name === 'gpulse_cri_containers')?.value).toBe(1);
  });

  it('asks nothing (and loads no gRPC client) while no GPU container is unnamed', async () => {
    const { socket, apm } = await crioWithFixtures();
    const c = collector(socket);
    for (let i = 0; i < 5; i++) {
      const out = await c.collect(ctx());
      expect(out.facts?.containers).toEqual([]);
      await clock.advance(2000);
    }
    expect(Object.fromEntries(crio!.calls)).toEqual({});
    // The first container to name brings the version and the one listing.
    unnamed.add(apm.id);
    await c.collect(ctx());
    expect(Object.fromEntries(crio!.calls)).toEqual({
      Version: 1,
      ListContainers: 1,
      ListPodSandbox: 1,
      ListImages: 1,
    });
  });

  it('makes no call at all in steady state, over many collects', async () => {
    const { socket, apm } = await crioWithFixtures();
    const c = collector(socket);
    unnamed.add(apm.id);
    const first = await c.collect(ctx());
    const calls = crio!.total();
    expect(calls).toBe(4);
    // The agent stops listing an id once a fact names it; the collector's cache covers the gap.
    for (let i = 0; i < 100; i++) {
      await clock.advance(2000);
      const out = await c.collect(ctx());
      expect(out).toBe(first); // the same object: the state store makes no new snapshot
      if (i === 50) unnamed.clear();
    }
    expect(crio!.total()).toBe(calls);
  });

  it('a new id makes exactly one listing, which replaces the cache (removed containers drop out)', async () => {
    const { socket, apm, runc } = await crioWithFixtures();
    const c = collector(socket);
    unnamed.add(apm.id);
    await c.collect(ctx());
    // The first container goes; a second one, in another pod with another image, comes.
    crio!.state.containers = [container(runc.id, 'e'.repeat(64), 'worker', OTHER_IMAGE_ID)];
    crio!.state.sandboxes = [sandbox('e'.repeat(64), 'worker-7', 'batch', runc.podUid)];
    crio!.state.images.push({
      id: OTHER_IMAGE_ID,
      repo_tags: [],
      repo_digests: ['quay.io/batch/worker@sha256:' + '12'.repeat(32)],
    });
    unnamed = new Set([runc.id]);
    await clock.advance(2000);
    const out = await c.collect(ctx());
    expect(out.facts?.containers).toEqual([
      {
        id: runc.id,
        name: 'worker',
        image: 'quay.io/batch/worker@sha256:' + '12'.repeat(32),
        pod: 'worker-7',
        namespace: 'batch',
        podUid: 'a5c1f8d5-1919-434d-add7-4afaafdaef89',
      },
    ]);
    expect(Object.fromEntries(crio!.calls)).toEqual({
      Version: 1,
      ListContainers: 2,
      ListPodSandbox: 2,
      // A new image id: ListImages once more; a known one would not be asked.
      ListImages: 2,
    });
    for (let i = 0; i < 10; i++) {
      await clock.advance(2000);
      await c.collect(ctx());
    }
    expect(crio!.count('ListContainers')).toBe(2);
  });

  it('an id the runtime does not know is asked about again after 5s, 10s, 20s ... up to the cap', async () => {
    const { socket } = await crioWithFixtures();
    const c = collector(socket, { maxRetryAfter: '20s' });
    unnamed.add('9'.repeat(64));
    const listingsAt: number[] = [];
    const t0 = clock.now();
    for (let t = 0; t <= 70_000; t += 1000) {
      const before = crio!.count('ListContainers');
      const out = await c.collect(ctx());
      expect(out.facts?.containers).toHaveLength(1);
      if (crio!.count('ListContainers') > before) listingsAt.push(clock.now() - t0);
      await clock.advance(1000);
    }
    expect(listingsAt).toEqual([0, 5000, 15_000, 35_000, 55_000]);
    expect(crio!.count('ListPodSandbox')).toBe(5);
    expect(crio!.count('Version')).toBe(1);
  });

  it('the socket vanishes (UNAVAILABLE, retried with backoff) and comes back: it recovers', async () => {
    const { socket, apm, runc } = await crioWithFixtures();
    const c = collector(socket);
    unnamed.add(apm.id);
    await c.collect(ctx());
    crio!.stop();
    // A socket file nobody listens on: connecting is refused.
    writeFileSync(socket, '');
    unnamed.add(runc.id);
    const failures: CollectorError[] = [];
    for (let i = 0; i < 9; i++) {
      await clock.advance(2000);
      const err = await c.collect(ctx()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CollectorError);
      failures.push(err as CollectorError);
    }
    expect(new Set(failures.map((f) => f.reason))).toEqual(new Set(['unavailable']));
    // The two listings go out together; whichever failed first is the one told.
    expect(failures[0]?.message).toMatch(
      new RegExp(`^CRI runtime at ${socket}: List(Containers|PodSandbox): UNAVAILABLE`),
    );
    // Between retries the same error stands (one state, one log line) and nothing is called.
    expect(failures[1]).toBe(failures[0]);
    expect(failures.at(-1)?.message).toContain(`CRI runtime at ${socket}: Version: UNAVAILABLE`);
    rmSync(socket);
    crio = new FakeCrio(socket, {
      containers: [container(apm.id, SANDBOX, 'trainer'), container(runc.id, SANDBOX, 'sidecar')],
      sandboxes: [sandbox(SANDBOX, 'trainer-0', 'ml', apm.podUid)],
      images: [{ id: IMAGE_ID, repo_tags: ['quay.io/ml/trainer:v1'], repo_digests: [] }],
    });
    await crio.start();
    const t0 = clock.now();
    let out: CollectorOutput | undefined;
    for (let i = 0; i < 15 && !out; i++) {
      await clock.advance(2000);
      out = await c.collect(ctx()).catch(() => undefined);
    }
    expect(out?.facts?.containers?.map((x) => x.name)).toEqual(['trainer', 'sidecar']);
    // Failed at +2s (the listing), retried 5s later (+8s: Version), 10s later (+18s), and 20s
    // later (+38s) finds it back: four attempts in 36 seconds, never one per tick.
    expect(clock.now() - t0).toBe(20_000);
    expect(requests(out!)).toEqual({
      'Version OK': 2,
      'ListContainers OK': 2,
      'ListPodSandbox OK': 2,
      'ListImages OK': 1,
      'ListContainers UNAVAILABLE': 1,
      'ListPodSandbox UNAVAILABLE': 1,
      'Version UNAVAILABLE': 2,
    });
    expect(Object.fromEntries(crio.calls)).toEqual({
      Version: 1,
      ListContainers: 1,
      ListPodSandbox: 1,
    });
  });

  it('a runtime that stops and removes its socket: no_data while it is gone, back at the next tick', async () => {
    const { socket, apm, runc } = await crioWithFixtures();
    const c = collector(socket);
    unnamed.add(apm.id);
    await c.collect(ctx());
    crio!.stop(); // removes the socket file, as containerd and CRI-O do when they stop
    unnamed.add(runc.id);
    await clock.advance(2000);
    expect(await c.collect(ctx()).catch((e: unknown) => e)).toMatchObject({
      reason: 'unavailable',
    });
    await clock.advance(5000);
    const gone = await c.collect(ctx()).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(NoDataError);
    expect(gone).toMatchObject({ reason: 'no_socket' });
    expect((gone as Error).message).toContain(`no CRI socket at ${socket}`);
    crio = new FakeCrio(socket, {
      containers: [container(runc.id, SANDBOX, 'worker')],
      sandboxes: [sandbox(SANDBOX, 'worker-0', 'batch', runc.podUid)],
      images: [{ id: IMAGE_ID, repo_tags: ['quay.io/ml/trainer:v1'], repo_digests: [] }],
    });
    await crio.start();
    // The socket is looked for on every tick (a stat, no call): found again 2s later.
    await clock.advance(2000);
    const out = await c.collect(ctx());
    expect(out.facts?.containers?.map((x) => [x.name, x.pod])).toEqual([['worker', 'worker-0']]);
    // The image id is known from before the restart: no ListImages.
    expect(Object.fromEntries(crio.calls)).toEqual({
      Version: 1,
      ListContainers: 1,
      ListPodSandbox: 1,
    });
  });

  it('an image listed by name needs no ListImages; a container whose sandbox is gone keeps its kubelet labels', async () => {
    const { socket, apm } = await crioWithFixtures();
    crio!.state.containers = [
      {
        ...container(apm.id, 'd'.repeat(64), 'trainer', 'quay.io/ml/trainer:v2'),
        labels: {
          'io.kubernetes.container.name': 'trainer',
          'io.kubernetes.pod.name': 'trainer-1',
          'io.kubernetes.pod.namespace': 'ml',
          'io.kubernetes.pod.uid': apm.podUid,
        },
      },
    ];
    unnamed.add(apm.id);
    const out = await collector(socket).collect(ctx());
    expect(out.facts?.containers).toEqual([trainerFacts(apm, 'trainer-1', 'v2')]);
    expect(crio!.count('ListImages')).toBe(0);
  });

  it('a runtime that serves only CRI v1alpha2 is an error that says which versions are needed', async () => {
    const socket = join(tempDir(), 'crio.sock');
    crio = new FakeCrio(socket, { containers: [], sandboxes: [], images: [] });
    await crio.start('v1alpha2');
    const c = collector(socket);
    unnamed.add('8'.repeat(64));
    const err = await c.collect(ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CollectorError);
    expect(err).toMatchObject({
      reason: 'cri_v1alpha2',
      message: `the runtime at ${socket} only serves CRI v1alpha2; containerd ≥ 1.6 / CRI-O ≥ 1.20 needed (runtime.v1)`,
    });
    expect(crio.count('v1alpha2.Version')).toBe(1);
    // A lasting state: not asked again on every tick, only for a GPU container it could name.
    unnamed.clear();
    for (let i = 0; i < 10; i++) {
      await clock.advance(60_000);
      expect(await c.collect(ctx()).catch((e: unknown) => e)).toBe(err);
    }
    expect(crio.count('v1alpha2.Version')).toBe(1);
    unnamed.add('9'.repeat(64));
    await c.collect(ctx()).catch(() => undefined);
    expect(crio.count('v1alpha2.Version')).toBe(2);
  });

  it('a gRPC socket that serves no CRI (Docker’s containerd) is no_data in auto mode, an error when required', async () => {
    const socket = join(tempDir(), 'containerd.sock');
    crio = new FakeCrio(socket, { containers: [], sandboxes: [], images: [] });
    await crio.start('none');
    unnamed.add('8'.repeat(64));
    const auto = await collector(socket)
      .collect(ctx())
      .catch((e: unknown) => e);
    expect(auto).toBeInstanceOf(NoDataError);
    expect(auto).toMatchObject({ reason: 'no_cri' });
    expect((auto as Error).message).toContain(`${socket} answers gRPC but serves no CRI`);
    const required = await collector(socket, { mode: 'required' })
      .collect(ctx())
      .catch((e: unknown) => e);
    expect(required).toBeInstanceOf(CollectorError);
    expect(required).toMatchObject({ reason: 'no_cri' });
  });

  it('no socket: no_data naming the sockets looked for and the setting; the socket is looked for again every tick', async () => {
    const dir = tempDir();
    const defaults = [join(dir, 'containerd.sock'), join(dir, 'crio.sock')];
    const c = createCriCollector(criConfigSchema.parse({}), {
      clock,
      unnamedGpuContainers: () => unnamed,
      defaultSockets: defaults,
    });
    const err = await c.collect(ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoDataError);
    expect(err).toMatchObject({
      reason: 'no_socket',
      message: `no CRI socket: looked for ${defaults.join(', ')}; set collectors.cri.socket (GPULSE_CRI_SOCKET, --cri-socket) to the runtime's socket, or GPULSE_CRI_MODE=off`,
    });
    // CRI-O starts later, on the second default path: seen at the next tick.
    crio = new FakeCrio(defaults[1]!, { containers: [], sandboxes: [], images: [] });
    await crio.start();
    await clock.advance(2000);
    expect((await c.collect(ctx())).facts?.containers).toEqual([]);
    unnamed.add('8'.repeat(64));
    const out = await c.collect(ctx());
    expect(out.samples.find((s) => s.desc.name === 'gpulse_cri_runtime_info')?.labels.socket).toBe(
      defaults[1],
    );
  });
});

describe('cri collector under the agent runner', () => {
  const harness = collectorHarness('cri-runner');

  it('logs a runtime that is down once, not per tick, and recovers once it answers', async () => {
    const socket = join(tempDir(), 'crio.sock');
    // A socket file nobody listens on, as a crashed runtime leaves it.
    writeFileSync(socket, '');
    const config = criConfigSchema.parse({ socket, interval: '500ms', retryAfter: '1s' });
    const waiting = new Set(['8'.repeat(64)]);
    const run = harness.run(
      createCriCollector(config, { clock: systemClock, unnamedGpuContainers: () => waiting }),
    );
    await run.until((s) => s.status === 'error' && s.reason === 'unavailable');
    // Several ticks pass with the runtime still down (retries at +1s, then +2s).
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const down = run.records.filter((r) => r.collector === 'cri' && r.status === 'error');
    expect(down).toHaveLength(1);
    expect(down[0]?.err).toMatch(new RegExp(`^CRI runtime at ${socket}: Version: UNAVAILABLE`));
    rmSync(socket);
    crio = new FakeCrio(socket, { containers: [], sandboxes: [], images: [] });
    await crio.start();
    const up = await run.until((s) => s.status === 'ok', 10_000);
    expect(sampleValue(up.output.samples, 'gpulse_cri_runtime_info', { runtime: 'cri-o' })).toBe(1);
    expect(run.records.filter((r) => r.msg === 'collector recovered')).toHaveLength(1);
    expect(run.records.filter((r) => r.msg === 'CRI runtime found')).toHaveLength(1);
  }, 20_000);
});
