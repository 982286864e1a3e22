import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { backoffDelay, type TimerHandle } from '../agent/clock.js';
import type { AgentContext, Component } from '../agent/component.js';
import { errorMessage } from '../agent/errors.js';
import type { AgentEvent, NewEvent } from '../agent/events.js';
import { snapshotSamples } from '../agent/self-metrics.js';
import {
  buildEvents,
  buildSchema,
  buildTelemetry,
  CONTENT_TYPE_JSON,
  seriesGroups,
  statusJson,
  telemetryFits,
  type BuiltMessage,
  type BuiltTelemetry,
  type TelemetrySample,
  type TelemetrySchema,
} from '../exporters/mqtt/payloads.js';
import {
  nodeFromHostname,
  nodeTopic,
  streamTopic,
  topicMatches,
  type NodeId,
} from '../exporters/mqtt/topics.js';
import type { MqttConfig } from './config.js';
import { redactUrl } from './redact-url.js';
import { InstanceLock, LockHeldError } from './instance-lock.js';
import type { MqttLink } from './mqtt-link.js';
import { MqttCounters } from './mqtt-metrics.js';
import { Outbox, type SubmitResult } from './outbox.js';
import { NotConnectedError, type MessageHandler, type PublishOptions } from './delivery.js';
import type { ConnectionOptions, MqttConnection, WillMessage } from './publisher.js';
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

