import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, symlink, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { createHarness, type Harness } from '../../test/helpers/models/harness.js';
import { fineTune, writeModel } from '../../test/helpers/models/model-gen.js';
import { describeWithTools, findTool } from '../../test/helpers/tools.js';
import { DEFAULT_HEALTH } from './health.js';
import { DEFAULT_RELOAD } from './reload.js';
import type { PausePoint } from './updater.js';

// A real serving container on a real dockerd (started here, private socket and data root): when it
// dies during the trial window the update must roll back; a restart we cause ourselves must not.

describeWithTools(
  'model update trial with a real container',
  [
    { bin: 'dockerd', pkg: 'docker.io' },
    { bin: '/usr/bin/busybox', pkg: 'busybox-static' },
    { bin: 'tar', pkg: 'tar' },
  ],
  () => {
    let h: Harness;
    let base: string;
    let docker: Docker;
    let socketPath: string;
    let container = '';

    beforeAll(async () => {
      h = await createHarness();
      base = join(h.tmp, 'docker');
      socketPath = join(base, 'docker.sock');
      await mkdir(join(base, 'data'), { recursive: true });
      await mkdir(join(base, 'exec'), { recursive: true });
      const dockerd = spawn(
        findTool('dockerd')!,
        [
          '--host',
          `unix://${socketPath}`,
          '--iptables=false',
          '--ip-masq=false',
          '--bridge=none',
          '--data-root',
          join(base, 'data'),
          '--exec-root',
          join(base, 'exec'),
          '--pidfile',
          join(base, 'dockerd.pid'),
        ],
        { stdio: 'ignore', detached: true },
      );
      dockerd.unref();
      docker = new Docker({ socketPath });
      const end = Date.now() + 60_000;
      for (;;) {
        const ok =
          existsSync(socketPath) &&
          (await docker.ping().then(
            () => true,
            () => false,
          ));
        if (ok) break;
        if (Date.now() > end) throw new Error('dockerd did not answer within 60s');
        await new Promise((r) => setTimeout(r, 250));
      }
      // No registry here: build busybox:test from Debian's static busybox (environment.md).
      const rootfs = join(base, 'rootfs');
      await mkdir(join(rootfs, 'bin'), { recursive: true });
      await copyFile('/usr/bin/busybox', join(rootfs, 'bin', 'busybox'));
      for (const c of ['sh', 'sleep']) await symlink('busybox', join(rootfs, 'bin', c));
      execFileSync('tar', ['-C', rootfs, '-cf', join(base, 'bb.tar'), '.']);
      const stream = await docker.importImage(join(base, 'bb.tar'), {
        repo: 'busybox',
        tag: 'test',
      });
      await new Promise<void>((resolve, reject) =>
        docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())),
      );
    }, 120_000);

    afterAll(async () => {
      const pid = Number(await readFile(join(base, 'dockerd.pid'), 'utf8').catch(() => '0'));
      if (pid > 0) {
        for (const c of await docker.listContainers({ all: true }).catch(() => []))
          await docker
            .getContainer(c.Id)
            .remove({ force: true })
            .catch(() => undefined);
        process.kill(pid, 'SIGTERM');
        const end = Date.now() + 20_000;
        while (Date.now() < end && existsSync(join(base, 'dockerd.pid')))
          await new Promise((r) => setTimeout(r, 200));
      }
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
