import type { DoctorReport } from './run-doctor.js';
import type { CheckStatus } from './types.js';

const SYMBOL: Readonly<Record<CheckStatus, string>> = { ok: '✔', warn: '⚠', fail: '✖', skip: '-' };
// ANSI colours only on a terminal: green, yellow, red, dim.
const COLOUR: Readonly<Record<CheckStatus, string>> = {
  ok: '\u001b[32m',
  warn: '\u001b[33m',
  fail: '\u001b[31m',
  skip: '\u001b[2m',
};
const RESET = '\u001b[0m';

/** Human output: an aligned table of checks, then each problem with its fix, then the verdict. */
export function renderReport(report: DoctorReport, options: { readonly colour: boolean }): string {
  const paint = (status: CheckStatus, text: string) =>
    options.colour ? `${COLOUR[status]}${text}${RESET}` : text;
  const titleWidth = Math.max(5, ...report.checks.map((c) => c.title.length));
  const out: string[] = [`gpulse doctor ${report.gpulseVersion}`, ''];
  out.push(`  ${'CHECK'.padEnd(titleWidth)}  ${'STATUS'.padEnd(6)}  FINDING`);
  for (const c of report.checks) {
    const status = `${c.status}${c.status === 'fail' && c.required ? '*' : ''}`;
    out.push(
      `${paint(c.status, SYMBOL[c.status])} ${c.title.padEnd(titleWidth)}  ${paint(c.status, status.padEnd(6))}  ${c.finding}`,
    );
  }
  const problems = report.checks.filter((c) => c.status === 'fail' || c.status === 'warn');
  if (problems.length > 0) {
    out.push('', 'What to do:');
    for (const c of problems) {
      out.push(
        '',
        `${paint(c.status, SYMBOL[c.status])} ${c.title}${c.status === 'fail' && c.required ? ' (required)' : ''}`,
      );
      if (c.problem) out.push(`    problem: ${c.problem}`);
      if (c.fix) out.push(`    fix:     ${c.fix}`);
    }
  }
  const s = report.summary;
  out.push(
    '',
    `${s.ok} ok, ${s.warn} warning${s.warn === 1 ? '' : 's'}, ${s.fail} failed${s.requiredFailed > 0 ? ` (${s.requiredFailed} required, marked *)` : ''}, ${s.skip} skipped: ${report.ok ? 'ready' : 'not ready (exit 1)'}`,
    '',
  );
  return out.join('\n');
}

/** `--json` output: the report as one stable object. */
export function renderJson(report: DoctorReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
