import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { freePort } from '../../../test/helpers/cli.js';
import { describeWithTools, findTool, tools } from '../../../test/helpers/tools.js';
import { loadConfig } from '../../config.js';
import { runDoctor } from '../run-doctor.js';
import { diskCheck } from './disk.js';
import { mqttCheck } from './mqtt.js';

// The MQTT check against a real Mosquitto that requires a password: a good login, a wrong one,
// none at all, and a port where no broker listens must each get their own explanation.

const PASSWORD = 's3cret-Pa55';

/** Resolves once something accepts TCP connections on the port. */
function waitForPort(port: number, timeoutMs: number): Promise<void> {
  return vi.waitFor(
    () =>
      new Promise<void>((resolve, reject) => {
        const sock = connect(port, '127.0.0.1');
        sock.once('connect', () => {
          sock.destroy();
          resolve();
        });
        sock.once('error', () => {
          sock.destroy();
          reject(new Error(`nothing listens on ${port}`));
        });
      }),
    { timeout: timeoutMs, interval: 100 },
  );
}

describeWithTools(
  'doctor MQTT check against a real mosquitto',
  tools('mosquitto', 'mosquitto_passwd'),
  () => {
    let tmp: string;
    let port: number;
    let broker: ChildProcess;

    beforeAll(async () => {
      tmp = await mkdtemp(join(tmpdir(), 'gpulse-doctor-mqtt-'));
      // Started as root, mosquitto drops to its own user: it must still read its files.
      await chmod(tmp, 0o755);
      port = await freePort();
      const passwd = join(tmp, 'passwd');
      execFileSync(findTool('mosquitto_passwd')!, ['-b', '-c', passwd, 'alice', PASSWORD]);
      await chmod(passwd, 0o644);
      const conf = join(tmp, 'mosquitto.conf');
      await writeFile(
        conf,
        `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${passwd}\npersistence false\n`,
      );
      broker = spawn(findTool('mosquitto')!, ['-c', conf], { stdio: 'ignore' });
      await waitForPort(port, 10_000);
    });

    afterAll(async () => {
      broker?.kill('SIGTERM');
      await rm(tmp, { recursive: true, force: true });
    });

    /** Runs the MQTT and disk checks on the config these GPULSE_MQTT_* variables make. */
    async function check(env: Record<string, string>) {
      const { config } = loadConfig({ env });
      const report = await runDoctor({
        config,
        env: { STATE_DIRECTORY: join(tmp, 'state') },
        version: 'test',
        timeoutMs: 3000,
        checks: [mqttCheck, diskCheck],
      });
      const result = report.checks[0]!;
      // Whatever happened, the password is never shown.
      expect(JSON.stringify(report)).not.toContain(PASSWORD);
      return { result, report, disk: report.checks[1]! };
    }

    it('connects with the configured credentials', async () => {
      const { result, report, disk } = await check({
        GPULSE_MQTT_URL: `mqtt://127.0.0.1:${port}`,
        GPULSE_MQTT_USERNAME: 'alice',
        GPULSE_MQTT_PASSWORD: PASSWORD,
      });
      expect(result).toMatchObject({
        status: 'ok',
        required: true,
        finding: `connected to mqtt://127.0.0.1:${port} as alice (MQTT 5)`,
        details: { protocol: '5', username: 'alice' },
      });
      expect(report.exitCode).toBe(0);
      // The spool goes to the default state directory; its filesystem has room for it.
      expect(disk).toMatchObject({ status: 'ok', required: true });
      expect(disk.finding).toMatch(
        new RegExp(`^MQTT spool ${join(tmp, 'state', 'mqtt')}: .* free of `),
      );
    });

    it('reads the password from passwordFile and speaks 3.1.1 when told to', async () => {
      const file = join(tmp, 'mqtt-password');
      await writeFile(file, `${PASSWORD}\n`);
      const { result } = await check({
        GPULSE_MQTT_URL: `mqtt://127.0.0.1:${port}`,
        GPULSE_MQTT_USERNAME: 'alice',
        GPULSE_MQTT_PASSWORD_FILE: file,
        GPULSE_MQTT_PROTOCOL: '3.1.1',
      });
      expect(result).toMatchObject({
        status: 'ok',
        finding: `connected to mqtt://127.0.0.1:${port} as alice (MQTT 3.1.1)`,
      });
    });

    it('says the broker refused a wrong password, and how to fix it', async () => {
      for (const protocol of ['5', '3.1.1']) {
        const { result, report } = await check({
          GPULSE_MQTT_URL: `mqtt://127.0.0.1:${port}`,
          GPULSE_MQTT_USERNAME: 'alice',
          GPULSE_MQTT_PASSWORD: 'wrong-password',
          GPULSE_MQTT_PROTOCOL: protocol,
        });
        expect(result).toMatchObject({
          status: 'fail',
          required: true,
        });
        // Brokers differ: "bad username or password" (EMQX, HiveMQ) or "not authorized" (Mosquitto).
        expect(result.finding).toMatch(
          new RegExp(
            `^mqtt://127\\.0\\.0\\.1:${port} refused the (credentials as alice \\(bad username or password\\)|login as alice \\(not authorized\\))$`,
          ),
        );
        expect(result.fix).toContain('GPULSE_MQTT_PASSWORD');
        expect(JSON.stringify(report)).not.toContain('wrong-password');
        expect(report.exitCode).toBe(1);
      }
    });

    it('says a login is needed when none is configured', async () => {
      const { result } = await check({ GPULSE_MQTT_URL: `mqtt://127.0.0.1:${port}` });
      expect(result.status).toBe('fail');
      expect(result.finding).toMatch(
        new RegExp(
          `^mqtt://127\\.0\\.0\\.1:${port} refused the (credentials|login) without credentials`,
        ),
      );
      expect(result.fix).toContain('the broker requires a login: set mqtt.username');
    });

    it('tells an unreachable broker apart from a refused login', async () => {
      const closed = await freePort();
      const { result } = await check({
        GPULSE_MQTT_URL: `mqtt://127.0.0.1:${closed}`,
        GPULSE_MQTT_USERNAME: 'alice',
        GPULSE_MQTT_PASSWORD: PASSWORD,
      });
      expect(result).toMatchObject({
        status: 'fail',
        required: true,
        details: { code: 'ECONNREFUSED' },
      });
      expect(result.finding).toMatch(new RegExp(`^mqtt://127\\.0\\.0\\.1:${closed} unreachable: `));
      expect(result.fix).toContain('start the broker');
    });

    it('logs in with credentials written into the URL and never prints them', async () => {
      const { result } = await check({
        GPULSE_MQTT_URL: `mqtt://alice:${PASSWORD}@127.0.0.1:${port}`,
      });
      expect(result).toMatchObject({
        status: 'ok',
        finding: `connected to mqtt://127.0.0.1:${port} as alice (MQTT 5)`,
      });
    });
  },
);
