// deploy/compose TLS variant (docker-compose.tls.yml, tls/): Compose accepts it over the base
// file; the agent and the gateway get --web.config.file with the folder make-secrets.sh fills;
// that script makes every file the web configuration and Prometheus's scrape configuration name
// (certificates for the names Prometheus scrapes), and promtool accepts the scrape
// configuration with them. test/e2e/web-security.test.ts runs the same files against a real
// Prometheus.
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadWebConfigFile } from '../../agent/http/web-config.js';
import { CLI, requireBuild } from '../helpers/cli.js';
import { describeWithTools, tools } from '../helpers/tools.js';
import { deployPath } from './deploy-files.js';

const DIR = deployPath('compose');

interface Service {
  command?: string[];
  volumes?: string[];
  healthcheck?: { test: string[] };
}

const override = parse(readFileSync(join(DIR, 'docker-compose.tls.yml'), 'utf8'), {
  merge: true,
}) as {
  services: Record<string, Service>;
};
const scrape = parse(readFileSync(join(DIR, 'tls', 'prometheus.yml'), 'utf8'), {
  merge: true,
}) as {
  scrape_configs: {
    job_name: string;
    scheme: string;
    tls_config: Record<string, string>;
    basic_auth: Record<string, string>;
    static_configs: { targets: string[] }[];
  }[];
};

const mounts = (s: Service) =>
  (s.volumes ?? []).map((v) => {
    const [source = '', target = '', mode] = v.split(':');
    return { source, target, mode };
  });

describe('deploy/compose TLS override', () => {
  it('gives the agent and the gateway the web configuration that make-secrets.sh writes', () => {
    for (const name of ['gpulse', 'gateway']) {
      const s = override.services[name]!;
      const i = s.command!.indexOf('--web.config.file');
      expect(i, name).toBeGreaterThan(-1);
      expect(s.command![i + 1]).toBe('/etc/gpulse/web/web-config.yml');
      expect(mounts(s)).toEqual([
        { source: './tls/secrets', target: '/etc/gpulse/web', mode: 'ro' },
        { source: './tls/healthcheck.mjs', target: '/etc/gpulse/healthcheck.mjs', mode: 'ro' },
      ]);
      // Docker's health check speaks HTTPS with the client certificate (e2e runs it for real).
      expect(s.healthcheck?.test).toEqual([
        'CMD',
        'node',
        '/etc/gpulse/healthcheck.mjs',
        '/etc/gpulse/web',
        '9489',
      ]);
    }
    const prometheus = mounts(override.services.prometheus!);
    expect(prometheus).toContainEqual({
      source: './tls/prometheus.yml',
      target: '/etc/prometheus/prometheus.yml',
      mode: 'ro',
    });
    expect(prometheus).toContainEqual({
      source: './tls/secrets',
      target: '/etc/prometheus/tls',
      mode: 'ro',
    });
    expect(existsSync(join(DIR, 'tls', 'prometheus.yml'))).toBe(true);
    // The secrets stay out of git.
    expect(readFileSync(join(DIR, 'tls', '.gitignore'), 'utf8').trim()).toBe('secrets/');
  });

  it('scrapes the agent and the gateway over HTTPS with a client certificate and a password', () => {
    expect(scrape.scrape_configs.map((c) => [c.job_name, c.static_configs[0]!.targets])).toEqual([
      ['gpulse', ['gpulse:9489']],
      ['gpulse-gateway', ['gateway:9489']],
    ]);
    for (const c of scrape.scrape_configs) {
      expect(c.scheme).toBe('https');
      expect(c.tls_config).toEqual({
        ca_file: '/etc/prometheus/tls/ca.crt',
        cert_file: '/etc/prometheus/tls/prometheus.crt',
        key_file: '/etc/prometheus/tls/prometheus.key',
      });
      expect(c.basic_auth).toEqual({
        username: 'prometheus',
        password_file: '/etc/prometheus/tls/password',
      });
    }
  });

  it('runs gpulse commands that know --web.config.file', () => {
    requireBuild();
    for (const command of ['simulate', 'gateway']) {
      const r = spawnSync(process.execPath, [CLI, command, '--help'], { encoding: 'utf8' });
      expect(r.stdout, command).toContain('--web.config.file <FILE>');
    }
  });
});

