import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { AgentEvent, EventLog } from '../../agent/core/events.js';
import { HealthError, probeUrl, type HealthSettings } from './health.js';

/** Container events that fail a trial when they concern the serving container. */
const CONTAINER_FAILURES = new Set([
  'container.oom_kill',
  'container.gpu_oom',
  'container.restart',
]);

/** What the trial watches. */
export interface TrialOptions {
  readonly health: HealthSettings;
  readonly windowMs: number;
  readonly events?: EventLog;
  readonly docker?: () => Docker;
  readonly log: Logger;
  readonly signal?: AbortSignal;
}

function sameContainer(name: string, labels: Readonly<Record<string, string>>): boolean {
  const want = name.replace(/^\//, '');
  const n = (labels.container_name ?? '').replace(/^\//, '');
  const id = labels.container_id ?? '';
  return n === want || (want.length >= 12 && id.startsWith(want));
}

/** Why an agent event fails the trial, or undefined when it does not concern us. */
export function trialFailure(e: AgentEvent, health: HealthSettings): string | undefined {
  if (
    health.container &&
    CONTAINER_FAILURES.has(e.type) &&
    sameContainer(health.container, e.labels)
  )
    return `${e.type} of the serving container ${health.container}: ${e.message}`;
  if (
    health.xid === 'any' &&
    e.type === 'gpu.xid' &&
    (e.data?.severity === 'critical' || e.severity === 'critical')
  )
    return `critical Xid ${typeof e.data?.xid === 'number' || typeof e.data?.xid === 'string' ? e.data.xid : '?'} on GPU ${e.labels.gpu ?? e.labels.uuid ?? '?'}: ${e.message}`;
  return undefined;
}

interface ContainerBaseline {
  readonly id: string;
  readonly startedAt: string;
  readonly restartCount: number;
}

/** Reads what the trial compares against: the container must exist and run. */
export async function containerBaseline(docker: Docker, name: string): Promise<ContainerBaseline> {
  let info: Docker.ContainerInspectInfo;
  try {
    info = await docker.getContainer(name).inspect();
  } catch (err) {
    throw new HealthError(
      'container_missing',
      `cannot inspect the serving container ${name}: ${(err as Error).message}`,
    );
  }
  if (!info.State.Running)
    throw new HealthError(
      'container_down',
      `the serving container ${name} is not running (${info.State.Status})`,
    );
  return { id: info.Id, startedAt: info.State.StartedAt, restartCount: info.RestartCount };
}

async function containerChange(
  docker: Docker,
  name: string,
  base: ContainerBaseline,
): Promise<string | undefined> {
  let info: Docker.ContainerInspectInfo;
  try {
    info = await docker.getContainer(name).inspect();
  } catch (err) {
    return `the serving container ${name} is gone: ${(err as Error).message}`;
  }
  if (info.Id !== base.id) return `the serving container ${name} was replaced`;
  if (info.State.OOMKilled) return `the serving container ${name} was OOM-killed`;
  if (!info.State.Running)
    return `the serving container ${name} stopped (exit code ${info.State.ExitCode})`;
  if (info.State.StartedAt !== base.startedAt || info.RestartCount !== base.restartCount)
    return `the serving container ${name} restarted`;
  return undefined;
}

/**
 * Watches the trial window: resolves when it ends quietly, throws HealthError at the first failure
 * (serving container restarting, OOM-killed, GPU-OOM or dying; a critical Xid; a failed probe).
 */
export async function runTrial(opts: TrialOptions): Promise<void> {
  const { health, log } = opts;
  if (opts.windowMs <= 0) return;
  const docker = health.container && opts.docker ? opts.docker() : undefined;
  const base =
    docker && health.container ? await containerBaseline(docker, health.container) : undefined;
  const cleanups: (() => void)[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (reason: string, message: string) => {
        if (settled) return;
        settled = true;
        reject(new HealthError(reason, message));
      };
      const end = setTimeout(() => {
        void (async () => {
          const change =
            docker && health.container && base
              ? await containerChange(docker, health.container, base)
              : undefined;
          if (change) fail('container_failed', change);
          else if (!settled) {
            settled = true;
            resolve();
          }
        })();
      }, opts.windowMs);
      cleanups.push(() => clearTimeout(end));
      if (opts.signal) {
        const onAbort = () => fail('aborted', 'the trial was interrupted (shutdown)');
        opts.signal.addEventListener('abort', onAbort, { once: true });
        cleanups.push(() => opts.signal?.removeEventListener('abort', onAbort));
        // A signal aborted before the trial began never fires 'abort' again.
        if (opts.signal.aborted) onAbort();
      }
      if (opts.events) {
        const off = opts.events.onEvent((e) => {
          const why = trialFailure(e, health);
          if (why) fail(e.type.startsWith('gpu.') ? 'gpu_xid' : 'container_failed', why);
        });
        cleanups.push(off);
      }
      if (docker && health.container && base) {
        void docker
          .getEvents({ filters: { type: ['container'], container: [base.id] } })
          .then((stream) => {
            const s = stream as NodeJS.ReadableStream & { destroy?: () => void };
            cleanups.push(() => s.destroy?.());
            if (settled) s.destroy?.();
            let buf = '';
            s.on('data', (d: Buffer) => {
              buf += d.toString('utf8');
              let nl: number;
              while ((nl = buf.indexOf('\n')) >= 0) {
                const line = buf.slice(0, nl);
                buf = buf.slice(nl + 1);
                try {
                  const ev = JSON.parse(line) as { status?: string; Action?: string };
                  const action = ev.Action ?? ev.status ?? '';
                  if (['die', 'oom', 'restart', 'kill', 'stop'].includes(action))
                    fail(
                      'container_failed',
                      `the serving container ${health.container ?? ''} got a ${action} event during the trial`,
                    );
                } catch {
                  // a partial or non-JSON line: ignore
                }
              }
            });
          })
          .catch((err: unknown) =>
            log.warn(
              { err: (err as Error).message },
              'cannot follow Docker events; checking the container at the end of the trial',
            ),
          );
      }
      if (health.url) {
        const url = health.url;
        const tick = setInterval(() => {
          probeUrl(url, Math.min(10_000, health.probeIntervalMs)).catch((err: unknown) =>
            fail('probe_failed', `health probe failed during the trial: ${(err as Error).message}`),
          );
        }, health.probeIntervalMs);
        cleanups.push(() => clearInterval(tick));
      }
    });
  } finally {
    for (const c of cleanups) c();
  }
}
