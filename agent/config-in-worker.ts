import { Worker } from 'node:worker_threads';
import type { LoadedConfig } from './config.js';
import type { AgentCommandOptions } from './run-agent.js';

/** What the config worker is given. */
export interface ConfigWorkerRequest {
  readonly options: AgentCommandOptions;
  readonly env: NodeJS.ProcessEnv;
}

/** What the config worker answers: the configuration, or what to print and why it failed. */
export interface ConfigWorkerReply {
  readonly loaded: LoadedConfig | undefined;
  readonly stderr: string;
  /** An unexpected error (a bug, not a configuration problem). */
  readonly crash?: string;
}

/**
 * Loads the configuration in a short-lived worker thread. Validation needs zod and the schemas
 * of every setting, about 6 MB of heap that a daemon would otherwise carry for its whole life
 * (a tenth of the 64 MB an edge device gives the agent); the worker's heap is freed when it ends.
 */
export function loadAgentConfigInWorker(
  options: AgentCommandOptions,
  env: NodeJS.ProcessEnv,
  stderr: (text: string) => void,
): Promise<LoadedConfig | undefined> {
  return new Promise((resolve, reject) => {
    const request: ConfigWorkerRequest = { options, env: { ...env } };
    // Problems come back in the reply; anything else the worker prints reaches our stderr.
    const worker = new Worker(new URL('./config-worker.js', import.meta.url), {
      workerData: request,
    });
    let reply: ConfigWorkerReply | undefined;
    worker.once('message', (message: ConfigWorkerReply) => {
      reply = message;
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (!reply) {
        reject(new Error(`the configuration worker exited with code ${code} before answering`));
        return;
      }
      if (reply.stderr) stderr(reply.stderr);
      if (reply.crash !== undefined) {
        reject(new Error(`loading the configuration failed: ${reply.crash}`));
        return;
      }
      resolve(reply.loaded);
    });
  });
}