/** Most events in one message before it is sent without waiting for the window. */
const MAX_EVENTS_PER_MESSAGE = 100;
/** Self-metrics are pushed to the state store at most this often. */
const METRICS_EVERY_MS = 1000;
/** Events kept in memory while the component cannot start (then counted as dropped, oldest first). */
const MAX_EVENTS_BEFORE_START = 1000;
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
  const linkSubscriptions: { filter: string; handler: MessageHandler; off?: () => void }[] = [];
  const connectionListeners = new Set<(connected: boolean) => void>();
  const earlyEvents: NewEvent[] = [];

  let ctx: AgentContext | undefined;
  let log: Logger | undefined;
  let lock: InstanceLock | undefined;
  let spool: Spool | undefined;
  let seq: SequenceStore | undefined;
  let conn: MqttConnection | undefined;
  let outbox: Outbox | undefined;
  let telemetryTimer: TimerHandle | undefined;
  let statusTimer: TimerHandle | undefined;
  let eventsTimer: TimerHandle | undefined;
  let metricsTimer: TimerHandle | undefined;
  let expireTimer: TimerHandle | undefined;
  let startTimer: TimerHandle | undefined;
  let startFailures = 0;
  /** The start attempt in progress (stop waits for it, so nothing it opens outlives the stop). */
  let starting: Promise<void> | undefined;
  let offEvents: (() => void) | undefined;
  let pendingEvents: AgentEvent[] = [];
  /** Samples taken since the last telemetry message. */
  let batch: TelemetrySample[] = [];
  /** Schemas (one per part) of the latest telemetry, and whether the retained copy is current. */
  let schemas: readonly TelemetrySchema[] = [];
  let schemaRetained = true;
  let stopped = false;
  const unknownCommands = new Set<string>();

  const statusTopic = streamTopic(id, 'status');
  const schemaTopic = streamTopic(id, 'schema');
  const topics: Record<SpoolStream, string> = {
    telemetry: streamTopic(id, 'telemetry'),
    events: streamTopic(id, 'events'),
  };

  const link: MqttLink = {
    site: id.site,
    node: id.node,
    get connected() {
      return conn?.connected ?? false;
    },
    subscribe(topicSuffix, handler) {
      const entry: (typeof linkSubscriptions)[number] = {
        filter: nodeTopic(id, topicSuffix),
        handler,
      };
      linkSubscriptions.push(entry);
      if (conn) entry.off = conn.subscribe(entry.filter, handler);
      return () => {
        entry.off?.();
        const i = linkSubscriptions.indexOf(entry);
        if (i >= 0) linkSubscriptions.splice(i, 1);
      };
    },
    publishEvent(event) {
      if (ctx) ctx.events.emit(event);
      else earlyEvents.push(event);
    },
    publish(topicSuffix, payload, options: Partial<PublishOptions> = {}) {
      if (!conn) return Promise.reject(new NotConnectedError());
      return conn.publish(nodeTopic(id, topicSuffix), payload, {
        qos: options.qos ?? 1,
        retain: options.retain ?? false,
        contentType: options.contentType,
      });
    },
    onConnection(listener) {
      connectionListeners.add(listener);
      return () => connectionListeners.delete(listener);
    },
  };

  const markMetrics = () => {
    if (metricsTimer || stopped || !ctx) return;
    metricsTimer = ctx.clock.setTimeout(() => {
      metricsTimer = undefined;
      pushMetrics();
    }, METRICS_EVERY_MS);
    metricsTimer.unref?.();
  };

  const pushMetrics = () => {
    if (!ctx) return;
    counters.reconnects = conn?.reconnects ?? 0;
    counters.connected = conn?.connected ?? false;
    ctx.store.ok(MQTT, { samples: counters.samples(spool?.stats(), ctx.clock.now()) });
  };

  /** While the start is retried: the publisher's series (connected 0, drops) as health samples. */
  const pushFailedMetrics = () => {
    if (!ctx || spool) return;
    counters.connected = false;
    ctx.store.health(MQTT, counters.samples(undefined, ctx.clock.now()));
  };

  const status = (state: 'online' | 'offline', session: number, reason?: 'will' | 'shutdown') =>
    statusJson({
      state,
      ts: ctx?.clock.now() ?? Date.now(),
      session,
      ...(state === 'online'
        ? {
            version: ctx?.version,
            telemetry_interval_seconds: config.telemetry.interval / 1000,
            telemetry_flush_seconds: config.telemetry.flush / 1000,
          }
        : { reason }),
    });

  let session = 0;
  const publishOnline = () => {
    if (!conn?.connected) return;
    conn
      .publish(statusTopic, status('online', session), {
        qos: 1,
        retain: true,
        contentType: CONTENT_TYPE_JSON,
      })
      .then(
        () => counters.countPublished('status', 'sent'),
        (err: unknown) => {
          if (!(err instanceof NotConnectedError))
            log?.debug({ err: errorMessage(err) }, 'status not published');
        },
      )
      .finally(markMetrics);
  };

  /** Retains the current schemas on `<node>/schema` for receivers that missed the inline copy. */
  const publishSchema = () => {
    if (!conn?.connected || schemaRetained || schemas.length === 0) return;
    schemaRetained = true;
    const current = schemas;
    const { body, contentType } = buildSchema(
      current,
      ctx?.clock.now() ?? Date.now(),
      config.telemetry.compressAbove,
    );
    conn.publish(schemaTopic, body, { qos: 1, retain: true, contentType }).then(
      () => counters.countPublished('schema', 'sent'),
      (err: unknown) => {
        // Published again after the next connect (or with the next change).
        if (schemas === current) schemaRetained = false;
        if (!(err instanceof NotConnectedError))
          log?.debug({ err: errorMessage(err) }, 'schema not published');
      },
    );
  };

  const submit = (
    messages: readonly (BuiltMessage | BuiltTelemetry)[],
    stream: SpoolStream,
  ): Promise<SubmitResult>[] =>
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

  const buildOptions = {
    compressAbove: config.telemetry.compressAbove,
    onOversize: (g: { labels: Readonly<Record<string, string>> }, bytes: number) =>
      log?.warn(
        { labels: g.labels, bytes },
        'one label set alone exceeds the MQTT message limit; left out of telemetry',
      ),
  };

  /** The series of the current schemas: the next batch keeps them when it can. */
  const base = () => schemas.flatMap((x) => x.series);

  /** Sends the samples taken so far as one message (or parts); nothing when there are none. */
  const flushTelemetry = (): Promise<SubmitResult>[] => {
    if (batch.length === 0 || !seq) return [];
    const samples = batch;
    batch = [];
    const s = seq;
    const messages = buildTelemetry(samples, () => s.next(), { ...buildOptions, base: base() });
    const ids = messages.map((m) => m.schema.id).join(',');
    if (ids !== schemas.map((x) => x.id).join(',')) {
      schemas = messages.map((m) => m.schema);
      schemaRetained = false;
      publishSchema();
    }
    const results = submit(messages, 'telemetry');
    markMetrics();
    return results;
  };

  /** Takes one sample of every series into the batch; sends the batch first when it would not fit. */
  const sampleTelemetry = () => {
    if (!ctx || !seq || stopped) return;
    const snapshot = ctx.store.current();
    // No new snapshot since the last sample: nothing new to carry.
    if (batch.length > 0 && batch[batch.length - 1]?.ts === snapshot.takenAt) return;
    const sample = {
      ts: snapshot.takenAt,
      series: seriesGroups(snapshotSamples(snapshot, ctx.version)),
    };
    if (batch.length > 0 && !telemetryFits([...batch, sample], { ...buildOptions, base: base() }))
      void Promise.all(flushTelemetry());
    batch.push(sample);
  };

  const flushEvents = () => {
    if (eventsTimer && ctx) ctx.clock.clearTimeout(eventsTimer);
    eventsTimer = undefined;
    if (pendingEvents.length === 0) return;
    if (!seq) {
      // Not started (the start is being retried): keep the newest events for when it succeeds.
      const over = pendingEvents.length - MAX_EVENTS_BEFORE_START;
      if (over > 0) {
        pendingEvents.splice(0, over);
        counters.countDropped('write_error', over);
        pushFailedMetrics();
      }
      return;
    }
    const batch = pendingEvents;
    pendingEvents = [];
    const s = seq;
    void Promise.all(
      submit(
        buildEvents(batch, () => s.next(), { compressAbove: config.telemetry.compressAbove }),
        'events',
      ),
    );
  };

  const onEvent = (event: AgentEvent) => {
    if (stopped || !ctx) return;
    pendingEvents.push(event);
    if (pendingEvents.length >= (seq ? MAX_EVENTS_PER_MESSAGE : MAX_EVENTS_BEFORE_START + 1)) {
      flushEvents();
      return;
    }
    if (!eventsTimer) {
      eventsTimer = ctx.clock.setTimeout(flushEvents, config.eventsWindow);
      eventsTimer.unref?.();
    }
  };

  const every = (ms: number, fn: () => void, set: (t: TimerHandle) => void) => {
    const tick = () => {
      if (stopped || !ctx) return;
      try {
        fn();
      } catch (err) {
        log?.error({ err: errorMessage(err) }, 'MQTT periodic task failed');
      }
      const t = ctx.clock.setTimeout(tick, ms);
      t.unref?.();
      set(t);
    };
    const t = ctx?.clock.setTimeout(tick, ms);
    t?.unref?.();
    if (t) set(t);
  };

  /** Opens the state directory, spool and connection and starts the timers; throws when it cannot. */
  const open = async (context: AgentContext, log: Logger): Promise<void> => {
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
        markMetrics();
      },
    });
    const sequence = SequenceStore.open({ dir, floor: spool.maxSeq() + 1, log });
    seq = sequence;
    const will = (n: number): WillMessage => ({
      topic: statusTopic,
      payload: Buffer.from(status('offline', n, 'will')),
      qos: 1,
      retain: true,
    });
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
      will,
      nextSession: () => {
        session = sequence.newSession();
        return session;
      },
      clock,
      log,
      random: deps.random,
      connect: deps.connect,
    });
    conn = connection;
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
        markMetrics();
      },
    });
    connection.onConnect(() => {
      publishOnline();
      // A new connection: the retained schema may predate what this run sends.
      schemaRetained = false;
      publishSchema();
    });
    connection.onState((connected) => {
      outbox?.connectionChanged();
      pushMetrics();
      for (const listener of connectionListeners) {
        try {
          listener(connected);
        } catch (err) {
          log?.error({ err: errorMessage(err) }, 'MQTT connection listener failed');
        }
      }
    });
    // Commands arrive on cmd/#; components claim theirs through link.subscribe().
    connection.subscribe(nodeTopic(id, 'cmd/#'), (message) => {
      const claimed = linkSubscriptions.some((s) => topicMatches(s.filter, message.topic));
      if (claimed || unknownCommands.has(message.topic)) return;
      unknownCommands.add(message.topic);
      log?.warn({ topic: message.topic }, 'command for which no component listens; ignored');
    });
    for (const s of linkSubscriptions) s.off = connection.subscribe(s.filter, s.handler);
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
    // One timer for both: a separate flush timer drifts against the sample timer and would cut
    // batches at 5 or 6 samples. Half an interval of slack absorbs that drift.
    let flushedAt = clock.now();
    every(
      config.telemetry.interval,
      () => {
        sampleTelemetry();
        if (clock.now() - flushedAt < config.telemetry.flush - config.telemetry.interval / 2)
          return;
        flushedAt = clock.now();
        void Promise.all(flushTelemetry());
      },
      (t) => (telemetryTimer = t),
    );
    every(config.statusInterval, publishOnline, (t) => (statusTimer = t));
    // Age limits apply while offline too, not only when a replay reads the spool.
    every(
      Math.min(60_000, Math.max(1000, config.spool.maxAge / 10)),
      () =>
        void spool
          ?.expire()
          .then(markMetrics, (err: unknown) =>
            log?.warn({ err: errorMessage(err) }, 'spool age check failed'),
          ),
      (t) => (expireTimer = t),
    );
  };

  /** Releases whatever an attempt opened (connection, spool, lock) and stops its timers. */
  const teardown = async (farewell: boolean): Promise<void> => {
    const clock = ctx?.clock;
    for (const t of [telemetryTimer, statusTimer, metricsTimer, expireTimer])
      if (t) clock?.clearTimeout(t);
    telemetryTimer = statusTimer = metricsTimer = expireTimer = undefined;
    await outbox?.stop();
    await conn?.stop(
      farewell
        ? {
            topic: statusTopic,
            payload: Buffer.from(status('offline', session, 'shutdown')),
            qos: 1,
            retain: true,
          }
        : undefined,
    );
    await spool?.close();
    seq?.close();
    lock?.release();
    outbox = undefined;
    conn = undefined;
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
    const context = ctx;
    if (stopped || !context || !log) return;
    try {
      await open(context, log);
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
      pushFailedMetrics();
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
    pushMetrics();
    // Events that arrived while the start was retried.
    flushEvents();
  };

  return {
    name: MQTT,
    link,
    async start(context) {
      ctx = context;
      log = context.log.child({ component: MQTT });
      stopped = false;
      // Subscribed before the first attempt: events during start retries wait (bounded) in memory.
      offEvents = context.events.onEvent(onEvent);
      for (const e of earlyEvents.splice(0)) context.events.emit(e);
      starting = attemptStart();
      await starting;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const clock = ctx?.clock;
      if (startTimer) clock?.clearTimeout(startTimer);
      startTimer = undefined;
      // A retried start may be opening the spool right now: let it finish, then close what it opened.
      await starting;
      for (const t of [telemetryTimer, statusTimer, metricsTimer, expireTimer])
        if (t) clock?.clearTimeout(t);
      offEvents?.();
      offEvents = undefined;
      // Events still in their window and the telemetry batch go to the outbox: sent if the broker
      // acknowledges them soon, else spooled by outbox.stop().
      flushEvents();
      const last = flushTelemetry();
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
