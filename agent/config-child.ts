// Child process of loadAgentConfigInChild: loads the configuration from its own environment (the
// one the agent forked it with), sends it back and exits, taking zod and the schemas with it.
import { loadAgentConfig } from './config-loader.js';
import { errorMessage } from './core/errors.js';
import type { ConfigChildReply } from './config-in-child.js';
import type { AgentCommandOptions } from './run-agent.js';

process.once('message', (options: AgentCommandOptions) => {
  const stderr: string[] = [];
  let reply: ConfigChildReply;
  try {
    const loaded = loadAgentConfig(options, process.env, (t) => stderr.push(t));
    reply = { loaded, stderr: stderr.join('') };
  } catch (err) {
    reply = { loaded: undefined, stderr: stderr.join(''), crash: errorMessage(err) };
  }
  process.send?.(reply, () => process.exit(0));
});
