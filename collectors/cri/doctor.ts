import { accessSync, constants, existsSync } from 'node:fs';
import { errorMessage } from '../../agent/core/errors.js';
import { inContainer } from '../../agent/doctor/settings.js';
import type { Check, CheckOutcome } from '../../agent/doctor/types.js';
import { GrpcCallError } from '../grpc-client.js';
import { DEFAULT_CRI_SOCKETS } from './sockets.js';
import { CriClient } from './cri-client.js';

const SET_SOCKET = 'set GPULSE_CRI_SOCKET (collectors.cri.socket) to the socket the kubelet uses';

/** CRI runtime (containerd, CRI-O) socket found, permitted and serving runtime.v1. */
export const criSocketCheck: Check = {
  id: 'cri',
  title: 'CRI runtime',
  async run(ctx): Promise<CheckOutcome> {
    const { mode, socket: configured, timeout } = ctx.config.collectors.cri;
    if (mode === 'off')
      return {
        status: 'skip',
        required: false,
        finding: 'the cri collector is off (collectors.cri.mode: off)',
      };
    const required = mode === 'required';
    const candidates = configured ?? DEFAULT_CRI_SOCKETS;
    const socket = candidates.find((s) => existsSync(s));
    if (!socket) {
      const finding = `no CRI socket at ${candidates.join(' or ')}`;
      // Not a Kubernetes node on containerd or CRI-O: nothing is missing unless it was asked for.
      if (!required)
        return { status: 'skip', required, finding: `${finding}: pod names come from Docker only` };
      return {
        status: 'fail',
        required,
        finding,
        problem: 'GPU processes of Kubernetes pods carry no pod, namespace or container name',
        fix: inContainer(ctx.env, existsSync)
          ? `mount the runtime's socket read-only (hostPath /run/containerd/containerd.sock or /var/run/crio/crio.sock), or ${SET_SOCKET}`
          : `start the runtime (\`systemctl start containerd\` or \`crio\`), or ${SET_SOCKET}`,
        details: { sockets: candidates },
      };
    }
    try {
      accessSync(socket, constants.R_OK | constants.W_OK);
    } catch {
      return denied(socket, required);
    }
    const client = await CriClient.open(socket, Math.min(timeout, ctx.timeoutMs), () => {});
    try {
      const v = await client.version();
      return {
        status: 'ok',
        required,
        finding: `${v.runtime_name} ${v.runtime_version} (CRI ${v.runtime_api_version}) at ${socket}`,
        details: {
          socket,
          runtime: v.runtime_name,
          version: v.runtime_version,
          apiVersion: v.runtime_api_version,
        },
      };
    } catch (err) {
      return await failure(err, client, socket, required);
    } finally {
      client.close();
    }
  },
};

function denied(socket: string, required: boolean): CheckOutcome {
  return {
    status: 'fail',
    required,
    finding: `permission denied on ${socket}`,
    problem: `this user (uid ${process.getuid?.() ?? '?'}) may not use the CRI socket, so pods are not named`,
    fix: 'run gpulse as root, or mount the socket read-only and add its group (Kubernetes: securityContext.supplementalGroups)',
    details: { socket, code: 'EACCES' },
  };
}

async function failure(
  err: unknown,
  client: CriClient,
  socket: string,
  required: boolean,
): Promise<CheckOutcome> {
  const detail = errorMessage(err);
  if (/EACCES|EPERM|permission denied/i.test(detail)) return denied(socket, required);
  const code = err instanceof GrpcCallError ? err.codeName : 'UNKNOWN';
  if (code === 'UNIMPLEMENTED') {
    const old = await client.servesV1alpha2().catch(() => false);
    return old
      ? {
          status: 'fail',
          required,
          finding: `the runtime at ${socket} only serves CRI v1alpha2`,
          problem: 'gpulse speaks CRI runtime.v1, so pods are not named',
          fix: 'upgrade the runtime: containerd ≥ 1.6 / CRI-O ≥ 1.20 needed',
          details: { socket, code },
        }
      : {
          status: 'warn',
          required,
          finding: `${socket} serves no CRI (containerd with its cri plugin disabled, as Docker's own is)`,
          problem: 'pods are not named from this socket',
          fix: `${SET_SOCKET}, or GPULSE_CRI_MODE=off where no kubelet runs`,
          details: { socket, code },
        };
  }
  return {
    status: 'fail',
    required,
    finding: `the CRI runtime at ${socket} failed: ${detail}`,
    problem: 'nothing answers there (runtime stopped or hung), so pods are not named',
    fix: 'check `systemctl status containerd` (or `crio`) and its journal; restart it if it stays down',
    details: { socket, code },
  };
}
