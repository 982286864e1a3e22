// Docker health check of the TLS variant (docker-compose.tls.yml): GET /healthz over HTTPS with
// Prometheus's client certificate, since the agent requires one; the image's own check speaks
// plain HTTP. Usage: node healthcheck.mjs [SECRETS_DIR] [PORT]; exit 0 when healthy.
import { readFileSync } from 'node:fs';
import { get } from 'node:https';

const [dir = '/etc/gpulse/web', port = '9489'] = process.argv.slice(2);
const file = (name) => readFileSync(`${dir}/${name}`);
get(
  {
    host: '127.0.0.1',
    port: Number(port),
    path: '/healthz',
    servername: 'localhost',
    ca: file('ca.crt'),
    cert: file('prometheus.crt'),
    key: file('prometheus.key'),
    timeout: 4000,
  },
  (res) => process.exit(res.statusCode === 200 ? 0 : 1),
)
  .on('error', () => process.exit(1))
  .on('timeout', () => process.exit(1));
