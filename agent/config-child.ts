// Child process of loadAgentConfigInChild: loads the configuration, sends it back and exits, taking
// zod and the schemas with it.
import { loadAgentConfig } from './config-loader.js';
import { errorMessage } from './errors.js';
import type { ConfigChildReply, ConfigChildRequest } from './config-in-child.js';

process.once('message', (message: ConfigChildRequest) => {
  void answer(message);
});

async function answer(request: ConfigChildRequest): Promise<void> {
  const stderr: string[] = [];
  let reply: ConfigChildReply;
  try {
    const loaded = await loadAgentConfig(request.options, request.env, (t) => stderr.push(t));
    reply = { loaded, stderr: stderr.join('') };
  } catch (err) {
    reply = { loaded: undefined, stderr: stderr.join(''), crash: errorMessage(err) };
  }
  process.send?.(reply, () => process.exit(0));
}
