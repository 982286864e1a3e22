import { dirname } from 'node:path';
import { pino } from 'pino';
import { CollectorError, NoDataError, errorMessage } from '../../agent/core/errors.js';
import type { Check, CheckOutcome } from '../../agent/doctor/types.js';
import { createPodResourcesCollector, podResourcesMetrics } from './collector.js';

/** What fixes each failure the collector reports, by its reason. */
const FIXES: Readonly<Record<string, { problem: string; fix: (socket: string) => string }>> = {
  socket_missing: {
    problem: 'GPUs are not attributed to pods',
    fix: (s) =>
      `mount the host's ${dirname(s)} read-only (hostPath) at the same path, or set GPULSE_POD_RESOURCES_SOCKET`,
  },
  permission_denied: {
    problem: 'gpulse may not open the kubelet socket, so GPUs are not attributed to pods',
    fix: (s) =>
      `run gpulse as root (DaemonSet: securityContext.runAsUser: 0) with the host's ${dirname(s)} mounted read-only (hostPath)`,
  },
  not_a_socket: {
    problem:
      'the path is not the kubelet socket (a hostPath of the socket file mounted before it existed becomes a directory)',
    fix: (s) => `mount the directory ${dirname(s)} (hostPath, readOnly: true), not the socket file`,
  },
  unreachable: {
    problem: 'nothing answers on the socket: the kubelet is stopped or restarting',
    fix: () => 'check the kubelet: `systemctl status kubelet` and `journalctl -u kubelet`',
  },
  timeout: {
    problem: 'the kubelet is hung or overloaded; pod attribution will lag or stop',
    fix: () =>
      'check `journalctl -u kubelet`; raise GPULSE_POD_RESOURCES_TIMEOUT if the node runs very many pods',
  },
  unsupported: {
    problem: 'this kubelet has no pod-resources API v1',
    fix: () => 'upgrade the node to Kubernetes 1.20 or later, or set GPULSE_POD_RESOURCES_MODE=off',
  },
};

/** The kubelet's pod-resources socket reachable, and what it says of GPUs. */
export const podResourcesCheck: Check = {
  id: 'pod-resources',
  title: 'Kubelet pod-resources',
  async run(ctx): Promise<CheckOutcome> {
    const config = ctx.config.collectors['pod-resources'];
    const { mode, socket } = config;
    if (mode === 'off')
      return {
        status: 'skip',
        required: false,
        finding: 'the pod-resources collector is off (collectors.pod-resources.mode: off)',
      };
    // The collector's own first run: the doctor reports exactly what the agent would see.
    const collector = createPodResourcesCollector({ ...config, timeout: ctx.timeoutMs });
    const signal = AbortSignal.timeout(ctx.timeoutMs + 1000);
    try {
      const out = await collector.collect({
        signal,
        log: pino({ level: 'silent' }),
        now: () => Date.now(),
      });
      const allocations = out.facts?.deviceAllocations ?? [];
      const supported = out.samples.find(
        (s) => s.desc === podResourcesMetrics.allocatableSupported,
      )?.value;
      const pods = new Set(allocations.map((a) => `${a.namespace}/${a.pod}`)).size;
      const allocatable = out.facts?.allocatableDevices;
      const finding =
        `kubelet at ${socket}: ${allocations.length} GPU devices allocated to ${pods} pods` +
        (allocatable
          ? `, ${allocatable.length} allocatable`
          : '; GetAllocatableResources not supported (Kubernetes before 1.23)');
      const details = {
        socket,
        allocations: allocations.length,
        pods,
        allocatableSupported: supported === 1,
        ...(allocatable ? { allocatable: allocatable.length } : {}),
      };
      if (supported !== 1)
        return {
          status: 'warn',
          required: false,
          finding,
          problem:
            'the kubelet cannot say which GPUs it can allocate, so free GPUs are not reported',
          fix: 'upgrade to Kubernetes 1.23 or later (1.21-1.22: enable the KubeletPodResourcesGetAllocatable feature gate)',
          details,
        };
      return { status: 'ok', required: mode === 'required', finding, details };
    } catch (err) {
      const message = errorMessage(err);
      if (err instanceof NoDataError) {
        // No socket outside Kubernetes is normal; inside a pod it means the mount is missing.
        const inPod = (ctx.env.KUBERNETES_SERVICE_HOST ?? '') !== '';
        if (!inPod && mode === 'auto')
          return {
            status: 'skip',
            required: false,
            finding: `no kubelet socket at ${socket}: not a Kubernetes node`,
          };
        return {
          status: mode === 'required' ? 'fail' : 'warn',
          required: mode === 'required',
          finding: `no kubelet pod-resources socket at ${socket}`,
          problem: 'GPUs are not attributed to pods',
          fix: `mount the host's ${dirname(socket)} read-only (hostPath) at the same path, or set GPULSE_POD_RESOURCES_SOCKET; without Kubernetes set GPULSE_POD_RESOURCES_MODE=off`,
          details: { socket, reason: err.reason },
        };
      }
      const reason = err instanceof CollectorError ? err.reason : 'exception';
      const known = FIXES[reason];
      return {
        status: 'fail',
        required: mode === 'required',
        finding: message,
        problem: known?.problem ?? 'the kubelet pod-resources API does not work here',
        fix: known?.fix(socket) ?? 'check the kubelet: `journalctl -u kubelet`',
        details: { socket, reason },
      };
    } finally {
      await collector.close?.();
    }
  },
};
