import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IClientOptions } from 'mqtt';
import type { MqttConfig } from '../../../edge/config.js';
import { redactUrl } from '../../../edge/mqtt/redact-url.js';
import type { Check, CheckOutcome } from '../types.js';

/** How a connection attempt ended. */
type Attempt =
  | { readonly ok: true; readonly protocol: 4 | 5 }
  | { readonly ok: false; readonly code: string | number; readonly message: string };

// MQTT 3.1.1 CONNACK return codes and MQTT 5 reason codes that mean "who you are" rather than
// "where you went" (OASIS MQTT 3.1.1 §3.2.2.3, MQTT 5.0 §3.2.2.2).
const BAD_CREDENTIALS = new Set<number>([4, 0x86]);
const NOT_AUTHORIZED = new Set<number>([5, 0x87]);
const BAD_PROTOCOL = new Set<number>([1, 0x84]);

async function attempt(url: string, options: IClientOptions, timeoutMs: number): Promise<Attempt> {
  // Loaded here only: most hosts never configure MQTT, and mqtt.js costs start-up time.
  const { connect } = await import('mqtt');
  return new Promise((resolve) => {
    const client = connect(url, { ...options, reconnectPeriod: 0, connectTimeout: timeoutMs });
    let done = false;
    const finish = (a: Attempt) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client.end(true);
      resolve(a);
    };
    const timer = setTimeout(
      () => finish({ ok: false, code: 'ETIMEDOUT', message: `no CONNACK within ${timeoutMs}ms` }),
      timeoutMs + 500,
    );
    client.on('connect', () =>
      finish({ ok: true, protocol: options.protocolVersion === 5 ? 5 : 4 }),
    );
    client.on('error', (err: Error & { code?: string | number }) =>
      finish({ ok: false, code: err.code ?? 'EUNKNOWN', message: err.message }),
    );
    client.on('close', () =>
      finish({
        ok: false,
        code: 'ECLOSED',
        message: 'the broker closed the connection before CONNACK',
      }),
    );
  });
}

