// TLS, client certificates and basic auth end to end, with the files the compose stack ships
// (deploy/compose/tls: make-secrets.sh, web-config.yml, prometheus.yml): a real Prometheus scrapes
// `gpulse simulate`, `gpulse gateway` (the fleet over MQTT) and node_exporter with the same web
// configuration file, and is refused where its password or certificate is wrong; real HTTP(S)
// clients check the refusals one by one and the write endpoints' policy.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { parse, stringify } from 'yaml';
import { call, statusOf } from '../helpers/https-client.js';
import {
  allSeries,
  freePort,
  requireBuild,
  seriesValue,
  startCli,
  type CliProcess,
} from '../helpers/cli.js';
import { startPrometheus, type PrometheusServer } from '../helpers/prometheus.js';
import { describeWithTools, tools } from '../helpers/tools.js';
import { deployPath } from '../deploy/deploy-files.js';

interface ScrapeConfig {
  job_name: string;
  scheme?: string;
  honor_labels?: boolean;
  tls_config?: Record<string, string>;
  basic_auth?: Record<string, string>;
  static_configs: { targets: string[] }[];
}

interface Target {
  labels: { job: string };
  health: string;
  lastError: string;
}

describeWithTools(
  'TLS, client certificates and basic auth against a real Prometheus',
  tools('prometheus', 'openssl', 'prometheus-node-exporter'),
  () => {
    const running: CliProcess[] = [];
    let nodeExporter: ChildProcess | undefined;
    let prom: PrometheusServer | undefined;
    let sec = '';
    let password = '';
    let agent: CliProcess;
    let gateway: CliProcess;
    let tlsClient: { ca: string; cert: string; key: string };

    beforeAll(async () => {
      requireBuild();
      const tmp = mkdtempSync(join(tmpdir(), 'gpulse-websec-'));
      sec = join(tmp, 'secrets');
      // The script the compose stack ships, run as a user would (gpulse from this build).
      execFileSync(deployPath('compose', 'tls', 'make-secrets.sh'), [sec], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      password = readFileSync(join(sec, 'password'), 'utf8').trim();
      const webConfig = join(sec, 'web-config.yml');
      const read = (f: string) => readFileSync(join(sec, f), 'utf8');
      tlsClient = { ca: read('ca.crt'), cert: read('prometheus.crt'), key: read('prometheus.key') };

      const brokerPort = await freePort();
      gateway = await startCli(
        ['gateway', '--embedded-broker', `127.0.0.1:${brokerPort}`, '--web.config.file', webConfig],
        { GPULSE_LOG_LEVEL: 'warn' },
        { tls: tlsClient },
      );
      running.push(gateway);
      agent = await startCli(
        ['simulate', '--profile', 'h100', '--interval', '500ms', '--web.config.file', webConfig],
        {
          GPULSE_LOG_LEVEL: 'info',
          GPULSE_MQTT_URL: `mqtt://127.0.0.1:${brokerPort}`,
          GPULSE_MQTT_PROTOCOL: '3.1.1',
          GPULSE_MQTT_SITE: 'lab',
          GPULSE_MQTT_NODE: 'h100-1',
          GPULSE_MQTT_INTERVAL: '1s',
          GPULSE_MQTT_FLUSH: '1s',
          GPULSE_MQTT_SPOOL_DIR: join(tmp, 'spool'),
        },
        // Not loopback: write endpoints are decided by authentication alone.
        { tls: tlsClient, listenHost: '0.0.0.0' },
      );
      running.push(agent);

      // node_exporter with the very same web configuration file.
      const nodePort = await freePort();
      nodeExporter = spawn(
        'prometheus-node-exporter',
        [
          `--web.listen-address=127.0.0.1:${nodePort}`,
          `--web.config.file=${webConfig}`,
          '--collector.disable-defaults',
          '--collector.loadavg',
        ],
        { stdio: 'ignore' },
      );

      // The shipped scrape configuration, pointed at these processes and files.
      const shipped = parse(readFileSync(deployPath('compose', 'tls', 'prometheus.yml'), 'utf8'), {
        merge: true,
      }) as { scrape_configs: ScrapeConfig[] };
      const local = (c: ScrapeConfig, port: number): ScrapeConfig => ({
        ...c,
        tls_config: Object.fromEntries(
          Object.entries(c.tls_config ?? {}).map(([k, v]) => [
            k,
            v.replace('/etc/prometheus/tls', sec),
          ]),
        ),
        basic_auth: Object.fromEntries(
          Object.entries(c.basic_auth ?? {}).map(([k, v]) => [
            k,
            v.replace('/etc/prometheus/tls', sec),
          ]),
        ),
        static_configs: [{ targets: [`127.0.0.1:${port}`] }],
      });
      const [gpulseJob, gatewayJob] = shipped.scrape_configs as [ScrapeConfig, ScrapeConfig];
      writeFileSync(join(tmp, 'wrong-password'), 'not-the-password\n');
      const jobs = [
        local(gpulseJob, agent.port),
        local(gatewayJob, gateway.port),
        { ...local(gpulseJob, nodePort), job_name: 'node' },
        {
          ...local(gpulseJob, agent.port),
          job_name: 'wrong-password',
          basic_auth: { username: 'prometheus', password_file: join(tmp, 'wrong-password') },
        },
        {
          ...local(gpulseJob, agent.port),
          job_name: 'no-client-certificate',
          tls_config: { ca_file: join(sec, 'ca.crt') },
        },
        { ...local(gpulseJob, agent.port), job_name: 'plain-http', scheme: 'http' },
      ];
      prom = await startPrometheus(
        join(tmp, 'prometheus'),
        stringify({
          global: { scrape_interval: '1s', scrape_timeout: '1s' },
          scrape_configs: jobs,
        }),
      );
    }, 90_000);

    afterAll(async () => {
      nodeExporter?.kill('SIGTERM');
      await prom?.stop();
      await Promise.all(running.map((c) => c.stop()));
    });

    it('Prometheus scrapes gpulse, the gateway and node_exporter with its certificate and password, and no one without', async () => {
      const targets = async () =>
        Object.fromEntries(
          (await prom!.api<{ activeTargets: Target[] }>('/api/v1/targets')).activeTargets.map(
            (t) => [t.labels.job, t],
          ),
        );
      await vi.waitFor(
        async () => {
          const t = await targets();
          expect(t.gpulse?.health).toBe('up');
          expect(t['gpulse-gateway']?.health).toBe('up');
          expect(t.node?.health).toBe('up');
          expect(t['wrong-password']?.health).toBe('down');
          expect(t['no-client-certificate']?.health).toBe('down');
          expect(t['plain-http']?.health).toBe('down');
        },
        { timeout: 30_000, interval: 500 },
      );
      const t = await targets();
      expect(t['wrong-password']?.lastError).toMatch(/401 Unauthorized/);
      expect(t['no-client-certificate']?.lastError).toMatch(
        /certificate required|bad certificate|tls/i,
      );
      expect(t['plain-http']?.lastError).toMatch(/EOF|connection reset|malformed HTTP/i);

      // The series arrive: the agent's own, and the fleet's through the gateway over MQTT.
      const query = async (q: string) =>
        (
          await prom!.api<{ result: { metric: Record<string, string> }[] }>('/api/v1/query', {
            query: q,
          })
        ).result;
      await vi.waitFor(
        async () => {
          expect(await query('gpulse_gpu_info{job="gpulse"}')).toHaveLength(1);
          expect(await query('gpulse_gpu_info{job="gpulse-gateway",node="h100-1"}')).toHaveLength(
            1,
          );
          expect((await query('node_load1{job="node"}')).length).toBe(1);
        },
        { timeout: 40_000, interval: 1000 },
      );
    });

    it('refuses a wrong password, a missing client certificate and plain HTTP; keeps probes open', async () => {
      const port = agent.port;
      const right = `prometheus:${password}`;
      expect(await call(port, { path: '/metrics', tls: tlsClient, auth: right })).toMatchObject({
        status: 200,
        headers: { 'x-content-type-options': 'nosniff', 'x-frame-options': 'deny' },
      });
      const wrong = await call(port, {
        path: '/metrics',
        tls: tlsClient,
        auth: 'prometheus:guess',
      });
      expect(wrong).toMatchObject({ status: 401, headers: { 'www-authenticate': 'Basic' } });
      expect(await call(port, { path: '/metrics', tls: tlsClient })).toMatchObject({ status: 401 });
      expect(
        statusOf(await call(port, { path: '/metrics', tls: { ca: tlsClient.ca }, auth: right })),
      ).toMatch(/ECONNRESET|EPROTO|ERR_SSL|socket hang up/);
      // A certificate of another CA.
      const other = mkdtempSync(join(tmpdir(), 'gpulse-rogue-'));
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-keyout',
          join(other, 'k'),
          '-out',
          join(other, 'c'),
          '-days',
          '1',
          '-subj',
          '/CN=prometheus',
        ],
        { stdio: 'ignore' },
      );
      const rogue = {
        ca: tlsClient.ca,
        cert: readFileSync(join(other, 'c')),
        key: readFileSync(join(other, 'k')),
      };
      expect(statusOf(await call(port, { path: '/metrics', tls: rogue, auth: right }))).toMatch(
        /ECONNRESET|EPROTO|ERR_SSL|socket hang up/,
      );
      expect(statusOf(await call(port, { path: '/metrics', auth: right }))).toMatch(
        /ECONNRESET|socket hang up|HPE_INVALID/,
      );
      // Probes need no password; readiness details do.
      expect(await call(port, { path: '/healthz', tls: tlsClient })).toMatchObject({ status: 200 });
      const bare = await call(port, { path: '/readyz', tls: tlsClient });
      expect('body' in bare && JSON.parse(bare.body)).toEqual({ ready: true });
      const full = await call(port, { path: '/readyz', tls: tlsClient, auth: right });
      expect('body' in full && JSON.parse(full.body)).toMatchObject({
        ready: true,
        collectors: { 'nvidia-smi': { status: 'ok' } },
      });
      // Docker's health check of the compose TLS variant passes against both, and fails where
      // nothing listens.
      const healthcheck = (p: number) =>
        spawnSync(process.execPath, [
          deployPath('compose', 'tls', 'healthcheck.mjs'),
          sec,
          String(p),
        ]).status;
      expect([healthcheck(port), healthcheck(gateway.port), healthcheck(await freePort())]).toEqual(
        [0, 0, 1],
      );
      // The agent says where it serves, with the scheme it serves (fastify names a wildcard
      // listen by its first interface address).
      expect(agent.logs.map((l) => l.msg)).toContainEqual(
        expect.stringMatching(
          new RegExp(`metrics at https://(0\\.0\\.0\\.0|127\\.0\\.0\\.1):${agent.port}/metrics`),
        ),
      );
      // The gateway holds the same line.
      expect(
        await call(gateway.port, { path: '/metrics', tls: tlsClient, auth: 'prometheus:guess' }),
      ).toMatchObject({
        status: 401,
      });
      // Counted on the agent's own /metrics (published within a second).
      await vi.waitFor(async () => {
        const metrics = await call(port, { path: '/metrics', tls: tlsClient, auth: right });
        const body = 'body' in metrics ? metrics.body : '';
        expect(
          seriesValue(body, 'gpulse_http_requests_refused_total', { reason: 'unauthorized' }),
        ).toBeGreaterThanOrEqual(2);
        expect(
          seriesValue(body, 'gpulse_http_connections_closed_total', { reason: 'tls_handshake' }),
        ).toBeGreaterThanOrEqual(2);
        expect(seriesValue(body, 'gpulse_http_web_config_last_reload_successful')).toBe(1);
      });
    });

    it('takes writes only from authenticated clients when it listens beyond loopback', async () => {
      const rows = JSON.stringify(
        Array.from({ length: 300 }, (_v, i) => ({
          amount: (i % 50) + 1,
          country: i % 3 ? 'DE' : 'FR',
        })),
      );
      const post = (extra: Parameters<typeof call>[1]) =>
        call(agent.port, {
          method: 'POST',
          path: '/api/v1/models/fraud/reference',
          body: rows,
          ...extra,
        });
      expect(await post({ tls: tlsClient })).toMatchObject({ status: 401 });
      expect(await post({ tls: tlsClient, auth: `prometheus:${password}` })).toMatchObject({
        status: 201,
      });

      // Without a web configuration on 0.0.0.0: reads answer, writes are refused with the way out.
      const open = await startCli(
        ['simulate', '--profile', 'h100'],
        { GPULSE_LOG_LEVEL: 'warn' },
        { listenHost: '0.0.0.0' },
      );
      running.push(open);
      expect(statusOf(await call(open.port, { path: '/metrics' }))).toBe(200);
      const refused = await call(open.port, {
        method: 'POST',
        path: '/api/v1/models/fraud/reference',
        body: rows,
      });
      expect(refused).toMatchObject({ status: 403 });
      expect('body' in refused && JSON.parse(refused.body)).toMatchObject({
        error: 'writes_disabled',
        message: expect.stringMatching(
          /listens on 0\.0\.0\.0 without authentication.*--web\.config\.file/,
        ),
      });
      // The documented opt-in.
      const optIn = await startCli(
        ['simulate', '--profile', 'h100', '--write-endpoints', 'open'],
        { GPULSE_LOG_LEVEL: 'warn' },
        { listenHost: '0.0.0.0' },
      );
      running.push(optIn);
      expect(
        await call(optIn.port, {
          method: 'POST',
          path: '/api/v1/models/fraud/reference',
          body: rows,
        }),
      ).toMatchObject({
        status: 201,
      });
      await vi.waitFor(async () =>
        expect(
          allSeries((await open.get('/metrics')).body, 'gpulse_http_requests_refused_total'),
        ).toContainEqual({ labels: { reason: 'writes_disabled' }, value: 1 }),
      );
    });
  },
);
