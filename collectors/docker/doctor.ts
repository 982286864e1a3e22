import { existsSync, readFileSync, statSync } from 'node:fs';
import { inContainer } from '../../agent/doctor/settings.js';
import type { Check, CheckOutcome } from '../../agent/doctor/types.js';

/** Name of a group id from /etc/group, for the fix text. */
function groupName(gid: number): string | undefined {
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && Number(id) === gid) return name;
    }
  } catch {
    // no /etc/group (distroless image): the number will do
  }
  return undefined;
}

/** Docker socket reachable and permitted. */
export const dockerSocketCheck: Check = {
  id: 'docker',
  title: 'Docker socket',
  async run(ctx): Promise<CheckOutcome> {
    const { mode, socket: configured } = ctx.config.collectors.docker;
    if (mode === 'off')
      return {
        status: 'skip',
        required: false,
        finding: 'the docker collector is off (collectors.docker.mode: off)',
      };
    const probe = await ctx.docker();
    if (!probe.ok && !probe.endpoint)
      return {
        status: 'fail',
        required: true,
        finding: probe.message,
        problem: 'the Docker endpoint setting cannot be used, so containers are not seen',
        fix: 'set GPULSE_DOCKER_SOCKET (collectors.docker.socket) or DOCKER_HOST to a socket path, unix://PATH or tcp://HOST:PORT',
        details: { code: probe.code },
      };
    const from = configured
      ? 'collectors.docker.socket'
      : ctx.env.DOCKER_HOST
        ? 'DOCKER_HOST'
        : 'the default socket';
    const endpoint = probe.endpoint;
    if (!endpoint) throw new Error('unreachable: a probe without an endpoint was handled above');
    const label = endpoint.display;
    const where = `${label} (from ${from})`;
    if (probe.ok) {
      const runtimes = probe.runtimes.join(', ') || 'none listed';
      return {
        status: 'ok',
        required: mode === 'required',
        finding: `Docker Engine ${probe.version ?? '?'} (API ${probe.apiVersion ?? '?'}) at ${label}: ${probe.containers ?? '?'} containers, runtimes ${runtimes}`,
        details: {
          endpoint: label,
          ...(probe.version ? { version: probe.version } : {}),
          ...(probe.apiVersion ? { apiVersion: probe.apiVersion } : {}),
          runtimes: probe.runtimes,
        },
      };
    }
    const socket = endpoint.kind === 'socket' ? endpoint.socketPath : undefined;
    // A socket that exists means Docker is installed here: not reaching it is a real problem even
    // in auto mode, since container attribution silently stops.
    const present = socket === undefined || existsSync(socket);
    const required = mode === 'required' || (mode === 'auto' && present);
    const details = { endpoint: label, code: probe.code };
    const setSocket =
      'or point GPULSE_DOCKER_SOCKET (collectors.docker.socket) at the right socket';
    switch (probe.code) {
      case 'ENOENT':
        return {
          status: mode === 'required' ? 'fail' : 'warn',
          required: mode === 'required',
          finding: `no Docker socket at ${where}`,
          problem: 'GPU processes are not attributed to containers (no container labels)',
          fix: inContainer(ctx.env, existsSync)
            ? `mount the host's socket read-only: \`-v /var/run/docker.sock:/var/run/docker.sock:ro\`, ${setSocket}; without Docker set GPULSE_DOCKER_MODE=off`
            : `start Docker: \`sudo systemctl enable --now docker\`, ${setSocket}; without Docker set GPULSE_DOCKER_MODE=off`,
          details,
        };
      case 'EACCES':
      case 'EPERM': {
        let group = 'docker';
        let gid: number | undefined;
        try {
          if (socket) {
            gid = statSync(socket).gid;
            group = groupName(gid) ?? String(gid);
          }
        } catch {
          // keep "docker"
        }
        return {
          status: 'fail',
          required,
          finding: `permission denied on ${where}`,
          problem: `this user (uid ${process.getuid?.() ?? '?'}) may not use the Docker socket (group ${group}), so containers are not seen`,
          fix: inContainer(ctx.env, existsSync)
            ? `run the container with the socket's group: \`--group-add ${gid ?? '$(stat -c %g /var/run/docker.sock)'}\` (Kubernetes: securityContext.supplementalGroups: [${gid ?? '<gid>'}])`
            : `add the user to the ${group} group: \`sudo usermod -aG ${group} $USER\`, then log in again (or \`newgrp ${group}\`); for the systemd unit: SupplementaryGroups=${group}`,
          details: { ...details, group },
        };
      }
      case 'ECONNREFUSED':
        return {
          status: 'fail',
          required,
          finding: `nothing answers on ${where}`,
          problem: 'the socket exists but no Docker daemon listens on it (stopped or crashed)',
          fix: 'start the daemon: `sudo systemctl start docker` (logs: `journalctl -u docker`)',
          details,
        };
      case 'ETIMEDOUT':
        return {
          status: 'fail',
          required,
          finding: `Docker did not answer within ${ctx.timeoutMs}ms at ${where}`,
          problem: 'the daemon is hung or overloaded; container attribution will lag or stop',
          fix: 'check `sudo systemctl status docker` and `journalctl -u docker`; restart it if it stays hung',
          details,
        };
      default:
        return {
          status: 'fail',
          required,
          finding: `Docker at ${where} failed: ${probe.message}`,
          problem: 'whatever answers there is not a working Docker Engine',
          fix: `check the endpoint with \`curl --unix-socket ${socket ?? '<socket>'} http://d/_ping\`, ${setSocket}`,
          details,
        };
    }
  },
};
