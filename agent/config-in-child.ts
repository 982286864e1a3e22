import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LoadedConfig } from './config.js';
import type { AgentCommandOptions } from './run-agent.js';

/** What the config child answers: the configuration, or what to print and why it failed. */
export interface ConfigChildReply {
  readonly loaded: LoadedConfig | undefined;
  readonly stderr: string;
  /** An unexpected error (a bug, not a configuration problem). */
  readonly crash?: string;
}

/**
 * Loads the configuration in a short-lived child process. Validation needs zod and the schemas of
 * every setting: about 5 MB of heap that a daemon would otherwise carry for its whole life, a tenth
 * of what an edge device gives the agent. A worker thread would free its heap too, but leaves ~4 MB
 * behind in the process (its allocator arena and the Node.js pages its start-up touched); a child
 * leaves nothing.
 */
export function loadAgentConfigInChild(
  options: AgentCommandOptions,
  env: NodeJS.ProcessEnv,
  stderr: (text: string) => void,
): Promise<LoadedConfig | undefined> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL('./config-child.js', import.meta.url)), [], {
      // Structured clone, as for worker threads: the configuration is plain data.
      serialization: 'advanced',
      // A debugger flag would make the child fight the agent for the inspector port.
      execArgv: process.execArgv.filter((a) => !a.startsWith('--inspect')),
      // The child reads GPULSE_* from its own environment: `env` travels once, as that.
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let reply: ConfigChildReply | undefined;
    child.once('message', (message: ConfigChildReply) => {
      reply = message;
    });
    child.once('error', (err) =>
      reject(new Error(`could not start the configuration check: ${err.message}`)),
    );
    child.once('exit', (code, signal) => {
      if (!reply) {
        reject(
          new Error(
            `the configuration check exited (${signal ?? `code ${code}`}) before answering`,
          ),
        );
        return;
      }
      if (reply.stderr) stderr(reply.stderr);
      if (reply.crash !== undefined) {
        reject(new Error(`loading the configuration failed: ${reply.crash}`));
        return;
      }
      resolve(reply.loaded);
    });
    child.send(options);
  });
}
