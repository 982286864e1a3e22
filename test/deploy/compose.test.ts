// deploy/compose: the files docker-compose reads are valid for Compose itself (`docker-compose
// config`), and what they name exists: mounted repository paths, gpulse subcommands and settings,
// scrape targets, the rule files Prometheus loads and the dashboards Grafana provisions.
// Pulling the images needs a registry this machine cannot reach, so the stack is not started here.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { settings } from '../../agent/settings.generated.js';
import { gatewayFlags } from '../../edge/gateway/config.js';
import { CLI, REPO_ROOT, requireBuild } from '../helpers/cli.js';
import { describeWithTools, tools } from '../helpers/tools.js';
import { deployPath, loadDashboards } from './deploy-files.js';

const DIR = deployPath('compose');

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
}

interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** A compose file with its YAML merge keys (`<<: *gpulse`) applied, as Compose applies them. */
function loadCompose(file: string): ComposeFile {
  return parse(readFileSync(join(DIR, file), 'utf8'), { merge: true }) as ComposeFile;
}

const base = loadCompose('docker-compose.yml');
const gpu = loadCompose('docker-compose.gpu.yml');

/** `source:target[:mode]` of a short-syntax volume. */
function mount(spec: string): { source: string; target: string } {
  const [source = '', target = ''] = spec.split(':');
  return { source, target };
}

/** Bind mounts from this repository (relative sources), resolved. */
function repoMounts(service: Service): { source: string; target: string }[] {
  return (service.volumes ?? [])
    .map(mount)
    .filter((m) => m.source.startsWith('.'))
    .map((m) => ({ source: resolve(DIR, m.source), target: m.target }));
}

