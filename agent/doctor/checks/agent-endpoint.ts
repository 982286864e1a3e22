import { httpGet, type HttpAnswer } from '../http-get.js';
import type { Check, CheckOutcome } from '../types.js';

// An agent may listen on a port fetch refuses (6000, 6665-6669, 10080...): httpGet uses node:http.
function getHealth(host: string, port: number, timeoutMs: number): Promise<HttpAnswer> {
  return httpGet({ host, port, path: '/healthz' }, timeoutMs, 64 * 1024);
}

/** The host to dial for a listen address: wildcards mean "this host". */
export function dialHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '::1';
  return host;
}

/** A running agent answers GET /healthz on the configured listen address. */
export const agentEndpointCheck: Check = {
  id: 'agent',
  title: 'agent endpoint',
  async run(ctx): Promise<CheckOutcome> {
    const { host, port } = ctx.config.listen;
    const h = dialHost(host);
    const url = `http://${h.includes(':') ? `[${h}]` : h}:${port}/healthz`;
    const details = { url };
    let res: { status: number; body: string };
    try {
      res = await getHealth(h, port, ctx.timeoutMs);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      const refused = code === 'ECONNREFUSED';
      return {
        status: 'warn',
        required: false,
        finding: refused
          ? `no agent answers at ${url} (not running?)`
          : `${url} did not answer: ${code}`,
        problem: refused
          ? 'nothing serves /metrics on this address, so Prometheus scrapes fail'
          : 'something holds the port but does not answer HTTP in time',
        fix: refused
          ? 'start the agent: `gpulse run` (systemd: `sudo systemctl enable --now gpulse`); if it listens elsewhere pass --listen / GPULSE_LISTEN'
          : 'check what listens there (`ss -ltnp`) and whether the agent is stuck',
        details: { ...details, code },
      };
    }
    const body = res.body;
    if (res.status === 200 && /"status"\s*:\s*"ok"/.test(body))
      return {
        status: 'ok',
        required: false,
        finding: `a running agent answers at ${url}`,
        details,
      };
    if (res.status === 503)
      return {
        status: 'warn',
        required: false,
        finding: `the agent at ${url} is stopping (503)`,
        problem: 'the agent is shutting down',
        fix: 'wait for it to stop and start it again (`sudo systemctl restart gpulse`)',
        details,
      };
    return {
      status: 'fail',
      required: false,
      finding: `${url} answered ${res.status}, not gpulse's health check`,
      problem: "another program holds the agent's port, so the agent cannot listen there",
      fix: 'find it with `ss -ltnp` and stop it, or give the agent another port: --listen / GPULSE_LISTEN',
      details: { ...details, httpStatus: res.status },
    };
  },
};
