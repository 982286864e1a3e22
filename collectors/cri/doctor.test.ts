// `gpulse doctor`'s CRI check against a CRI-O stand-in built from the real .proto: it names the
// socket and runtime it found, or says why pods will not be named and what fixes it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../agent/config.js';
import type { DoctorContext } from '../../agent/doctor/types.js';
import { FakeCrio } from '../../test/helpers/fake-cri.js';
import { tempDirs } from '../../test/helpers/temp-dirs.js';
import { criSocketCheck } from './doctor.js';

const tempDir = tempDirs('gpulse-cri-doctor-');
let crio: FakeCrio | undefined;
afterEach(() => {
  crio?.stop();
  crio = undefined;
});

function context(env: NodeJS.ProcessEnv): DoctorContext {
  return {
    config: loadConfig({ env }).config,
    env,
    timeoutMs: 3000,
    nvidiaSmi: () => Promise.reject(new Error('not used')),
    docker: () => Promise.reject(new Error('not used')),
  };
}

async function stand(serves: 'v1' | 'v1alpha2' | 'none'): Promise<string> {
  const socket = join(tempDir(), 'crio.sock');
  crio = new FakeCrio(socket, { containers: [], sandboxes: [], images: [] });
  await crio.start(serves);
  return socket;
}

describe('doctor: CRI runtime', () => {
  it('names the socket and the runtime that answers on it', async () => {
    const socket = await stand('v1');
    const out = await criSocketCheck.run(context({ GPULSE_CRI_SOCKET: socket }));
    expect(out).toEqual({
      status: 'ok',
      required: false,
      finding: `cri-o 1.28.1 (CRI v1) at ${socket}`,
      details: { socket, runtime: 'cri-o', version: '1.28.1', apiVersion: 'v1' },
    });
  });

  it('a runtime serving only v1alpha2 fails with the versions needed', async () => {
    const socket = await stand('v1alpha2');
    const out = await criSocketCheck.run(context({ GPULSE_CRI_SOCKET: socket }));
    expect(out).toMatchObject({
      status: 'fail',
      finding: `the runtime at ${socket} only serves CRI v1alpha2`,
      fix: 'upgrade the runtime: containerd ≥ 1.6 / CRI-O ≥ 1.20 needed',
      details: { socket, code: 'UNIMPLEMENTED' },
    });
  });

  it('a socket serving no CRI warns and says which setting points at the right one', async () => {
    const socket = await stand('none');
    const out = await criSocketCheck.run(context({ GPULSE_CRI_SOCKET: socket }));
    expect(out.status).toBe('warn');
    expect(out.finding).toBe(
      `${socket} serves no CRI (containerd with its cri plugin disabled, as Docker's own is)`,
    );
    expect(out.fix).toContain('GPULSE_CRI_SOCKET (collectors.cri.socket)');
  });

  it('nothing listening: fails naming the runtime to check', async () => {
    const socket = await stand('v1');
    crio?.stop();
    // The socket path exists but nobody answers (a runtime that died without cleaning up).
    writeFileSync(socket, '');
    const out = await criSocketCheck.run(context({ GPULSE_CRI_SOCKET: socket }));
    expect(out.status).toBe('fail');
    expect(out.finding).toMatch(
      new RegExp(`^the CRI runtime at ${socket} failed: Version: UNAVAILABLE`),
    );
    expect(out.fix).toContain('systemctl status containerd');
  });

  it('no socket: skipped in auto mode, a required failure with the fix when required', async () => {
    const socket = join(tempDir(), 'absent.sock');
    const auto = await criSocketCheck.run(context({ GPULSE_CRI_SOCKET: socket }));
    expect(auto).toEqual({
      status: 'skip',
      required: false,
      finding: `no CRI socket at ${socket}: pod names come from Docker only`,
    });
    const required = await criSocketCheck.run(
      context({ GPULSE_CRI_SOCKET: socket, GPULSE_CRI_MODE: 'required' }),
    );
    expect(required).toMatchObject({
      status: 'fail',
      required: true,
      problem: 'GPU processes of Kubernetes pods carry no pod, namespace or container name',
    });
    expect(required.fix).toContain('GPULSE_CRI_SOCKET (collectors.cri.socket)');
    const off = await criSocketCheck.run(context({ GPULSE_CRI_MODE: 'off' }));
    expect(off.status).toBe('skip');
  });
});
