import type { AgentCommandOptions } from './run-agent.js';
import { loadConfig, readConfigFile, type LoadedConfig } from './config.js';
import { ConfigError } from './core/errors.js';

/** Loads the agent's configuration; undefined after reporting every problem on stderr (exit 2). */
export type ConfigLoader = (
  options: AgentCommandOptions,
  env: NodeJS.ProcessEnv,
  stderr: (text: string) => void,
) => LoadedConfig | undefined | Promise<LoadedConfig | undefined>;

/** Loads the configuration in this process: the file, GPULSE_* variables and flags. */
export function loadAgentConfig(
  options: AgentCommandOptions,
  env: NodeJS.ProcessEnv,
  stderr: (text: string) => void,
): LoadedConfig | undefined {
  try {
    const path = options.config ?? env.GPULSE_CONFIG;
    const file = path ? readConfigFile(path) : undefined;
    return loadConfig({ file, env, flags: options.flags });
  } catch (err) {
    if (err instanceof ConfigError) {
      stderr(`gpulse: ${err.message}\n`);
      return undefined;
    }
    throw err;
  }
}
