// Worker thread of loadAgentConfigInWorker: loads the configuration and posts it back, then ends,
// taking zod and the schemas with it.
import { parentPort, workerData } from 'node:worker_threads';
import { loadAgentConfig } from './config-loader.js';
import { errorMessage } from './errors.js';
import type { ConfigWorkerReply, ConfigWorkerRequest } from './config-in-worker.js';

const request = workerData as ConfigWorkerRequest;
const stderr: string[] = [];
let reply: ConfigWorkerReply;
try {
  const loaded = await loadAgentConfig(request.options, request.env, (t) => stderr.push(t));
  reply = { loaded, stderr: stderr.join('') };
} catch (err) {
  reply = { loaded: undefined, stderr: stderr.join(''), crash: errorMessage(err) };
}
parentPort?.postMessage(reply);
