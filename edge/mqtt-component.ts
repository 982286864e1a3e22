import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { backoffDelay, type TimerHandle } from '../agent/clock.js';
import type { AgentContext, Component } from '../agent/component.js';
import { errorMessage } from '../agent/errors.js';
import type { BuiltMessage, BuiltTelemetry } from '../exporters/mqtt/payloads.js';
import { nodeFromHostname, streamTopic, type NodeId } from '../exporters/mqtt/topics.js';
import type { MqttConfig } from './config.js';
import { redactUrl } from './redact-url.js';
import { InstanceLock, LockHeldError } from './instance-lock.js';
import type { MqttLink } from './mqtt-link.js';
import { EventBatcher } from './mqtt-events.js';
import { MqttCounters } from './mqtt-metrics.js';
import { NodeLink } from './mqtt-node-link.js';
import { MqttSelfMetrics } from './mqtt-self-metrics.js';
import { MqttStatus } from './mqtt-status.js';
import { RetainedSchema, TelemetryBatcher } from './mqtt-telemetry.js';
import { Outbox, type SubmitResult } from './outbox.js';
import { every, type Periodic } from './periodic.js';
import type { ConnectionOptions, MqttConnection } from './publisher.js';
import { loadMqttSecrets } from './secrets.js';
import { SequenceStore } from './sequence.js';
import { Spool, type SpoolStream } from './spool/spool.js';

/** Name of the component: config key, log field and `collector` label of its self-metrics. */
export const MQTT = 'mqtt';

/** The MQTT publisher as an agent component, with the link other components use. */
export interface MqttComponent extends Component {
  readonly link: MqttLink;
}

/** Injected I/O for tests. */
export interface MqttComponentDeps {
  readonly connect?: ConnectionOptions['connect'];
  readonly random?: () => number;
  readonly hostname?: () => string;
}

/** Shortest wait before another start attempt (full jitter may draw 0). */
const MIN_START_RETRY_MS = 250;

/** Default state directory: systemd's $STATE_DIRECTORY when set, else /var/lib/gpulse. */
export function defaultStateDir(env: NodeJS.ProcessEnv): string {
  const systemd = env.STATE_DIRECTORY?.split(':')[0];
  return join(systemd && systemd.length > 0 ? systemd : '/var/lib/gpulse', 'mqtt');
}

