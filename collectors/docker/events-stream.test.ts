import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../test/helpers/log-sink.js';
import {
  EventStream,
  JsonObjectSplitter,
  normalizeEvent,
  type EngineEvent,
} from './events-stream.js';

const FIX = join(import.meta.dirname, 'fixtures', 'docker-api');
const read = (f: string) => readFileSync(join(FIX, f), 'utf8');

function split(text: string, chunk = 7): { values: unknown[]; errors: number } {
  const s = new JsonObjectSplitter();
  const values: unknown[] = [];
  let errors = 0;
  // Small chunks: objects and strings cut anywhere must still come out whole.
  for (let i = 0; i < text.length; i += chunk) {
    const r = s.push(text.slice(i, i + chunk));
    values.push(...r.values);
    errors += r.errors;
  }
  return { values, errors };
}

describe('JsonObjectSplitter and normalizeEvent on the fixtures', () => {
  it('9 pretty-printed objects back to back (moby API reference)', () => {
    const { values, errors } = split(
      read(
        'events__9-objects-pull-create-attach-connect-start-resize-die-disconnect-destroy__api-v1.24-doc-example__moby.jsonstream',
      ),
    );
    expect(errors).toBe(0);
    const events = values.map(normalizeEvent);
    expect(events.map((e) => `${e?.type}/${e?.action}`)).toEqual([
      'image/pull',
      'container/create',
      'container/attach',
      'network/connect',
      'container/start',
      'container/resize',
      'container/die',
      'network/disconnect',
      'container/destroy',
    ]);
    const die = events[6]!;
    expect(die.id).toBe('ede54ee1afda366ab42f824e8a5ffd195155d853ceaec74a927f249ea270c743');
    expect(die.attributes.exitCode).toBe('0');
    expect(die.attributes['com.example.some-label']).toBe('some-label-value');
  });

  it('a single object with both legacy and new fields', () => {
    const e = normalizeEvent(
      JSON.parse(read('events__create-with-label__api-v1.24__docker-java.json')),
    )!;
    expect(e).toEqual({
      type: 'container',
      action: 'create',
      id: 'ede54ee1afda366ab42f824e8a5ffd195155d853ceaec74a927f249ea270c743',
      attributes: {
        'com.example.some-label': 'some-label-value',
        image: 'alpine',
        name: 'my-container',
      },
      timeMs: 1461943101381,
      since: expect.stringMatching(/^1461943101\.3817\d{5}$/) as string,
    });
  });

  it('NDJSON: "health_status: running" is the health_status action', () => {
    const { values } = split(
      read(
        'events__ndjson-compact__container-health_status-network-create__shape-only__otel-contrib.jsonl',
      ),
    );
    expect(values.map(normalizeEvent).map((e) => [e?.type, e?.action])).toEqual([
      ['container', 'health_status'],
      ['network', 'create'],
    ]);
  });

  it('non-JSON lines between objects are skipped', () => {
    const { values, errors } = split(
      read('events__ndjson-with-non-json-garbage-lines__shape-only__otel-contrib.txt'),
    );
    expect(values.map(normalizeEvent).map((e) => [e?.type, e?.action])).toEqual([
      ['volume', 'destroy'],
      ['daemon', 'start'],
    ]);
    expect(errors).toBe(0);
  });

  it('legacy API < 1.22 NDJSON: status/id/from only are container events; CLI text is not JSON', () => {
    const text = read('events__oom-die__legacy-api-ndjson-and-cli-text__github-issue-excerpts.txt')
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n');
    const events = split(text).values.map(normalizeEvent);
    expect(events.map((e) => e?.action)).toEqual([
      'create',
      'attach',
      'start',
      'oom',
      'oom',
      'oom',
    ]);
    expect(events[3]).toMatchObject({
      type: 'container',
      id: '36eb96d6c134895854e77f65ac47955b6ee08eb62bceee37cc605157f1c9482b',
      attributes: { image: '9e0d5e071a2b' },
      timeMs: 1449497871593,
    });
  });

  it('an event captured from dockerd 20.10 here: oom then die with exitCode 137', () => {
    const lines = [
      '{"status":"oom","id":"c24e0e36b8e7478c9bf18b9e868f5c4fe273e3f3cdd4e36bf68faeec1d1a9baf","from":"busybox:test","Type":"container","Action":"oom","Actor":{"ID":"c24e0e36b8e7478c9bf18b9e868f5c4fe273e3f3cdd4e36bf68faeec1d1a9baf","Attributes":{"image":"busybox:test","name":"oomtest"}},"scope":"local","time":1795869738,"timeNano":1795869738811842593}',
      '{"status":"die","id":"c24e0e36b8e7478c9bf18b9e868f5c4fe273e3f3cdd4e36bf68faeec1d1a9baf","from":"busybox:test","Type":"container","Action":"die","Actor":{"ID":"c24e0e36b8e7478c9bf18b9e868f5c4fe273e3f3cdd4e36bf68faeec1d1a9baf","Attributes":{"exitCode":"137","image":"busybox:test","name":"oomtest"}},"scope":"local","time":1795869739,"timeNano":1795869739001215342}',
    ];
    const events = split(`${lines.join('\n')}\n`, 50).values.map(normalizeEvent);
    expect(events.map((e) => [e?.action, e?.attributes.exitCode, e?.attributes.name])).toEqual([
      ['oom', undefined, 'oomtest'],
      ['die', '137', 'oomtest'],
    ]);
  });

  it('an unterminated object is dropped at the size limit, and parsing resumes', () => {
    const s = new JsonObjectSplitter(100);
    expect(s.push(`{"a":"${'x'.repeat(200)}`)).toEqual({ values: [], errors: 1 });
    expect(s.push('{"b":1}\n').values).toEqual([{ b: 1 }]);
  });

  it('braces and quotes inside strings do not confuse it', () => {
    expect(split('{"a":"}{\\"}"}{"b":"\\\\"}', 3).values).toEqual([{ a: '}{"}' }, { b: '\\' }]);
  });
});

