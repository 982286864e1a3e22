import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { createHarness, type Harness } from '../../test/helpers/models/harness.js';
import { fineTune, writeModel } from '../../test/helpers/models/model-gen.js';
import { DOCKER_TOOLS, startDockerd, type TestEngine } from '../../test/helpers/dockerd.js';
import { describeWithTools, tools } from '../../test/helpers/tools.js';
import { DEFAULT_HEALTH } from './health.js';
import { DEFAULT_RELOAD } from './reload.js';
import type { PausePoint } from './updater.js';

// A real serving container on a real dockerd (started here, private socket and data root): when it
// dies during the trial window the update must roll back; a restart we cause ourselves must not.

describeWithTools(
  'model update trial with a real container',
  [...DOCKER_TOOLS, ...tools('tar')],
  () => {
    let h: Harness;
    let engine: TestEngine | undefined;
    let docker: Docker;
    let container = '';

    beforeAll(async () => {
      h = await createHarness();
      engine = await startDockerd({ dir: join(h.tmp, 'docker') });
      docker = engine.docker;
    }, 120_000);

    afterAll(async () => {
      await engine?.destroy();
      await h.cleanup();
    }, 60_000);

    beforeEach(async () => {
      container = `serving-${randomBytes(4).toString('hex')}`;
      const c = await docker.createContainer({
        Image: 'busybox:test',
        name: container,
        Cmd: ['sleep', '3600'],
        HostConfig: { NetworkMode: 'none' },
      });
      await c.start();
      const v1 = randomBytes(4 * 1024 * 1024);
      await writeModel(join(h.tmp, `${container}-1`), v1);
      await writeModel(join(h.tmp, `${container}-2`), fineTune(v1));
    }, 60_000);

    let release = 0;
    async function installV1ThenPublishV2(): Promise<void> {
      await h.publish(join(h.tmp, `${container}-1`), `${container}-v1`, ++release);
      expect((await h.apply()).outcome).toBe('committed');
      await h.publish(join(h.tmp, `${container}-2`), `${container}-v2`, ++release);
    }

    it('rolls back when the serving container dies during the trial window', async () => {
      await installV1ThenPublishV2();
      const r = await h.apply(
        { health: { ...DEFAULT_HEALTH, container, trialWindowMs: 30_000 } },
        {
          docker: () => docker,
          pause: (point: PausePoint) => {
            if (point === 'trial')
              setTimeout(
                () =>
                  void docker
                    .getContainer(container)
                    .kill()
                    .catch(() => undefined),
                300,
              );
            return Promise.resolve();
          },
        },
      );
      expect(r).toMatchObject({
        outcome: 'rolled_back',
        reason: 'container_failed',
        version: `${container}-v2`,
      });
      expect(r.message).toContain(container);
      expect(await h.current()).toEqual({ version: `${container}-v1`, verified: true });
    }, 90_000);

    it('restarts the container as a reload hook and commits when it stays up through the trial', async () => {
      await installV1ThenPublishV2();
      const before = await docker.getContainer(container).inspect();
      const r = await h.apply(
        {
          health: { ...DEFAULT_HEALTH, container, trialWindowMs: 1500 },
          reload: { ...DEFAULT_RELOAD, container, timeoutMs: 4000 },
        },
        { docker: () => docker },
      );
      expect(r.outcome).toBe('committed');
      const after = await docker.getContainer(container).inspect();
      expect(after.State.Running).toBe(true);
      expect(after.State.StartedAt).not.toBe(before.State.StartedAt);
      expect(await h.current()).toEqual({ version: `${container}-v2`, verified: true });
    }, 90_000);
  },
);
