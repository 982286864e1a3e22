// Every output surface of a running agent at one moment, and one GPU as each of them shows it:
// native /metrics, the dcgm-exporter names, /api/v1/gpus, /api/v1/events, and (when a fleet
// gateway relays the agent's MQTT telemetry) the gateway's /metrics. Fault tests read them all
// and check that they agree.
import type { AgentEvent } from '../../agent/core/events.js';
import type { GpuJson, GpusJson } from '../../agent/components/gpu-health/gpus-api.js';
import { allSeries } from './cli.js';

/** One event as `GET /api/v1/events` returns it. */
export interface EventJson extends Omit<AgentEvent, 'severity'> {
  readonly time: string;
  readonly severity: string;
}

/** Where to read the surfaces from. */
export interface SurfaceSources {
  /** Base URL of the agent (`http://127.0.0.1:port`). */
  readonly agent: string;
  /** Base URL of a fleet gateway relaying the agent, with the site and node it publishes as. */
  readonly gateway?: { readonly base: string; readonly site: string; readonly node: string };
}

/** The surfaces as read at one moment. */
export interface Surfaces {
  /** The agent's /metrics (gpulse_* and, with `--metrics-compat dcgm`, DCGM_FI_*). */
  readonly metrics: string;
  readonly gpus: GpusJson;
  /** Newest first, as the API lists them. */
  readonly events: readonly EventJson[];
  /** The gateway's /metrics, when a gateway was given. */
  readonly gateway?: string;
  readonly sources: SurfaceSources;
}

async function text(url: string): Promise<string> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return res.text();
}

/** Reads every surface once (the agent's three in parallel, then the gateway's). */
export async function readSurfaces(sources: SurfaceSources): Promise<Surfaces> {
  const [metrics, gpus, events] = await Promise.all([
    text(`${sources.agent}/metrics`),
    text(`${sources.agent}/api/v1/gpus`).then((t) => JSON.parse(t) as GpusJson),
    text(`${sources.agent}/api/v1/events?limit=1000`).then(
      (t) => (JSON.parse(t) as { events: EventJson[] }).events,
    ),
  ]);
  const gateway = sources.gateway ? await text(`${sources.gateway.base}/metrics`) : undefined;
  return { metrics, gpus, events, ...(gateway !== undefined ? { gateway } : {}), sources };
}

/** Series of one metric for one GPU index: labels and value. */
type Series = { labels: Record<string, string>; value: number }[];

/** One GPU as each surface shows it. */
export interface GpuOnSurfaces {
  /** `gpulse_gpu_up` on /metrics (undefined: no such series). */
  readonly up: number | undefined;
  /** Names of the native gpulse_gpu_* families that have a series for this GPU. */
  readonly native: readonly string[];
  /** Names of the DCGM_FI_* families that have a series for this GPU. */
  readonly compat: readonly string[];
  /** Its entry in /api/v1/gpus. */
  readonly api: GpuJson | undefined;
  /** Its events (labels.gpu matches), oldest first. */
  readonly events: readonly EventJson[];
  /** `gpulse_gpu_up` as the gateway relays it (undefined: no gateway, or no series). */
  readonly gatewayUp: number | undefined;
  /** Names of the gpulse_gpu_* families the gateway relays for this GPU. */
  readonly gatewayNative: readonly string[];
}

function families(body: string, gpu: string, prefix: RegExp, extra: Record<string, string> = {}) {
  const names = new Set<string>();
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{/.exec(line);
    if (!m?.[1] || !prefix.test(m[1])) continue;
    for (const s of allSeries(line, m[1])) {
      if (s.labels.gpu === gpu && Object.entries(extra).every(([k, v]) => s.labels[k] === v))
        names.add(m[1]);
    }
  }
  return [...names].sort();
}

/** Series of a metric for one GPU on the agent's /metrics. */
export function gpuSeries(s: Surfaces, name: string, gpu: string): Series {
  return allSeries(s.metrics, name).filter((x) => x.labels.gpu === gpu);
}

/** One GPU (by index) on every surface. */
export function gpuOnSurfaces(s: Surfaces, gpu: number): GpuOnSurfaces {
  const index = String(gpu);
  const device = s.sources.gateway
    ? { site: s.sources.gateway.site, node: s.sources.gateway.node }
    : undefined;
  const gatewayUp =
    s.gateway && device
      ? allSeries(s.gateway, 'gpulse_gpu_up').find(
          (x) =>
            x.labels.gpu === index &&
            x.labels.site === device.site &&
            x.labels.node === device.node,
        )?.value
      : undefined;
  return {
    up: gpuSeries(s, 'gpulse_gpu_up', index)[0]?.value,
    native: families(s.metrics, index, /^gpulse_gpu_/),
    compat: families(s.metrics, index, /^DCGM_FI_/),
    api: s.gpus.gpus.find((g) => g.index === gpu),
    events: s.events.filter((e) => e.labels.gpu === index).reverse(),
    gatewayUp,
    gatewayNative: s.gateway && device ? families(s.gateway, index, /^gpulse_gpu_/, device) : [],
  };
}
