// deploy/kubernetes: every manifest validates against the Kubernetes and Prometheus Operator
// schemas that the kubernetes-models packages ship (offline: kubeconform needs to download
// them), the DaemonSet keeps the least-privilege settings deploy/kubernetes/README.md promises
// (zod, strict about those fields), the HPA example's metric is the one the adapter rule serves,
// and `kubectl kustomize` builds both kustomizations.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { Namespace, Service, ServiceAccount, ConfigMap } from 'kubernetes-models/v1';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import {
  PrometheusRule,
  ServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { declaredMetrics } from '../../agent/core/metric.js';
import '../../agent/build-agent.js';
import '../../collectors/docker/metrics.js';
import { describeWithTools, tools } from '../helpers/tools.js';
import { deployPath } from './deploy-files.js';

type Manifest = { apiVersion: string; kind: string; metadata: { name: string } } & Record<
  string,
  unknown
>;

/** The schema-checked model class of each kind the manifests use. */
const MODELS: Readonly<Record<string, new (data: never) => { validate(): void }>> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'apps/v1/DaemonSet': DaemonSet,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

/** The manifests a kustomization lists, in order. */
function kustomizationResources(dir: string): { file: string; docs: Manifest[] }[] {
  const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as {
    resources: string[];
  };
  return k.resources.map((file) => ({
    file,
    docs: parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((d) => d.toJS() as Manifest),
  }));
}

const BASE = deployPath('kubernetes');
const HPA = deployPath('kubernetes', 'examples', 'gpu-hpa');
const all = [...kustomizationResources(BASE), ...kustomizationResources(HPA)].flatMap((r) =>
  r.docs.map((doc) => ({ file: r.file, doc })),
);
const byKind = (kind: string): Manifest => all.find((m) => m.doc.kind === kind)!.doc;

/** What the DaemonSet must keep: strict objects, so a renamed or dropped field fails here. */
const hardenedContainer = z.looseObject({
  securityContext: z.strictObject({
    allowPrivilegeEscalation: z.literal(false),
    readOnlyRootFilesystem: z.literal(true),
    privileged: z.literal(false),
    capabilities: z.strictObject({ drop: z.tuple([z.literal('ALL')]) }),
  }),
  resources: z.strictObject({
    requests: z.strictObject({ cpu: z.string(), memory: z.string() }),
    limits: z.strictObject({ cpu: z.string(), memory: z.string() }),
  }),
  livenessProbe: z.looseObject({ httpGet: z.looseObject({ path: z.literal('/healthz') }) }),
  readinessProbe: z.looseObject({ httpGet: z.looseObject({ path: z.literal('/readyz') }) }),
  volumeMounts: z.array(
    z.union([
      z.strictObject({ name: z.string(), mountPath: z.string(), readOnly: z.literal(true) }),
      z.strictObject({ name: z.literal('tmp'), mountPath: z.literal('/tmp') }),
    ]),
  ),
});
const hardenedPod = z.looseObject({
  hostPID: z.literal(true),
  runtimeClassName: z.literal('nvidia'),
  automountServiceAccountToken: z.literal(false),
  nodeSelector: z.record(z.string(), z.string()),
  tolerations: z.array(z.looseObject({ key: z.literal('nvidia.com/gpu') })).min(1),
  // uid 0 only as the owner of the root-owned runtime and kubelet sockets: the container drops
  // every capability (hardenedContainer), so it overrides no permission.
  securityContext: z.looseObject({
    runAsNonRoot: z.literal(false),
    runAsUser: z.literal(0),
  }),
  containers: z.tuple([hardenedContainer]),
  volumes: z.array(
    z.union([
      z.strictObject({
        name: z.string(),
        hostPath: z.strictObject({ path: z.string(), type: z.literal('Directory') }),
      }),
      z.strictObject({ name: z.string(), emptyDir: z.looseObject({}) }),
    ]),
  ),
});

/** The prometheus-adapter rules file, the fields of it this example uses. */
const adapterConfig = z.strictObject({
  rules: z.array(
    z.strictObject({
      seriesQuery: z.string(),
      resources: z.strictObject({
        overrides: z.record(z.string(), z.strictObject({ resource: z.string() })),
      }),
      name: z.strictObject({ matches: z.string(), as: z.string() }),
      metricsQuery: z.string().includes('<<.Series>>').includes('<<.LabelMatchers>>'),
    }),
  ),
});

