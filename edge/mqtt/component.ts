import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { TimerHandle } from '../../agent/core/clock.js';
import type { AgentContext, Component } from '../../agent/core/component.js';
import { errorMessage } from '../../agent/core/errors.js';
import type { BuiltMessage, BuiltTelemetry } from '../../exporters/mqtt/payloads.js';
import { nodeFromHostname, streamTopic, type NodeId } from '../../exporters/mqtt/topics.js';
import type { MqttConfig } from '../config.js';
import { redactUrl } from './redact-url.js';
import { LockHeldError } from './instance-lock.js';
import type { MqttLink } from './link.js';
import { EventBatcher } from './events.js';
import { MqttCounters } from './metrics.js';
import { NodeLink } from './node-link.js';
import { closePublisher, openPublisher, type OpenedPublisher } from './open.js';
import { MqttSelfMetrics } from './self-metrics.js';
import { MqttStatus } from './status.js';
import { RetainedSchema, TelemetryBatcher } from './telemetry.js';
import type { SubmitResult } from './outbox.js';
import { every, type Periodic } from './periodic.js';
import type { ConnectionOptions } from './publisher.js';
import type { SpoolStream } from './spool/spool.js';
import { StartRetry } from './start-retry.js';

export { defaultStateDir } from './open.js';

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
  /** What the current start attempt opened. */
  const opened: OpenedPublisher = {};
  let periodic: Periodic[] = [];
  /** Units of a started component (start creates them). */
  let run: Run | undefined;
  let retry: StartRetry | undefined;
  let offEvents: (() => void) | undefined;
  let stopped = false;
  const active = () => !stopped;

  const submit =
    (stream: SpoolStream) =>
    (messages: readonly (BuiltMessage | BuiltTelemetry)[]): Promise<SubmitResult>[] =>
      messages.map(
        (m) =>
          opened.outbox?.submit({
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
    const connection = () => opened.conn;
    const metrics = new MqttSelfMetrics({
      counters,
      clock,
      sink: context.selfMetrics(MQTT),
      state: () => ({ connection: opened.conn, spool: opened.spool }),
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
      seq: () => opened.seq,
      submit: submit('events'),
      onDropped: (count) => {
        counters.countDropped('write_error', count);
        metrics.pushStartFailure();
      },
      active,
    });
    return { context, log, metrics, status, schema, events };
  };

  /** Opens the publisher, wires its units to the connection and starts the timers; throws when it cannot. */
  const open = async (r: Run): Promise<void> => {
    const { context, log, metrics, status, schema } = r;
    const clock = context.clock;
    const {
      dir,
      spool,
      conn: connection,
    } = await openPublisher(opened, {
      config,
      url,
      clientId,
      topics,
      clock,
      env: context.env,
      log,
      will: status.will,
      onSession: (session) => (status.session = session),
      onDrop: (reason, count) => {
        counters.countDropped(reason, count);
        metrics.mark();
      },
      onResult: (stream, result) => {
        counters.countPublished(stream, result);
        metrics.mark();
      },
      random: deps.random,
      connect: deps.connect,
    });
    link.use(connection);
    connection.onConnect(() => {
      status.publishOnline();
      schema.reconnected();
    });
    connection.onState((connected) => {
      opened.outbox?.connectionChanged();
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
      seq: () => opened.seq,
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
          void opened.spool
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
    await closePublisher(opened, farewell ? run?.status.farewell() : undefined);
    link.use(undefined);
  };

  /**
   * A failure to start (state directory not writable, disk full, lock held by another agent,
   * unreadable TLS files) is reported as the component's state and retried with full-jitter
   * backoff between mqtt.reconnectMinDelay and mqtt.reconnectMaxDelay, as collectors are; once it
   * succeeds the spool is replayed like after any reconnect.
   */
  const createRetry = (r: Run): StartRetry =>
    new StartRetry({
      clock: r.context.clock,
      attempt: () => open(r),
      cleanup: () => teardown(false),
      onFailure: (err) => {
        const reason = err instanceof LockHeldError ? 'instance_locked' : 'start_failed';
        r.metrics.startFailed(
          reason,
          `MQTT publisher could not start: ${errorMessage(err)}; retrying with backoff`,
        );
      },
      onStarted: (failures) => {
        if (failures > 0)
          r.log.info({ attempts: failures + 1 }, 'MQTT publisher started after failed attempts');
        r.metrics.started();
        // Events that arrived while the start was retried.
        r.events.flush();
      },
      minMs: config.reconnectMinDelay,
      maxMs: config.reconnectMaxDelay,
      floorMs: MIN_START_RETRY_MS,
      random: deps.random,
    });

  return {
    name: MQTT,
    link,
    async start(context) {
      run = createRun(context, context.log.child({ component: MQTT }));
      stopped = false;
      // Subscribed before the first attempt: events during start retries wait (bounded) in memory.
      offEvents = context.events.onEvent(run.events.add);
      link.bindEvents((e) => context.events.emit(e));
      retry = createRetry(run);
      await retry.start();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const clock = run?.context.clock;
      // A retried start may be opening the spool right now: let it finish, then close what it opened.
      await retry?.stop();
      cancelTimers();
      offEvents?.();
      offEvents = undefined;
      // Events still in their window and the telemetry batch go to the outbox: sent if the broker
      // acknowledges them soon, else spooled by outbox.stop().
      run?.events.flush();
      const last = run?.telemetry?.flush() ?? [];
      if (last.length > 0 && clock && opened.conn?.connected) {
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