/** Creates the MQTT component for `gpulse run`/`simulate`; it does nothing until started. */
export function createMqttComponent(
  config: MqttConfig,
  deps: MqttComponentDeps = {},
): MqttComponent {
  const url = config.url;
  if (!url) throw new Error('mqtt.url is not set');
  const id: NodeId = {
    site: config.site,
    node: config.node ?? nodeFromHostname((deps.hostname ?? hostname)()),
  };
  const clientId = config.clientId ?? `gpulse-${id.site}-${id.node}`;
  const counters = new MqttCounters();
  const link = new NodeLink(id);
  const topics: Record<SpoolStream, string> = {
    telemetry: streamTopic(id, 'telemetry'),
    events: streamTopic(id, 'events'),
  };
  /** What one start attempt opened; released by teardown. */
  let lock: InstanceLock | undefined;
  let spool: Spool | undefined;
  let seq: SequenceStore | undefined;
  let conn: MqttConnection | undefined;
  let outbox: Outbox | undefined;
  let periodic: Periodic[] = [];
  /** Units of a started component (start creates them). */
  let run: Run | undefined;
  let startTimer: TimerHandle | undefined;
  let startFailures = 0;
  /** The start attempt in progress (stop waits for it, so nothing it opens outlives the stop). */
  let starting: Promise<void> | undefined;
  let offEvents: (() => void) | undefined;
  let stopped = false;
  const active = () => !stopped;

  const submit =
    (stream: SpoolStream) =>
    (messages: readonly (BuiltMessage | BuiltTelemetry)[]): Promise<SubmitResult>[] =>
      messages.map(
        (m) =>
          outbox?.submit({
            stream,
            seq: m.seq,
            ts: m.ts,
            body: m.body,
            contentType: m.contentType,
            ...('schema' in m ? { schemaId: m.schema.id, compact: m.compact } : {}),
          }) ?? Promise.resolve('dropped'),
      );

  /** Creates the units of a started component, bound to the agent's context. */
  const createRun = (context: AgentContext, log: Logger): Run => {
    const { clock } = context;
    const connection = () => conn;
    const metrics = new MqttSelfMetrics({
      name: MQTT,
      counters,
      clock,
      sink: context.store,
      state: () => ({ connection: conn, spool }),
      active,
    });
    const status = new MqttStatus({
      topic: streamTopic(id, 'status'),
      clock,
      version: context.version,
      telemetryIntervalMs: config.telemetry.interval,
      telemetryFlushMs: config.telemetry.flush,
      connection,
      onSent: () => counters.countPublished('status', 'sent'),
      onSettled: metrics.mark,
      log,
    });
    const schema = new RetainedSchema({
      topic: streamTopic(id, 'schema'),
      clock,
      compressAbove: config.telemetry.compressAbove,
      connection,
      onSent: () => counters.countPublished('schema', 'sent'),
      log,
    });
    const events = new EventBatcher({
      clock,
      windowMs: config.eventsWindow,
      compressAbove: config.telemetry.compressAbove,
      seq: () => seq,
      submit: submit('events'),
      onDropped: (count) => {
        counters.countDropped('write_error', count);
        metrics.pushStartFailure();
      },
      active,
    });
    return { context, log, metrics, status, schema, events };
  };

  /** Opens the state directory, spool and connection and starts the timers; throws when it cannot. */
  const open = async (r: Run): Promise<void> => {
    const { context, log, metrics, status, schema } = r;
    const clock = context.clock;
    const dir = config.spool.dir ?? defaultStateDir(context.env);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new Error(
        `cannot create the MQTT state directory ${dir}: ${errorMessage(err)}; set mqtt.spool.dir (GPULSE_MQTT_SPOOL_DIR, --mqtt-spool-dir) to a writable directory`,
        { cause: err },
      );
    }
    lock = InstanceLock.acquire(join(dir, 'instance.lock'));
    const secrets = loadMqttSecrets(config);
    if ((config.tls.ca || config.tls.cert) && !/^(mqtts|ssl|tls):/i.test(url)) {
      log.warn(
        { broker: redactUrl(url) },
        'mqtt.tls files are set but the URL is not mqtts://: the connection is not encrypted',
      );
    }
    spool = await Spool.open({
      dir,
      maxBytes: config.spool.maxBytes,
      maxAgeMs: config.spool.maxAge,
      clock,
      log,
      onDrop: (reason, count) => {
        counters.countDropped(reason, count);
        metrics.mark();
      },
    });
    const sequence = SequenceStore.open({ dir, floor: spool.maxSeq() + 1, log });
    seq = sequence;
    // Loaded here: an agent without mqtt.url never loads the mqtt package.
    const { MqttConnection } = await import('./publisher.js');
    const connection = new MqttConnection({
      url,
      protocol: config.protocol,
      clientId,
      username: config.username,
      password: secrets.password,
      tls: secrets.tls,
      keepaliveMs: config.keepaliveInterval,
      reconnectMinMs: config.reconnectMinDelay,
      reconnectMaxMs: config.reconnectMaxDelay,
      authRetryMs: config.authRetryDelay,
      will: status.will,
      nextSession: () => {
        status.session = sequence.newSession();
        return status.session;
      },
      clock,
      log,
      random: deps.random,
      connect: deps.connect,
    });
    conn = connection;
    link.use(connection);
    outbox = new Outbox({
      link: connection,
      spool,
      topics,
      telemetryQos: config.qos,
      compressAbove: config.telemetry.compressAbove,
      replayRate: config.spool.replayRate,
      replayInFlight: config.replayInFlight,
      publishTimeoutMs: config.publishTimeout,
      clock,
      log,
      onResult: (stream, result) => {
        counters.countPublished(stream, result);
        metrics.mark();
      },
    });
    connection.onConnect(() => {
      status.publishOnline();
      schema.reconnected();
    });
    connection.onState((connected) => {
      outbox?.connectionChanged();
      metrics.push();
      link.notify(connected, log);
    });
    link.subscribeAll(log);
    connection.start();
    log.info(
      {
        broker: redactUrl(url),
        site: id.site,
        node: id.node,
        clientId,
        dir,
        spooled: spool.stats().pending,
      },
      `publishing to ${streamTopic(id, 'telemetry').replace(/\/telemetry$/, '/')}{telemetry,events,status}`,
    );
    const telemetry = new TelemetryBatcher({
      clock,
      store: context.store,
      version: context.version,
      intervalMs: config.telemetry.interval,
      flushMs: config.telemetry.flush,
      compressAbove: config.telemetry.compressAbove,
      schema,
      seq: () => seq,
      submit: submit('telemetry'),
      onFlushed: metrics.mark,
      active,
      log,
    });
    r.telemetry = telemetry;
    const options = {
      active,
      onError: (err: unknown) => log.error({ err: errorMessage(err) }, 'MQTT periodic task failed'),
    };
    periodic = [
      every(clock, config.telemetry.interval, telemetry.tick, options),
      every(clock, config.statusInterval, status.publishOnline, options),
      // Age limits apply while offline too, not only when a replay reads the spool.
      every(
        clock,
        Math.min(60_000, Math.max(1000, config.spool.maxAge / 10)),
        () =>
          void spool
            ?.expire()
            .then(metrics.mark, (err: unknown) =>
              log.warn({ err: errorMessage(err) }, 'spool age check failed'),
            ),
        options,
      ),
    ];
  };

  /** Stops the periodic tasks and the pending self-metrics push. */
  const cancelTimers = () => {
    for (const p of periodic) p.cancel();
    periodic = [];
    run?.metrics.cancel();
  };

  /** Releases whatever an attempt opened (connection, spool, lock) and stops its timers. */
  const teardown = async (farewell: boolean): Promise<void> => {
    cancelTimers();
    await outbox?.stop();
    await conn?.stop(farewell ? run?.status.farewell() : undefined);
    await spool?.close();
    seq?.close();
    lock?.release();
    outbox = undefined;
    conn = undefined;
    link.use(undefined);
    seq = undefined;
    spool = undefined;
    lock = undefined;
  };

  /**
   * One start attempt. A failure (state directory not writable, disk full, lock held by another
   * agent, unreadable TLS files) is reported as the component's state and retried with full-jitter
   * backoff between mqtt.reconnectMinDelay and mqtt.reconnectMaxDelay, as collectors are; once it
   * succeeds the spool is replayed like after any reconnect.
   */
  const attemptStart = async (): Promise<void> => {
    startTimer = undefined;
    const r = run;
    if (stopped || !r) return;
    const { context, log } = r;
    try {
      await open(r);
    } catch (err) {
      // Teardown failures must not hide the start error or stop the retries.
      await teardown(false).catch(() => undefined);
      if (stopped) return;
      const reason = err instanceof LockHeldError ? 'instance_locked' : 'start_failed';
      context.store.fail(
        MQTT,
        reason,
        `MQTT publisher could not start: ${errorMessage(err)}; retrying with backoff`,
      );
      r.metrics.pushStartFailure();
      const delay = Math.max(
        MIN_START_RETRY_MS,
        backoffDelay(
          startFailures++,
          config.reconnectMinDelay,
          config.reconnectMaxDelay,
          deps.random,
        ),
      );
      startTimer = context.clock.setTimeout(() => {
        starting = attemptStart();
      }, delay);
      startTimer.unref?.();
      return;
    }
    if (startFailures > 0)
      log.info({ attempts: startFailures + 1 }, 'MQTT publisher started after failed attempts');
    startFailures = 0;
    // The publisher's series now come with its output; health samples would duplicate them.
    context.store.health(MQTT, []);
    r.metrics.push();
    // Events that arrived while the start was retried.
    r.events.flush();
  };

  return {
    name: MQTT,
    link,
    async start(context) {
      run = createRun(context, context.log.child({ component: MQTT }));
      stopped = false;
      // Subscribed before the first attempt: events during start retries wait (bounded) in memory.
      offEvents = context.events.onEvent(run.events.add);
      link.bindEvents((e) => context.events.emit(e));
      starting = attemptStart();
      await starting;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const clock = run?.context.clock;
      if (startTimer) clock?.clearTimeout(startTimer);
      startTimer = undefined;
      // A retried start may be opening the spool right now: let it finish, then close what it opened.
      await starting;
      cancelTimers();
      offEvents?.();
      offEvents = undefined;
      // Events still in their window and the telemetry batch go to the outbox: sent if the broker
      // acknowledges them soon, else spooled by outbox.stop().
      run?.events.flush();
      const last = run?.telemetry?.flush() ?? [];
      if (last.length > 0 && clock && conn?.connected) {
        let timer: TimerHandle | undefined;
        await Promise.race([
          Promise.all(last),
          new Promise<void>((resolve) => {
            timer = clock.setTimeout(resolve, Math.min(2000, config.publishTimeout));
            timer.unref?.();
          }),
        ]);
        if (timer) clock.clearTimeout(timer);
      }
      await teardown(true);
    },
  };
}

/** The units of a started component. */
interface Run {
  readonly context: AgentContext;
  readonly log: Logger;
  readonly metrics: MqttSelfMetrics;
  readonly status: MqttStatus;
  readonly schema: RetainedSchema;
  readonly events: EventBatcher;
  /** Set once a start attempt opened the publisher. */
  telemetry?: TelemetryBatcher;
}
