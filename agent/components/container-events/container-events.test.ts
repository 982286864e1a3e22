import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../core/clock.js';
import { createEventsApi } from '../../http/events-api.js';
import { EventLog } from '../../core/events.js';
import { createHttpServer } from '../../http/server.js';
import { selfMetricsChannel } from '../../core/self-metrics-channel.js';
import { StateStore } from '../../core/state-store.js';
import type { AgentConfig } from '../../config.js';
import { captureLogger, silentLogger } from '../../../test/helpers/log-sink.js';
import { containerEventsDeriver } from './container-events.js';
import type { ContainerIncident, DockerContainerFact } from '../../../collectors/docker/facts.js';
import { parseInspect, containerLabels } from '../../../collectors/docker/inspect.js';

const ID = 'c'.repeat(64);
const container = parseInspect({
  Id: ID,
  Name: '/trainer',
  Config: {
    Image: 'pytorch:2.5',
    Labels: { 'io.kubernetes.pod.name': 'p', 'io.kubernetes.pod.namespace': 'ml' },
  },
  State: { Status: 'exited', Running: false, ExitCode: 137, OOMKilled: true },
  HostConfig: { Memory: 16 * 1024 * 1024 },
})!;
const fact: DockerContainerFact = {
  container,
  labels: containerLabels(container),
  oomKills: 1,
  gpuOoms: 1,
};

function incident(
  seq: number,
  kind: ContainerIncident['kind'],
  details: Record<string, unknown>,
): ContainerIncident {
  return { seq, kind, at: 1_700_000_000_000 + seq, containerId: ID, details };
}

describe('containerEventsDeriver', () => {
  it('emits each incident once, in order, with the container labels; later snapshots add only new ones', async () => {
    const clock = new FakeClock();
    const { log, records } = captureLogger();
    const events = new EventLog({ clock, log });
    const store = new StateStore({
      clock,
      log: silentLogger(),
      derivers: [containerEventsDeriver()],
    });
    store.onEvent((e) => events.emit(e));
    const first = [
      incident(1, 'oom_kill', { memoryLimitBytes: 16 * 1024 * 1024, detectedBy: 'oom_event' }),
      incident(2, 'gpu_oom', { framework: 'pytorch', gpu: '0' }),
    ];
    store.ok('docker', {
      samples: [],
      facts: { dockerContainers: [fact], containerIncidents: first },
    });
    // Reading the snapshot has no effect outside the store: the events wait for its announcement.
    store.current();
    expect(events.list()).toEqual([]);
    await clock.advance(30);
    expect(events.list().map((e) => e.type)).toEqual(['container.gpu_oom', 'container.oom_kill']);
    // The same facts again (a later cycle) and a failure in between emit nothing new.
    store.fail('docker', 'unreachable', 'down');
    store.current();
    await clock.advance(30);
    store.ok('docker', {
      samples: [],
      facts: {
        dockerContainers: [fact],
        containerIncidents: [
          ...first,
          incident(3, 'restart', { restartCount: 2, previousExitCode: 137 }),
        ],
      },
    });
    store.current();
    await clock.advance(30);
    const list = events.list();
    expect(list.map((e) => [e.type, e.severity, e.ts])).toEqual([
      ['container.restart', 'warning', 1_700_000_000_003],
      ['container.gpu_oom', 'critical', 1_700_000_000_002],
      ['container.oom_kill', 'critical', 1_700_000_000_001],
    ]);
    expect(list[2]).toMatchObject({
      source: 'docker',
      message:
        'container trainer (pytorch:2.5): a process was killed by the kernel OOM killer, memory limit 16 MiB',
      labels: {
        container_id: ID,
        container_name: 'trainer',
        image: 'pytorch:2.5',
        pod: 'p',
        namespace: 'ml',
      },
      data: { detectedBy: 'oom_event' },
    });
    expect(list[1]?.message).toBe(
      'container trainer (pytorch:2.5): GPU out of memory on GPU 0 (pytorch)',
    );
    expect(list[0]?.message).toBe(
      'container trainer (pytorch:2.5) restarted (restart count 2, previous exit code 137)',
    );
    // Logged once each.
    expect(
      records.filter((r) => r.component === undefined && String(r.event).startsWith('container.')),
    ).toHaveLength(3);
  });
});

describe('GET /api/v1/events', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  function setup() {
    const clock = new FakeClock(1_700_000_000_000);
    const log = silentLogger();
    const store = new StateStore({ clock, log });
    const events = new EventLog({ clock, log });
    const app = createHttpServer({ log, state: store, version: 't', alive: () => true });
    const api = createEventsApi();
    api.register?.({
      app,
      events,
      store,
      selfMetrics: (name) => selfMetricsChannel(store, name),
      clock,
      log,
      config: {} as AgentConfig,
      version: 't',
      env: {},
    });
    close = () => app.close();
    for (const [type, ts] of [
      ['container.oom_kill', 1_700_000_000_000],
      ['gpu.xid', 1_700_000_010_000],
      ['container.gpu_oom', 1_700_000_020_000],
    ] as const) {
      events.emit({ type, severity: 'critical', source: 'test', message: type, labels: {}, ts });
    }
    return app;
  }

  it('lists newest first, with since (Unix seconds or RFC 3339), type prefix and limit', async () => {
    const app = setup();
    const get = async (q: string) => {
      const r = await app.inject(`/api/v1/events${q}`);
      return { status: r.statusCode, body: r.json<{ events: { type: string; time: string }[] }>() };
    };
    expect((await get('')).body.events.map((e) => e.type)).toEqual([
      'container.gpu_oom',
      'gpu.xid',
      'container.oom_kill',
    ]);
    expect((await get('')).body.events[0]?.time).toBe('2023-11-14T22:13:40.000Z');
    expect((await get('?since=1700000010')).body.events.map((e) => e.type)).toEqual([
      'container.gpu_oom',
      'gpu.xid',
    ]);
    expect((await get('?since=2023-11-14T22:13:30Z')).body.events.map((e) => e.type)).toEqual([
      'container.gpu_oom',
      'gpu.xid',
    ]);
    expect((await get('?type=container')).body.events.map((e) => e.type)).toEqual([
      'container.gpu_oom',
      'container.oom_kill',
    ]);
    expect((await get('?type=container.oom_kill&limit=5')).body.events.map((e) => e.type)).toEqual([
      'container.oom_kill',
    ]);
    expect((await get('?limit=1')).body.events).toHaveLength(1);
  });

  it('answers 400 with the reason for bad parameters', async () => {
    const app = setup();
    for (const [q, says] of [
      ['?limit=0', 'limit: at least 1'],
      ['?limit=5000', 'limit: at most 1000'],
      ['?since=soon', 'since: expected Unix seconds or an RFC 3339 time'],
      ['?type=Container OOM', 'type: expected a dotted event type'],
    ] as const) {
      const r = await app.inject(`/api/v1/events${q.replace(' ', '%20')}`);
      expect(r.statusCode, q).toBe(400);
      expect(r.json<{ message: string }>().message, q).toContain(says);
    }
  });
});
