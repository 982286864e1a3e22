import type { Command } from 'commander';
import { loadConfig, readConfigFile } from '../config.js';
import { settings } from '../settings.generated.js';
import { durationOption } from '../cli-options.js';
import { ConfigError } from '../core/errors.js';
import { packageVersion } from '../package-info.js';
import { renderJson, renderReport } from './render.js';
import { runDoctor } from './run-doctor.js';

/** Where `gpulse doctor` writes and how it ends. */
export interface DoctorCliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** Colours on the table (a terminal, and NO_COLOR unset). */
  readonly colour: boolean;
  readonly setExitCode: (code: number) => void;
}

const defaultIo = (): DoctorCliIo => ({
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
  colour: process.stdout.isTTY === true && !process.env.NO_COLOR,
  setExitCode: (code) => {
    process.exitCode = code;
  },
});

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** Adds `gpulse doctor`: checks the host for what the configured agent needs and says how to fix it. */
export function registerDoctorCommand(program: Command, io: DoctorCliIo = defaultIo()): void {
  const cmd = program
    .command('doctor')
    .description(
      'check this host for what the configured agent needs (GPU tools, Docker, cgroups, /proc, DCGM, MQTT, disk) and say how to fix each problem; exit 1 when a required check fails',
    )
    .option('--json', 'print one machine-readable JSON object instead of the table')
    .option('-c, --config <FILE>', 'YAML configuration file (also GPULSE_CONFIG)')
    .option('--cuda <VERSION>', 'also check that the driver supports this CUDA version, e.g. 12.4')
    .addOption(
      durationOption('--timeout <DURATION>', 'limit of each network check', 5000, {
        min: 1,
        max: 600_000,
      }),
    );
  // The agent's own setting flags, so `gpulse doctor --nvidia-smi X` checks what `gpulse run --nvidia-smi X` would use.
  for (const s of settings) {
    if (!s.flag) continue;
    cmd.option(
      `--${s.flag} <${s.valueName ?? 'VALUE'}>`,
      `${s.description}${s.env ? ` [${s.env}]` : ''}`,
    );
  }
  cmd.action(async (opts: Record<string, unknown>) => {
    const flags: Record<string, string | undefined> = {};
    for (const s of settings) {
      const v = s.flag ? opts[camel(s.flag)] : undefined;
      if (s.flag && typeof v === 'string') flags[s.flag] = v;
    }
    const timeoutMs = opts.timeout as number;
    let config;
    try {
      const path = typeof opts.config === 'string' ? opts.config : io.env.GPULSE_CONFIG;
      const loaded = loadConfig({
        file: path ? readConfigFile(path) : undefined,
        env: io.env,
        flags,
      });
      for (const w of loaded.warnings) io.stderr(`gpulse doctor: ${w}\n`);
      config = loaded.config;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      // An invalid config is itself the first thing to fix; nothing else can be judged without it.
      io.stderr(`gpulse doctor: ${err.message}\n`);
      io.setExitCode(2);
      return;
    }
    const report = await runDoctor({
      config,
      env: io.env,
      version: packageVersion(),
      cuda: typeof opts.cuda === 'string' ? opts.cuda : undefined,
      timeoutMs,
    });
    io.stdout(
      opts.json === true ? renderJson(report) : renderReport(report, { colour: io.colour }),
    );
    io.setExitCode(report.exitCode);
  });
}
