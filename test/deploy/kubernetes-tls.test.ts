// deploy/kubernetes-tls: the agent of deploy/kubernetes with TLS and basic auth. Its web
// configuration is one gpulse accepts once the hash is filled in (and refuses, naming the key,
// while the placeholder is there); the kustomize build mounts it and the TLS Secret read-only,
// probes over HTTPS, keeps the base's hardening, and has the ServiceMonitor scrape over HTTPS
// with the CA and the password; every manifest validates against the Kubernetes and Prometheus
// Operator schemas.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { Secret } from 'kubernetes-models/v1';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { loadWebConfigFile, WebConfigError } from '../../agent/http/web-config.js';
import { createTestPki } from '../helpers/pki.js';
import { describeWithTools, tools } from '../helpers/tools.js';
import { deployPath } from './deploy-files.js';

const DIR = deployPath('kubernetes-tls');
const WEB_CONFIG = join(DIR, 'web-config.yml');

type Manifest = { kind: string; metadata: { name: string } } & Record<string, unknown>;

interface Container {
  env: { name: string; value?: string }[];
  securityContext: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
  startupProbe: { httpGet: { scheme?: string } };
  livenessProbe: { httpGet: { scheme?: string; path: string } };
  readinessProbe: { httpGet: { scheme?: string; path: string } };
}

interface PodSpec {
  securityContext: Record<string, unknown>;
  containers: Container[];
  volumes: { name: string; secret?: { secretName: string; defaultMode: number } }[];
}

/** The folder layout of the pod: the web config Secret at web/, the TLS Secret at tls/. */
function mounted(webConfigText: string): string {
  const root = mkdtempSync(join(tmpdir(), 'gpulse-k8s-tls-'));
  mkdirSync(join(root, 'web'));
  mkdirSync(join(root, 'tls'));
  writeFileSync(join(root, 'web', 'web-config.yml'), webConfigText);
  return join(root, 'web', 'web-config.yml');
}

describe('deploy/kubernetes-tls web configuration', () => {
  it('stops the agent, naming the key, while the placeholder hash is there', () => {
    let problems: readonly string[] = [];
    try {
      loadWebConfigFile(mounted(readFileSync(WEB_CONFIG, 'utf8')));
    } catch (err) {
      if (err instanceof WebConfigError) problems = err.problems;
    }
    expect(problems).toContainEqual(
      expect.stringMatching(/^basic_auth_users\.prometheus: not a bcrypt hash/),
    );
  });
});

describeWithTools('deploy/kubernetes-tls with certificates', tools('openssl'), () => {
  it('is accepted with the hash filled in and the TLS Secret beside it', () => {
    const hash = bcrypt.hashSync('scrape-password', 4);
    const file = mounted(
      readFileSync(WEB_CONFIG, 'utf8').replace('REPLACE_WITH_BCRYPT_HASH', `'${hash}'`),
    );
    const pki = createTestPki('k8s');
    const server = pki.server('gpulse.gpulse.svc', ['DNS:gpulse.gpulse.svc']);
    copyFileSync(server.cert, join(file, '..', '..', 'tls', 'tls.crt'));
    copyFileSync(server.key, join(file, '..', '..', 'tls', 'tls.key'));
    copyFileSync(pki.ca.cert, join(file, '..', '..', 'tls', 'ca.crt'));
    const web = loadWebConfigFile(file);
    expect(web.tls).toMatchObject({
      cert: { file: join(file, '..', '..', 'tls', 'tls.crt') },
      clientAuth: 'NoClientCert',
    });
    expect(web.users).toEqual({ prometheus: hash });
    expect(web.headers).toEqual({ 'X-Content-Type-Options': 'nosniff' });
  });
});

describeWithTools('kubectl kustomize deploy/kubernetes-tls', tools('kubectl'), () => {
  it('mounts the web configuration and certificate, probes over HTTPS and scrapes with them', () => {
    const r = spawnSync('kubectl', ['kustomize', DIR], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as Manifest);
    const of = (kind: string) => docs.filter((d) => d.kind === kind);
    expect(of('Secret')).toHaveLength(1);
    const secret = of('Secret')[0] as Manifest & { data: Record<string, string> };
    // kustomize wraps the base64 in lines (Go's decoder skips newlines; the schema's does not).
    for (const k of Object.keys(secret.data)) {
      secret.data[k] = secret.data[k]!.replace(/\s/g, '');
    }
    expect(() => new Secret(secret as never).validate()).not.toThrow();
    expect(Buffer.from(secret.data['web-config.yml']!, 'base64').toString('utf8')).toBe(
      readFileSync(WEB_CONFIG, 'utf8'),
    );

    const ds = of('DaemonSet')[0] as Manifest & { spec: { template: { spec: PodSpec } } };
    expect(() => new DaemonSet(ds as never).validate()).not.toThrow();
    const pod = ds.spec.template.spec;
    const [c] = pod.containers as [Container];
    const file = c.env.find((e) => e.name === 'GPULSE_WEB_CONFIG_FILE')?.value ?? '';
    expect(file).toBe('/etc/gpulse/web/web-config.yml');
    // The file's folder is the generated Secret, and ../tls the certificate's, both read-only.
    const mount = (path: string) => c.volumeMounts.find((m) => m.mountPath === path);
    const volume = (name: string | undefined) => pod.volumes.find((v) => v.name === name)?.secret;
    expect(mount('/etc/gpulse/web')).toMatchObject({ readOnly: true });
    expect(mount('/etc/gpulse/tls')).toMatchObject({ readOnly: true });
    expect(volume(mount('/etc/gpulse/web')?.name)).toEqual({
      secretName: secret.metadata.name,
      defaultMode: 0o440,
    });
    expect(volume(mount('/etc/gpulse/tls')?.name)).toEqual({
      secretName: 'gpulse-tls',
      defaultMode: 0o440,
    });
    expect(pod.securityContext).toMatchObject({ runAsUser: 0, fsGroup: 1000, runAsNonRoot: false });
    // The base's hardening and mounts are all still there.
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.volumeMounts.map((m) => m.mountPath)).toEqual(
      expect.arrayContaining([
        '/host/proc',
        '/host/sys',
        '/host/run',
        '/var/lib/kubelet/pod-resources',
        '/tmp',
      ]),
    );
    expect(
      [c.startupProbe, c.livenessProbe, c.readinessProbe].map((p) => p.httpGet.scheme),
    ).toEqual(['HTTPS', 'HTTPS', 'HTTPS']);
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');

    const sm = of('ServiceMonitor')[0] as Manifest & {
      spec: { endpoints: Record<string, unknown>[] };
    };
    expect(() => new ServiceMonitor(sm as never).validate()).not.toThrow();
    expect(sm.spec.endpoints).toEqual([
      expect.objectContaining({
        port: 'metrics',
        scheme: 'https',
        honorLabels: true,
        tlsConfig: {
          serverName: 'gpulse.gpulse.svc',
          ca: { secret: { name: 'gpulse-tls', key: 'ca.crt' } },
        },
        basicAuth: {
          username: { name: 'gpulse-scrape', key: 'username' },
          password: { name: 'gpulse-scrape', key: 'password' },
        },
        relabelings: expect.arrayContaining([expect.objectContaining({ targetLabel: 'instance' })]),
      }),
    ]);
  });
});
