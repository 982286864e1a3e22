import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildAgent, type Agent } from '../../agent/build-agent.js';
import { loadConfig } from '../../agent/config.js';
import { silentLogger } from '../../test/helpers/log-sink.js';
import { createHarness, type Harness } from '../../test/helpers/models/harness.js';
import { writeModel } from '../../test/helpers/models/model-gen.js';
import type { ModelUpdateHandler } from './command.js';
import { ModelUpdaterComponent, type OnCommitted } from './component.js';

/** The running updater's command handler, as the composition root hands it to the MQTT wiring. */
let handleModelUpdateCommand: ModelUpdateHandler;

/** A model updater whose command handler the tests below call. */
function updaterFor(...args: ConstructorParameters<typeof ModelUpdaterComponent>) {
  const updater = new ModelUpdaterComponent(...args);
  handleModelUpdateCommand = (payload) => updater.handleModelUpdateCommand(payload);
  return updater;
}

/** An agent configuration with the model `detector` from the harness store, checked only on command. */
function detectorConfig(h: Harness, healthLines: string[] = []) {
  const text = [
    'listen: 127.0.0.1:0',
    'models:',
    '  - name: detector',
    `    source: ${h.server.url}detector/`,
    `    dir: ${h.root}`,
    `    trust: ${h.pubPath}`,
    '    schedule: "off"',
    '    onStart: "off"',
    '    health:',
    '      trialWindow: 0s',
    ...healthLines,
  ].join('\n');
  return loadConfig({ file: { name: 'gpulse.yaml', text } }).config;
}

describe('model updater component in the agent', () => {
  let h: Harness;
  let agent: Agent;
  /** The agent's /metrics body now. */
  const scrape = async () => (await agent.app.inject({ method: 'GET', url: '/metrics' })).body;

  beforeEach(async () => {
    h = await createHarness();
    await writeModel(join(h.tmp, 'm1'), randomBytes(2 * 1024 * 1024));
    await h.publish(join(h.tmp, 'm1'), '1.0.0', 1);
    const config = detectorConfig(h, [
      '      command: [sh, -c, "test -f \\"$GPULSE_MODEL_DIR/weights.bin\\""]',
    ]);
    agent = buildAgent(config, {
      log: silentLogger(),
      version: 'test',
      collectors: [],
      components: [updaterFor(config.models)],
    });
    await agent.start();
  });

  afterEach(async () => {
    await agent.stop();
    await h.cleanup();
  });

  it('updates on the MQTT command, then exposes metrics, events and GET /models', async () => {
    const res = await handleModelUpdateCommand({ transaction: 't-1', model: 'detector' });
    expect(res).toMatchObject({
      transaction: 't-1',
      status: 'ok',
      data: {
        results: [{ model: 'detector', outcome: 'committed', version: '1.0.0', release: 1 }],
      },
    });
    const again = await handleModelUpdateCommand({ transaction: 't-2', version: '1.0.0' });
    expect(again).toMatchObject({ status: 'ok', data: { results: [{ outcome: 'up_to_date' }] } });

    await expect
      .poll(scrape)
      .toContain('gpulse_model_info{model="detector",version="1.0.0",release="1"} 1');
    const metrics = await scrape();
    expect(metrics).toContain('gpulse_model_update_state{model="detector",state="committed"} 1');
    expect(metrics).toContain('gpulse_model_update_state{model="detector",state="downloading"} 0');
    expect(metrics).toMatch(/gpulse_model_update_bytes_downloaded_total\{model="detector"\} (\d+)/);
    const downloaded = Number(
      /gpulse_model_update_bytes_downloaded_total\{model="detector"\} (\d+)/.exec(metrics)![1],
    );
    expect(downloaded).toBeGreaterThanOrEqual(2 * 1024 * 1024);
    expect(metrics).toContain(
      'gpulse_model_update_checks_total{model="detector",result="up_to_date"} 1',
    );
    expect(metrics).toContain('gpulse_model_highest_release{model="detector"} 1');

    expect(agent.events.list({ type: 'model' }).map((e) => e.type)).toEqual([
      'model.update_committed',
      'model.update_started',
    ]);
    const models = (await agent.app.inject({ method: 'GET', url: '/models' })).json();
    expect(models.models[0]).toMatchObject({
      model: 'detector',
      running: false,
      state: { current: { version: '1.0.0' } },
    });
  });

  it('answers bad commands with an error response instead of throwing', async () => {
    expect(await handleModelUpdateCommand({ transaction: 7, model: 'nope' })).toMatchObject({
      transaction: 7,
      status: 'error',
      error: expect.stringContaining('not configured'),
    });
    expect(await handleModelUpdateCommand({ model: 3 })).toMatchObject({
      status: 'error',
      error: expect.stringContaining('invalid model-update command'),
    });
    expect(await handleModelUpdateCommand({ version: '9.9.9' })).toMatchObject({
      status: 'error',
      error: expect.stringContaining('not 9.9.9'),
    });
  });

  it('reports an unreachable store as a failure with its reason in the metrics', async () => {
    await h.server.stop();
    const res = await handleModelUpdateCommand({});
    expect(res).toMatchObject({
      status: 'error',
      data: { results: [{ outcome: 'refused', reason: 'manifest_network' }] },
    });
    await expect
      .poll(scrape)
      .toContain(
        'gpulse_model_update_failures_total{model="detector",reason="manifest_network"} 1',
      );
    const metrics = await scrape();
    expect(metrics).toContain('gpulse_model_update_state{model="detector",state="idle"} 1');
  });
});

describe('model updater onCommitted hook', () => {
  let h: Harness;
  const agents: Agent[] = [];

  const startAgent = async (onCommitted: OnCommitted) => {
    const config = detectorConfig(h);
    const agent = buildAgent(config, {
      log: silentLogger(),
      version: 'test',
      collectors: [],
      components: [updaterFor(config.models, { onCommitted })],
    });
    agents.push(agent);
    await agent.start();
    return agent;
  };

  beforeEach(async () => {
    h = await createHarness();
    await writeModel(join(h.tmp, 'm1'), randomBytes(64 * 1024));
    await h.publish(join(h.tmp, 'm1'), '1.0.0', 1, { driftReference: { profile: 'v1' } });
  });

  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop();
    await h.cleanup();
  });

  it('hands over the committed manifest after a commit and at the next start', async () => {
    const calls: [string, string, unknown][] = [];
    const hook: OnCommitted = (model, m) => calls.push([model, m.version, m.drift_reference]);
    const first = await startAgent(hook);
    expect(calls).toEqual([]);
    expect(await handleModelUpdateCommand({ model: 'detector' })).toMatchObject({ status: 'ok' });
    expect(calls).toEqual([['detector', '1.0.0', { profile: 'v1' }]]);
    // Up to date: nothing new committed, no call.
    await handleModelUpdateCommand({ model: 'detector' });
    expect(calls).toHaveLength(1);
    await first.stop();
    await startAgent(hook);
    expect(calls).toEqual([
      ['detector', '1.0.0', { profile: 'v1' }],
      ['detector', '1.0.0', { profile: 'v1' }],
    ]);
  });

  it('keeps the update committed when the hook throws', async () => {
    await startAgent(() => {
      throw new Error('drift says no');
    });
    expect(await handleModelUpdateCommand({ model: 'detector' })).toMatchObject({
      status: 'ok',
      data: { results: [{ outcome: 'committed', version: '1.0.0' }] },
    });
    expect(await h.current()).toEqual({ version: '1.0.0', verified: true });
  });
});