async function clientOptions(m: MqttConfig): Promise<IClientOptions> {
  const password =
    m.password ??
    (m.passwordFile ? (await readFile(m.passwordFile, 'utf8')).replace(/\r?\n$/, '') : undefined);
  const tls = {
    ...(m.tls.ca ? { ca: await readFile(m.tls.ca) } : {}),
    ...(m.tls.cert ? { cert: await readFile(m.tls.cert) } : {}),
    ...(m.tls.key ? { key: await readFile(m.tls.key) } : {}),
  };
  return {
    clientId: `gpulse-doctor-${randomBytes(4).toString('hex')}`,
    clean: true,
    ...(m.username ? { username: m.username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...tls,
  };
}

/** MQTT broker reachable and accepting the configured credentials. */
export const mqttCheck: Check = {
  id: 'mqtt',
  title: 'MQTT broker',
  async run(ctx): Promise<CheckOutcome> {
    const m = ctx.config.mqtt;
    if (!m.url)
      return { status: 'skip', required: false, finding: 'MQTT not configured (mqtt.url unset)' };
    const url = m.url;
    const shown = redactUrl(url);
    const who = m.username ? ` as ${m.username}` : ' without credentials';
    const details = { url: shown, ...(m.username ? { username: m.username } : {}) };
    let options: IClientOptions;
    try {
      options = await clientOptions(m);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return {
        status: 'fail',
        required: true,
        finding: `cannot read a credential or TLS file: ${e.code ?? e.message}`,
        problem: `${e.message}: the publisher cannot connect`,
        fix: 'check mqtt.passwordFile (GPULSE_MQTT_PASSWORD_FILE) and mqtt.tls.ca/cert/key: the files must exist and be readable by this user',
        details,
      };
    }
    const versions: (4 | 5)[] = m.protocol === '3.1.1' ? [4] : m.protocol === '5' ? [5] : [5, 4];
    let last: Attempt | undefined;
    for (const protocolVersion of versions) {
      last = await attempt(url, { ...options, protocolVersion }, ctx.timeoutMs);
      if (last.ok || !(typeof last.code === 'number' && BAD_PROTOCOL.has(last.code))) break;
    }
    if (!last) throw new Error('no MQTT protocol version to try');
    if (last.ok)
      return {
        status: 'ok',
        required: true,
        finding: `connected to ${shown}${who} (MQTT ${last.protocol === 5 ? '5' : '3.1.1'})`,
        details: { ...details, protocol: last.protocol === 5 ? '5' : '3.1.1' },
      };
    const code = last.code;
    const base = {
      status: 'fail' as const,
      required: true,
      details: { ...details, code: String(code) },
    };
    const passwordFix = m.username
      ? 'set the right password in GPULSE_MQTT_PASSWORD or mqtt.passwordFile (check it with `mosquitto_sub -h HOST -p PORT -u USER -P PASSWORD -t test -C 1 -W 5`), or add the user on the broker (`mosquitto_passwd /etc/mosquitto/passwd USER`)'
      : 'the broker requires a login: set mqtt.username (GPULSE_MQTT_USERNAME) and GPULSE_MQTT_PASSWORD or mqtt.passwordFile';
    if (typeof code === 'number' && BAD_CREDENTIALS.has(code))
      return {
        ...base,
        finding: `${shown} refused the credentials${who} (bad username or password)`,
        problem:
          'the broker is reachable but does not accept this username/password: nothing is published',
        fix: passwordFix,
      };
    // Mosquitto answers "not authorized" for a wrong password too, so both causes are named.
    if (typeof code === 'number' && NOT_AUTHORIZED.has(code))
      return {
        ...base,
        finding: `${shown} refused the login${who} (not authorized)`,
        problem:
          'the broker is reachable but refuses this client: a wrong password or unknown user, or an ACL that denies it',
        fix: `${passwordFix}; if the login is right, allow the user in the broker's ACL (mosquitto \`acl_file\`: \`user NAME\` then \`topic readwrite gpulse/v1/#\`)`,
      };
    if (typeof code === 'number')
      return {
        ...base,
        finding: `${shown} refused the connection (reason code ${code}: ${last.message})`,
        problem: 'the broker answers but refuses this client',
        fix:
          code === 1 || code === 0x84
            ? 'set mqtt.protocol to the version the broker speaks (3.1.1 or 5)'
            : 'check the broker log for why it refused the client',
      };
    const unreachable: Record<string, string> = {
      ECONNREFUSED:
        'nothing listens there: start the broker (`sudo systemctl start mosquitto`) or fix the host/port in mqtt.url (GPULSE_MQTT_URL)',
      ENOTFOUND:
        'the host name does not resolve: fix mqtt.url (GPULSE_MQTT_URL) or the DNS/hosts entry',
      EHOSTUNREACH: 'no route to the broker: check the network, VPN or firewall',
      ENETUNREACH: 'no route to the broker: check the network, VPN or firewall',
      ETIMEDOUT:
        'no answer: a firewall drops the packets, or the port speaks TLS and the URL says mqtt:// (use mqtts://)',
      ECLOSED:
        'the broker hung up: the port may expect TLS (use mqtts://), or the broker limits connections',
    };
    const tls = /certificate|self[- ]signed|SSL|TLS|CERT_/i.test(`${code} ${last.message}`);
    return {
      ...base,
      finding: `${shown} unreachable: ${last.message}`,
      problem: tls
        ? 'the TLS handshake failed: the broker certificate is not trusted by this host'
        : 'the broker cannot be reached, so telemetry goes to the spool until it can',
      fix: tls
        ? 'set mqtt.tls.ca (GPULSE_MQTT_CA) to the CA bundle that signed the broker certificate, and use the host name the certificate names'
        : (unreachable[String(code)] ??
          `check that the broker runs and that mqtt.url (GPULSE_MQTT_URL) points at it`),
    };
  },
};
