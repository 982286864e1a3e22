// The cri collector against a real containerd (Debian's, CRI plugin on), with a pod and a
// container made through the CRI API as a kubelet makes them: the id comes from the container
// process's own /proc/<pid>/cgroup, and every name from what containerd answers.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { containerFromCgroupFile } from '../../agent/attribution/cgroup-container.js';
import { FakeClock } from '../../agent/core/clock.js';
import type { CollectContext, CollectorOutput } from '../../agent/core/types.js';
import {
  CONTAINERD_PRECONDITIONS,
  startContainerd,
  TEST_IMAGE,
  type PodMeta,
  type TestContainer,
  type TestContainerd,
} from '../../test/helpers/containerd.js';
import { silentLogger } from '../../test/helpers/log-sink.js';
import { NoDataError } from '../../agent/core/errors.js';
import { describeWhen } from '../../test/helpers/tools.js';
import { criConfigSchema } from './config.js';
import { createCriCollector } from './cri-collector.js';

const POD: PodMeta = {
  name: 'trainer-0',
  namespace: 'ml',
  uid: '4b7c1d2e-0f3a-4c5b-9d6e-7f8a9b0c1d2e',
};

/** `gpulse_cri_requests_total` by "method code". */
function requests(out: CollectorOutput): Record<string, number> {
  return Object.fromEntries(
    out.samples
      .filter((s) => s.desc.name === 'gpulse_cri_requests_total')
      .map((s) => [`${s.labels.method} ${s.labels.code}`, s.value]),
  );
}

/** A cri collector on `socket` that names the ids in `unnamed`, its fake clock and a context. */
function criCollector(socket: string, unnamed: ReadonlySet<string>) {
  const clock = new FakeClock();
  const collector = createCriCollector(criConfigSchema.parse({ socket }), {
    clock,
    unnamedGpuContainers: () => unnamed,
  });
  const ctx: CollectContext = {
    signal: new AbortController().signal,
    log: silentLogger(),
    now: () => clock.now(),
  };
  return { clock, collector, ctx };
}

describeWhen('cri collector with a real containerd', CONTAINERD_PRECONDITIONS, () => {
  let containerd: TestContainerd;
  let trainer: TestContainer;
  beforeAll(async () => {
    containerd = await startContainerd();
    const sandbox = await containerd.runPod(POD);
    trainer = await containerd.startContainer(sandbox, POD, 'trainer');
  }, 120_000);
  afterAll(async () => {
    await containerd?.stop();
  }, 60_000);

  it('names the container of a process from its cgroup, then makes no call while nothing changes', async () => {
    // cgroupfs driver without a kubelet: the path is /k8s.io/<id>, an id no engine marks.
    const fromCgroup = containerFromCgroupFile(readFileSync(`/proc/${trainer.pid}/cgroup`, 'utf8'));
    expect(fromCgroup).toEqual({ id: trainer.id, runtime: 'unknown' });
    const { clock, collector, ctx } = criCollector(containerd.socket, new Set([trainer.id]));
    try {
      const first = await collector.collect(ctx);
      // The kubelet creates containers with the image id; ListImages gives its name back.
      expect(first.facts?.containers).toEqual([
        {
          id: trainer.id,
          name: 'trainer',
          image: TEST_IMAGE,
          pod: 'trainer-0',
          namespace: 'ml',
          podUid: POD.uid,
        },
      ]);
      const info = first.samples.find((s) => s.desc.name === 'gpulse_cri_runtime_info');
      expect(info?.labels).toMatchObject({
        runtime: 'containerd',
        api_version: 'v1',
        socket: containerd.socket,
      });
      expect(info?.labels.version).toMatch(/^1\.\d+\./);
      expect(requests(first)).toEqual({
        'Version OK': 1,
        'ListContainers OK': 1,
        'ListPodSandbox OK': 1,
        'ListImages OK': 1,
      });
      for (let i = 0; i < 30; i++) {
        await clock.advance(2000);
        expect(await collector.collect(ctx)).toBe(first);
      }
    } finally {
      await collector.close?.();
    }
  });

  it('a containerd with its CRI plugin off (as Docker runs it) is not asked while nothing waits for a name, no_data once something does, and not asked again', async () => {
    const plain = await startContainerd({ cri: false });
    const waiting = new Set<string>();
    const { clock, collector, ctx } = criCollector(plain.socket, waiting);
    try {
      // A Docker host: Docker names every GPU container, so the runtime is never asked.
      expect((await collector.collect(ctx)).facts?.containers).toEqual([]);
      waiting.add('8'.repeat(64));
      const err = await collector.collect(ctx).catch((e: unknown) => e);
      waiting.clear();
      expect(err).toBeInstanceOf(NoDataError);
      expect(err).toMatchObject({
        reason: 'no_cri',
        message: expect.stringContaining(
          `${plain.socket} answers gRPC but serves no CRI`,
        ) as string,
      });
      for (let i = 0; i < 5; i++) {
        await clock.advance(60_000);
        // The same state, not asked again while no GPU container waits for a name.
        expect(await collector.collect(ctx).catch((e: unknown) => e)).toBe(err);
      }
    } finally {
      await collector.close?.();
      await plain.stop();
    }
  }, 60_000);
});