describeWithTools('deploy/compose/tls/make-secrets.sh', tools('openssl', 'promtool'), () => {
  let out = '';
  beforeAll(() => {
    requireBuild();
    out = join(mkdtempSync(join(tmpdir(), 'gpulse-compose-tls-')), 'secrets');
    execFileSync(join(DIR, 'tls', 'make-secrets.sh'), [out], { stdio: 'ignore' });
  });

  it('makes every file the configurations name, for the names Prometheus scrapes', () => {
    const web = loadWebConfigFile(join(out, 'web-config.yml'));
    expect(web.tls).toMatchObject({
      cert: { file: join(out, 'server.crt') },
      key: { file: join(out, 'server.key') },
      clientCa: { file: join(out, 'ca.crt') },
      clientAuth: 'RequireAndVerifyClientCert',
    });
    expect(Object.keys(web.users)).toEqual(['prometheus']);
    expect(web.warnings).toEqual([]);
    for (const c of scrape.scrape_configs) {
      for (const f of [...Object.values(c.tls_config), c.basic_auth.password_file!]) {
        expect(existsSync(f.replace('/etc/prometheus/tls', out)), f).toBe(true);
      }
    }
    expect(readFileSync(join(out, 'password'), 'utf8').trim()).toMatch(/^[0-9a-f]{32}$/);
    const server = new X509Certificate(readFileSync(join(out, 'server.crt')));
    const targets = scrape.scrape_configs.map(
      (c) => c.static_configs[0]!.targets[0]!.split(':')[0],
    );
    for (const host of targets) expect(server.checkHost(host!), host).toBe(host);
    const ca = new X509Certificate(readFileSync(join(out, 'ca.crt')));
    expect(server.verify(ca.publicKey)).toBe(true);
    const client = new X509Certificate(readFileSync(join(out, 'prometheus.crt')));
    expect(client.verify(ca.publicKey)).toBe(true);
    expect(client.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // clientAuth
    // The CA's key is not left behind.
    expect(existsSync(join(out, 'ca.key'))).toBe(false);
  });

  it('is a scrape configuration promtool accepts', () => {
    const config = join(out, '..', 'prometheus.yml');
    writeFileSync(
      config,
      readFileSync(join(DIR, 'tls', 'prometheus.yml'), 'utf8')
        .replaceAll('/etc/prometheus/tls', out)
        .replace(/^rule_files:\n(?: {2}- .*\n)+/m, ''),
    );
    const r = spawnSync('promtool', ['check', 'config', config], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});

describeWithTools('docker-compose config with the TLS override', tools('docker-compose'), () => {
  it('accepts it over the base file and keeps the base mounts', () => {
    const r = spawnSync(
      'docker-compose',
      ['-f', 'docker-compose.yml', '-f', 'docker-compose.tls.yml', 'config'],
      { cwd: DIR, encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    const merged = parse(r.stdout) as {
      services: Record<
        string,
        { command: string[]; volumes: (string | { source: string; target: string })[] }
      >;
    };
    const targets = (name: string) =>
      merged.services[name]!.volumes.map((v) =>
        typeof v === 'string' ? v.split(':')[1] : v.target,
      );
    expect(targets('gpulse')).toEqual(
      expect.arrayContaining(['/var/run/docker.sock', '/etc/gpulse/web']),
    );
    expect(targets('prometheus')).toEqual(
      expect.arrayContaining([
        '/etc/prometheus/prometheus.yml',
        '/etc/prometheus/rules/gpulse-alerts.yaml',
        '/etc/prometheus/tls',
      ]),
    );
    const source = merged.services
      .prometheus!.volumes.map((v) =>
        typeof v === 'string' ? { source: v.split(':')[0]!, target: v.split(':')[1] } : v,
      )
      .find((v) => v.target === '/etc/prometheus/prometheus.yml')!.source;
    expect(resolve(DIR, source)).toBe(join(DIR, 'tls', 'prometheus.yml'));
    expect(merged.services.gateway!.command).toContain('--web.config.file');
  });
});