describe('deploy/kubernetes manifests', () => {
  it('validate against the Kubernetes and Prometheus Operator schemas', () => {
    expect(all.map((m) => m.doc.kind).sort()).toEqual(
      [
        'ConfigMap',
        'DaemonSet',
        'Deployment',
        'HorizontalPodAutoscaler',
        'Namespace',
        'PrometheusRule',
        'Service',
        'ServiceAccount',
        'ServiceMonitor',
      ].sort(),
    );
    for (const { file, doc } of all) {
      const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
      expect(Model, `${file}: no schema for ${doc.apiVersion} ${doc.kind}`).toBeDefined();
      expect(() => new Model!(doc as never).validate(), file).not.toThrow();
    }
  });

  it('the schema check catches a wrong field type (it is not a no-op)', () => {
    const ds = structuredClone(byKind('DaemonSet')) as Manifest & {
      spec: { template: { spec: { hostPID: unknown } } };
    };
    ds.spec.template.spec.hostPID = 'yes';
    expect(() => new DaemonSet(ds as never).validate()).toThrow(/hostPID must be boolean/);
  });

  it('run the agent with least privilege on GPU nodes only', () => {
    const ds = byKind('DaemonSet') as Manifest & {
      spec: { template: { metadata: { labels: Record<string, string> }; spec: unknown } };
    };
    const pod = hardenedPod.parse(ds.spec.template.spec);
    expect(pod.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
    // The Service and ServiceMonitor find the pods the DaemonSet makes, on the port it names.
    const podLabels = ds.spec.template.metadata.labels;
    const svc = byKind('Service') as Manifest & {
      spec: { selector: Record<string, string>; ports: { name: string }[] };
    };
    expect(podLabels).toMatchObject(svc.spec.selector);
    const sm = byKind('ServiceMonitor') as Manifest & {
      spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] };
    };
    expect(svc.metadata).toMatchObject({ labels: sm.spec.selector.matchLabels });
    expect(sm.spec.endpoints[0]!.port).toBe(svc.spec.ports[0]!.name);
  });

  it('scale the inference Deployment on the GPU utilization the adapter serves from gpulse', () => {
    const cm = byKind('ConfigMap') as Manifest & { data: Record<string, string> };
    const rules = adapterConfig.parse(parse(cm.data['config.yaml']!)).rules;
    const rule = rules[0]!;
    const metric = /^(gpulse_[a-z0-9_]+)\{/.exec(rule.seriesQuery)?.[1];
    const declared = declaredMetrics().find((m) => m.name === metric);
    expect(declared, `adapter series ${metric}`).toBeDefined();
    // The labels the adapter maps to namespace and pod are labels of that series.
    for (const label of Object.keys(rule.resources.overrides))
      expect(declared!.labelNames).toContain(label);
    expect(new RegExp(rule.name.matches).test(metric!)).toBe(true);
    const hpa = byKind('HorizontalPodAutoscaler') as Manifest & {
      spec: {
        scaleTargetRef: { kind: string; name: string };
        metrics: { type: string; pods: { metric: { name: string } } }[];
      };
    };
    expect(hpa.spec.metrics[0]!.pods.metric.name).toBe(rule.name.as);
    const deployment = byKind('Deployment');
    expect(hpa.spec.scaleTargetRef).toMatchObject({
      kind: 'Deployment',
      name: deployment.metadata.name,
    });
  });
});

describeWithTools('kubectl kustomize', tools('kubectl'), () => {
  it('builds the agent and the HPA example', () => {
    for (const dir of [BASE, HPA]) {
      const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as Manifest);
      if (dir === BASE) {
        // Everything lands in the gpulse namespace, with the released image.
        for (const d of docs.filter((x) => x.kind !== 'Namespace'))
          expect(d.metadata, d.kind).toMatchObject({ namespace: 'gpulse' });
        const ds = docs.find((d) => d.kind === 'DaemonSet') as Manifest & {
          spec: { template: { spec: { containers: { image: string }[] } } };
        };
        expect(ds.spec.template.spec.containers[0]!.image).toMatch(/^ghcr\.io\/gpulse\/gpulse:/);
        expect(docs.map((d) => d.kind)).toContain('PrometheusRule');
      } else {
        expect(docs.map((d) => d.kind).sort()).toEqual(
          ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler'].sort(),
        );
      }
    }
    expect(dirname(HPA)).toBe(join(BASE, 'examples'));
  });
});