/** Lets stream callbacks scheduled with nextTick/setImmediate run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

describe('EventStream', () => {
  function setup() {
    const clock = new FakeClock(0);
    const opened: { since?: string; stream: PassThrough }[] = [];
    const events: EngineEvent[] = [];
    let connects = 0;
    let fail = false;
    const es = new EventStream({
      clock,
      log: silentLogger(),
      random: () => 1,
      backoffBaseMs: 100,
      open: (o) => {
        if (fail) return Promise.reject(new Error('connect ENOENT /x.sock'));
        const stream = new PassThrough();
        opened.push({ since: o.since, stream });
        return Promise.resolve(stream);
      },
      onEvent: (e) => events.push(e),
      onConnect: () => connects++,
    });
    return {
      clock,
      es,
      opened,
      events,
      connects: () => connects,
      setFail: (f: boolean) => (fail = f),
    };
  }
  const ev = (action: string, time: number, nano: number) =>
    `${JSON.stringify({ Type: 'container', Action: action, Actor: { ID: 'abc', Attributes: {} }, time, timeNano: time * 1e9 + nano })}\n`;

  it('reconnects with backoff after the daemon goes away and asks for the missed events', async () => {
    const t = setup();
    t.es.start();
    await t.clock.advance(0);
    expect(t.opened).toHaveLength(1);
    expect(t.opened[0]?.since).toBeUndefined();
    t.opened[0]!.stream.write(ev('start', 100, 500_000_000));
    t.opened[0]!.stream.write(ev('oom', 101, 0));
    await settle();
    expect(t.events.map((e) => e.action)).toEqual(['start', 'oom']);
    // Daemon stops: connection closed, and the socket is gone for a while.
    t.setFail(true);
    t.opened[0]!.stream.end();
    await settle();
    expect(t.es.connected).toBe(false);
    await t.clock.advance(100);
    await t.clock.advance(200);
    expect(t.opened).toHaveLength(1);
    // Back: the next attempt connects and asks for what happened since the last event.
    t.setFail(false);
    await t.clock.advance(30_000);
    expect(t.opened).toHaveLength(2);
    expect(t.opened[1]?.since).toBe('101.000000000');
    expect(t.es.connected).toBe(true);
    expect(t.es.reconnects).toBe(1);
    expect(t.connects()).toBe(2);
    // The replayed last event is not handled twice.
    t.opened[1]!.stream.write(ev('oom', 101, 0) + ev('die', 102, 0));
    await settle();
    expect(t.events.map((e) => e.action)).toEqual(['start', 'oom', 'die']);
    t.es.stop();
    expect(t.clock.pending()).toBe(0);
  });

  it('stop while connecting leaves no stream and no timer', async () => {
    const t = setup();
    t.es.start();
    t.es.stop();
    await t.clock.advance(1000);
    expect(t.opened.length).toBeLessThanOrEqual(1);
    expect(t.clock.pending()).toBe(0);
    expect(t.es.connected).toBe(false);
  });
});
