import { createRequire } from 'node:module';
import type { Command } from 'commander';
import type * as Bcrypt from 'bcryptjs';
import { errorMessage } from '../core/errors.js';
import { loadWebConfigFile, WebConfigError } from './web-config.js';

/** Where `gpulse web-config` reads and writes, and how it ends. */
export interface WebConfigCliIo {
  readonly stdin: () => Promise<string>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly setExitCode: (code: number) => void;
}

const defaultIo = (): WebConfigCliIo => ({
  stdin: async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  setExitCode: (code) => {
    process.exitCode = code;
  },
});

/**
 * Adds `gpulse web-config check FILE` (validate a web configuration file as the agent and the
 * gateway will) and `gpulse web-config hash` (bcrypt a password read from stdin for
 * basic_auth_users), for hosts without htpasswd.
 */
export function registerWebConfigCommand(program: Command, io: WebConfigCliIo = defaultIo()): void {
  const cmd = program
    .command('web-config')
    .description(
      'check a web configuration file (TLS, client certificates, basic auth; the --web.config.file format) or hash a password for it',
    );
  cmd
    .command('check <FILE>')
    .description('validate the file and the certificates it names; exit 1 on a problem')
    .action((file: string) => {
      try {
        const web = loadWebConfigFile(file);
        for (const w of web.warnings) io.stderr(`warning: ${w}\n`);
        const users = Object.keys(web.users).length;
        io.stdout(
          `${web.file}: OK (${web.tls ? `TLS, client certificates ${web.tls.clientAuth}` : 'plain HTTP'}; ${users === 0 ? 'no basic auth' : `basic auth for ${users} user${users === 1 ? '' : 's'}`})\n`,
        );
      } catch (err) {
        if (!(err instanceof WebConfigError)) throw err;
        io.stderr(`gpulse: ${err.file}:\n  - ${err.problems.join('\n  - ')}\n`);
        io.setExitCode(1);
      }
    });
  cmd
    .command('hash')
    .description(
      'print the bcrypt hash of the password read from stdin (its first line), for basic_auth_users',
    )
    .option(
      '--cost <N>',
      'bcrypt cost, 4-31 (default 10: about 0.1 s per check, cached after)',
      '10',
    )
    .action(async (opts: { cost: string }) => {
      const cost = Number(opts.cost);
      if (!Number.isInteger(cost) || cost < 4 || cost > 31) {
        io.stderr(
          `gpulse: --cost must be an integer from 4 to 31, got ${JSON.stringify(opts.cost)}\n`,
        );
        io.setExitCode(2);
        return;
      }
      const password = (await io.stdin()).split(/\r?\n/)[0] ?? '';
      if (password === '') {
        io.stderr(
          'gpulse: no password on stdin (e.g. `printf %s "$PASSWORD" | gpulse web-config hash`)\n',
        );
        io.setExitCode(2);
        return;
      }
      try {
        const bcrypt = createRequire(import.meta.url)('bcryptjs') as typeof Bcrypt;
        io.stdout(`${await bcrypt.hash(password, cost)}\n`);
      } catch (err) {
        io.stderr(`gpulse: hashing failed: ${errorMessage(err)}\n`);
        io.setExitCode(1);
      }
    });
}
