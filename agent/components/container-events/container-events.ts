import type { Component } from '../../core/component.js';
import type { EventSeverity, NewEvent } from '../../core/events.js';
import { collectFacts } from '../../core/state-store.js';
import type { Derivation, Deriver, Snapshot } from '../../core/types.js';
import type {
  ContainerIncident,
  ContainerLabels,
  DockerContainerFact,
} from '../../../collectors/docker/facts.js';

const MIB = 1024 * 1024;

const TYPES: Readonly<
  Record<ContainerIncident['kind'], { type: string; severity: EventSeverity }>
> = {
  oom_kill: { type: 'container.oom_kill', severity: 'critical' },
  gpu_oom: { type: 'container.gpu_oom', severity: 'critical' },
  restart: { type: 'container.restart', severity: 'warning' },
};

function describe(i: ContainerIncident, l: ContainerLabels): string {
  const who = `container ${l.container_name || l.container_id.slice(0, 12)} (${l.image})`;
  const d = i.details;
  switch (i.kind) {
    case 'oom_kill': {
      const limit =
        typeof d.memoryLimitBytes === 'number'
          ? `, memory limit ${Math.round(d.memoryLimitBytes / MIB)} MiB`
          : '';
      return `${who}: a process was killed by the kernel OOM killer${limit}`;
    }
    case 'gpu_oom': {
      const gpu = typeof d.gpu === 'string' ? ` on GPU ${d.gpu}` : '';
      return `${who}: GPU out of memory${gpu} (${String(d.framework)})`;
    }
    case 'restart': {
      const code =
        typeof d.previousExitCode === 'number' ? `, previous exit code ${d.previousExitCode}` : '';
      return `${who} restarted (restart count ${String(d.restartCount)}${code})`;
    }
  }
}

/**
 * Turns the docker collector's incidents (OOM kills, GPU OOMs, restarts) into agent events, each
 * once: incidents are numbered, and only numbers above the last one returned are new.
 */
export function containerEventsDeriver(): Deriver {
  let returned = 0;
  return {
    name: 'container-events',
    derive(snapshot: Snapshot): Derivation {
      const incidents = collectFacts(snapshot, 'containerIncidents')
        .filter((i) => i.seq > returned)
        .sort((a, b) => a.seq - b.seq);
      if (incidents.length === 0) return { samples: [] };
      const labelsOf = new Map<string, DockerContainerFact>(
        collectFacts(snapshot, 'dockerContainers').map((f) => [f.container.id, f]),
      );
      const events: NewEvent[] = [];
      for (const i of incidents) {
        returned = i.seq;
        const l = labelsOf.get(i.containerId)?.labels ?? {
          container_id: i.containerId,
          container_name: '',
          image: '',
          pod: '',
          namespace: '',
        };
        const t = TYPES[i.kind];
        events.push({
          type: t.type,
          severity: t.severity,
          source: 'docker',
          message: describe(i, l),
          labels: l,
          data: i.details,
          ts: i.at,
        });
      }
      return { samples: [], events };
    },
  };
}

/** Adds the container events detector to the agent's state store. */
export function createContainerEventsComponent(): Component {
  return {
    name: 'container-events',
    register(ctx) {
      ctx.store.addDeriver(containerEventsDeriver());
    },
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
  };
}