describe('deploy/compose files', () => {
  it('brings up the agent, a Jetson, Mosquitto, the gateway, Prometheus and Grafana', () => {
    expect(Object.keys(base.services).sort()).toEqual(
      ['gateway', 'gpulse', 'grafana', 'jetson', 'mosquitto', 'prometheus'].sort(),
    );
    // The gpulse services build the repository's Dockerfile and run hardened.
    for (const name of ['gpulse', 'jetson', 'gateway']) {
      const s = base.services[name]!;
      expect(existsSync(join(resolve(DIR, s.build!.context), s.build!.dockerfile!)), name).toBe(
        true,
      );
      expect(s, name).toMatchObject({ read_only: true, cap_drop: ['ALL'] });
    }
    expect(base.services.gpulse!.command).toEqual(['simulate', '--profile', 'h100-8x']);
    expect(gpu.services.gpulse!.command).toEqual(['run']);
  });

  it('mounts only repository paths that exist, and every named volume is declared', () => {
    for (const file of [base, gpu]) {
      for (const [name, s] of Object.entries(file.services)) {
        for (const m of repoMounts(s))
          expect(existsSync(m.source), `${name}: ${m.source}`).toBe(true);
        for (const { source } of (s.volumes ?? []).map(mount)) {
          if (!source.startsWith('.') && !source.startsWith('/'))
            expect(Object.keys(base.volumes ?? {}), `${name}: volume ${source}`).toContain(source);
        }
      }
    }
  });

  it('runs gpulse subcommands and settings that exist', () => {
    requireBuild();
    const known = new Set([...settings, ...gatewayFlags].flatMap((s) => (s.env ? [s.env] : [])));
    for (const file of [base, gpu]) {
      for (const [name, s] of Object.entries(file.services)) {
        for (const key of Object.keys(s.environment ?? {}).filter((k) => k.startsWith('GPULSE_')))
          expect(known.has(key), `${name}: ${key} is no gpulse setting`).toBe(true);
      }
    }
    // Each command exists and knows the flags it is given (`--help` itself validates nothing).
    for (const s of [
      base.services.gpulse!,
      base.services.jetson!,
      base.services.gateway!,
      gpu.services.gpulse!,
    ]) {
      // The gateway runs through its launcher, which adds the subcommand.
      const launcher = s.entrypoint?.[0] === '/app/scripts/gpulse-gateway';
      const [command, ...args] = launcher ? ['gateway', ...s.command!] : s.command!;
      const r = spawnSync(process.execPath, [CLI, command!, '--help'], { encoding: 'utf8' });
      expect(r.stdout, s.command!.join(' ')).toMatch(new RegExp(`^Usage: gpulse ${command} `));
      for (const flag of args.filter((a) => a.startsWith('--')))
        expect(r.stdout, `${command} ${flag}`).toContain(`${flag} `);
    }
  });

  it('starts the gateway through the launcher the image ships', () => {
    requireBuild();
    expect(base.services.gateway!.entrypoint).toEqual(['/app/scripts/gpulse-gateway']);
    expect(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8')).toMatch(
      /^COPY scripts\/gpulse-edge scripts\/gpulse-gateway \.\/scripts\/$/m,
    );
    const launcher = spawnSync(join(REPO_ROOT, 'scripts', 'gpulse-gateway'), ['--help'], {
      encoding: 'utf8',
    });
    expect(launcher.stdout).toMatch(/^Usage: gpulse gateway /);
  });

  it('gives Prometheus the alert rules and the gpulse services as targets', () => {
    const prometheus = base.services.prometheus!;
    const mounts = repoMounts(prometheus);
    const configMount = mounts.find((m) => m.target === '/etc/prometheus/prometheus.yml')!;
    expect(configMount.source).toBe(join(DIR, 'prometheus', 'prometheus.yml'));
    expect(mounts.map((m) => m.source)).toContain(deployPath('prometheus', 'alerts.yaml'));
    const config = parse(readFileSync(configMount.source, 'utf8')) as {
      rule_files: string[];
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
    };
    // The rule glob matches where alerts.yaml is mounted.
    const rulesTarget = mounts.find((m) => m.source === deployPath('prometheus', 'alerts.yaml'))!;
    const glob = config.rule_files[0]!;
    expect(rulesTarget.target.startsWith(glob.slice(0, glob.indexOf('*')))).toBe(true);
    expect(rulesTarget.target.endsWith(glob.slice(glob.indexOf('*') + 1))).toBe(true);
    const targets = config.scrape_configs.flatMap((c) =>
      c.static_configs.flatMap((s) => s.targets),
    );
    expect(targets.sort()).toEqual(['gateway:9489', 'gpulse:9489']);
  });

  it('provisions the Prometheus datasource and every dashboard in Grafana', () => {
    const grafana = base.services.grafana!;
    const mounts = repoMounts(grafana);
    const dashboards = mounts.find((m) => m.source === deployPath('grafana', 'dashboards'))!;
    const providers = parse(
      readFileSync(join(DIR, 'grafana', 'provisioning', 'dashboards', 'gpulse.yaml'), 'utf8'),
    ) as { providers: { options: { path: string } }[] };
    expect(providers.providers[0]!.options.path).toBe(dashboards.target);
    const sources = parse(
      readFileSync(join(DIR, 'grafana', 'provisioning', 'datasources', 'prometheus.yaml'), 'utf8'),
    ) as { datasources: { type: string; url: string; isDefault: boolean }[] };
    expect(sources.datasources).toEqual([
      expect.objectContaining({
        type: 'prometheus',
        url: 'http://prometheus:9090',
        isDefault: true,
      }),
    ]);
    const home = grafana.environment!.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH!;
    expect(home.startsWith(`${dashboards.target}/`)).toBe(true);
    expect(loadDashboards().map((d) => d.file)).toContain(home.slice(dashboards.target.length + 1));
  });
});

describeWithTools('docker-compose config', tools('docker-compose', 'promtool'), () => {
  const check = (args: string[]) =>
    spawnSync(args[0]!, args.slice(1), { cwd: DIR, encoding: 'utf8', env: { ...process.env } });

  it('accepts the stack, alone and with the real-GPU override', () => {
    for (const files of [
      ['docker-compose.yml'],
      ['docker-compose.yml', 'docker-compose.gpu.yml'],
    ]) {
      const r = check(['docker-compose', ...files.flatMap((f) => ['-f', f]), 'config', '-q']);
      expect(r.status, r.stderr).toBe(0);
    }
    // The override adds the GPU device request and the host's /proc to the agent.
    const merged = check([
      'docker-compose',
      '-f',
      'docker-compose.yml',
      '-f',
      'docker-compose.gpu.yml',
      'config',
    ]);
    const svc = (parse(merged.stdout) as ComposeFile).services.gpulse as Service & {
      deploy: { resources: { reservations: { devices: { driver: string }[] } } };
      pid: string;
    };
    expect(svc.deploy.resources.reservations.devices[0]!.driver).toBe('nvidia');
    expect(svc.pid).toBe('host');
    expect(svc.volumes).toContain('/proc:/host/proc:ro');
  });

  it('has a Prometheus configuration promtool accepts', () => {
    const r = check(['promtool', 'check', 'config', join('prometheus', 'prometheus.yml')]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});
