import { accessSync, constants, statSync } from 'node:fs';
import type { AgentConfig } from './config.js';

/** The collectors that run a GPU tool, with the tool's usual name. */
const TOOLS = [
  ['nvidia-smi', 'nvidia-smi'],
  ['dcgm', 'dcgmi'],
  ['tegrastats', 'tegrastats'],
] as const;

/** What is wrong with an executable path, or undefined when it can be run. */
export function executableProblem(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return 'is not a file';
    accessSync(path, constants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'does not exist';
    if (code === 'EACCES') return 'is not executable by this user';
    return `cannot be used (${code ?? String(err)})`;
  }
}

/**
 * Problems with GPU tool paths someone set on purpose: `--nvidia-smi /opt/x/nvidia-smi` that does
 * not exist is a typo to report at start, not a host without a GPU to report as `no_data` forever.
 * A bare name (looked up on PATH) and the defaults keep the "nothing here" behaviour.
 */
export function explicitToolProblems(
  config: AgentConfig,
  explicit: Readonly<Record<string, string>>,
  problemOf: (path: string) => string | undefined = executableProblem,
): string[] {
  const problems: string[] = [];
  for (const [collector, tool] of TOOLS) {
    const section = config.collectors[collector];
    const key = `collectors.${collector}.binary`;
    const source = explicit[key];
    if (section.mode === 'off' || source === undefined || !section.binary.includes('/')) continue;
    const problem = problemOf(section.binary);
    if (problem === undefined) continue;
    problems.push(
      `${key}: ${JSON.stringify(section.binary)} ${problem} (from ${source}); give the path of ${tool} (\`command -v ${tool}\` prints it), or leave it unset to use ${tool} from PATH`,
    );
  }
  return problems;
}
