// The composition root hands the model updater it creates to the MQTT command wiring (no
// module-level singleton): a `cmd/model-update` through a real Mosquitto reaches that updater.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../agent/config.js';
import { startAgent, type StartOutcome } from '../../agent/run-agent.js';
import { createHarness, type Harness } from '../../test/helpers/models/harness.js';
import { writeModel } from '../../test/helpers/models/model-gen.js';
import { record, startMosquitto, type Mosquitto } from '../../test/helpers/mosquitto.js';
import { describeWithTools, tools } from '../../test/helpers/tools.js';
import { noModelsResponse } from './command.js';
import { ModelUpdaterComponent } from './component.js';

describe('model-update command answered without a running updater', () => {
  it('says no models are configured, before the updater starts and without one', async () => {
    const { config } = loadConfig({
      file: {
        name: 'gpulse.yaml',
        text: 'models:\n  - name: detector\n    source: http://127.0.0.1:1/detector/\n    dir: /nonexistent\n    trust: /nonexistent.pub\n',
      },
    });
    const updater = new ModelUpdaterComponent(config.models);
    const answer = {
      transaction: 'early',
      status: 'error',
      error: 'no models are configured on this node (config `models:`)',
    };
    expect(
      await updater.handleModelUpdateCommand({ transaction: 'early', model: 'detector' }),
    ).toEqual(answer);
    expect(noModelsResponse({ transaction: 'early' })).toEqual(answer);
    expect(noModelsResponse(null)).toEqual({ ...answer, transaction: undefined });
  });
});

describeWithTools('model-update command through the composition root', tools('mosquitto'), () => {
  let broker: Mosquitto;
  let h: Harness;
  let dir: string;
  let outcome: StartOutcome | undefined;

  beforeAll(async () => {
    broker = await startMosquitto();
    h = await createHarness();
    await writeModel(join(h.tmp, 'm1'), randomBytes(128 * 1024));
    await h.publish(join(h.tmp, 'm1'), '1.0.0', 1);
    dir = await mkdtemp(join(tmpdir(), 'gpulse-wiring-'));
  });

  afterAll(async () => {
    if (outcome?.kind === 'running') await outcome.agent.stop();
    await h.cleanup();
    await broker.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers with the result of the update the configured model updater ran', async () => {
    const config = join(dir, 'gpulse.yaml');
    // YAML reads JSON: the model entry as an object.
    const model = {
      name: 'detector',
      source: `${h.server.url}detector/`,
      dir: h.root,
      trust: h.pubPath,
      schedule: 'off',
      onStart: 'off',
      health: { trialWindow: '0s' },
    };
    await writeFile(config, JSON.stringify({ models: [model] }));
    const stderr: string[] = [];
    outcome = await startAgent(
      'run',
      {
        config,
        flags: {
          listen: '127.0.0.1:0',
          'mqtt-url': broker.url,
          site: 'plant-9',
          node: 'cam-01',
          'mqtt-spool-dir': join(dir, 'spool'),
        },
      },
      {},
      {
        env: {
          GPULSE_NVIDIA_SMI_MODE: 'off',
          GPULSE_DCGM_MODE: 'off',
          GPULSE_DOCKER_MODE: 'off',
          GPULSE_HOST_MODE: 'off',
          GPULSE_TEGRASTATS_MODE: 'off',
          GPULSE_KMSG_MODE: 'off',
          GPULSE_LOG_LEVEL: 'silent',
        },
        stderr: (t) => stderr.push(t),
        version: 'test',
      },
    );
    expect(stderr.join('')).toBe('');
    expect(outcome.kind).toBe('running');

    const operator = await record(broker.url, 'gpulse/v1/plant-9/cam-01/response/#');
    try {
      await expect
        .poll(
          async () => {
            await operator.client.publishAsync(
              'gpulse/v1/plant-9/cam-01/cmd/model-update',
              '{"transaction":"t-7","model":"detector"}',
              { qos: 1 },
            );
            return operator.messages.length;
          },
          { timeout: 20_000, interval: 1000 },
        )
        .toBeGreaterThan(0);
      expect(operator.messages[0]).toMatchObject({
        topic: 'gpulse/v1/plant-9/cam-01/response/model-update',
        json: {
          transaction: 't-7',
          status: 'ok',
          data: { results: [{ model: 'detector', outcome: 'committed', version: '1.0.0' }] },
        },
      });
      expect(await h.current()).toEqual({ version: '1.0.0', verified: true });
    } finally {
      await operator.close();
    }
  });
});
