// Shared helpers of the benchmark scripts (not tests): processes, free ports, /proc readings, tables.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** A free TCP port on loopback. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Starts a process (argument array, no shell); output goes to the given file descriptor or is ignored. */
export function start(cmd, args, env = {}) {
  const child = spawn(cmd, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  child.stderrTail = () => stderr;
  return child;
}

/** Waits until fn() resolves truthy. */
export async function waitFor(fn, timeoutMs = 30_000, what = 'condition') {
  const t0 = Date.now();
  for (;;) {
    try {
      if (await fn()) return;
    } catch {
      // not yet
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** CPU seconds (user+system) of a pid from /proc/<pid>/stat. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
  return (Number(fields[11]) + Number(fields[12])) / ticks;
}

/** Resident set size in bytes of a pid. */
export function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Median of numbers. */
export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Runs wrk and returns {rps, requests, p50ms, p99ms}; `headers` are sent with every request. */
export function wrk(url, connections, seconds, threads = 2, headers = {}) {
  const headerArgs = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const out = execFileSync(
    'wrk',
    [
      `-t${Math.min(threads, connections)}`,
      `-c${connections}`,
      `-d${seconds}s`,
      '--latency',
      ...headerArgs,
      url,
    ],
    { encoding: 'utf8' },
  );
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const pct = (p) => {
    if (!(requests > 0)) return NaN; // wrk prints zeros when nothing completed
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out);
    if (!m) return NaN;
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  if (non2xx > 0) throw new Error(`wrk saw ${non2xx} error responses from ${url}`);
  return { rps, requests, p50ms: pct(50), p99ms: pct(99) };
}

/** Prints rows (arrays) as an aligned table with a header. */
export function table(header, rows) {
  const all = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(line(all[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of all.slice(1)) console.log(line(r));
}

/**
 * Starts a private Mosquitto on a free loopback port with its config in `dir` (`extraConf` lines
 * appended); resolves once it accepts a publish. Stop it with `broker.kill()`.
 */
export async function startMosquitto(dir, extraConf = '') {
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  // As root, mosquitto would switch to user "mosquitto", who cannot read our temp dir.
  const user = process.getuid?.() === 0 ? 'user root\n' : '';
  writeFileSync(
    conf,
    `${user}listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n${extraConf}`,
  );
  const broker = start('mosquitto', ['-c', conf]);
  await waitFor(
    () => {
      if (broker.exitCode !== null) throw new Error(`mosquitto exited: ${broker.stderrTail()}`);
      try {
        execFileSync('mosquitto_pub', ['-p', String(port), '-t', 'bench/ping', '-m', '1'], {
          stdio: 'ignore',
        });
        return true;
      } catch {
        return false;
      }
    },
    10_000,
    'mosquitto',
  );
  return { broker, port };
}
