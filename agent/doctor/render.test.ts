import { describe, expect, it } from 'vitest';
import { renderReport } from './render.js';
import type { DoctorReport } from './run-doctor.js';

const report: DoctorReport = {
  schemaVersion: 1,
  gpulseVersion: '1.2.3',
  ok: false,
  exitCode: 1,
  summary: { ok: 1, warn: 1, fail: 1, skip: 1, requiredFailed: 1 },
  checks: [
    {
      id: 'nvidia-smi',
      title: 'nvidia-smi',
      status: 'fail',
      required: true,
      finding: 'not found',
      problem: 'no GPU metrics',
      fix: 'install the driver',
    },
    { id: 'cgroup', title: 'cgroup version', status: 'ok', required: false, finding: 'v2' },
    {
      id: 'agent',
      title: 'agent endpoint',
      status: 'warn',
      required: false,
      finding: 'nothing',
      problem: 'no agent',
      fix: 'gpulse run',
    },
    { id: 'dcgm', title: 'DCGM', status: 'skip', required: false, finding: 'off' },
  ],
};

describe('doctor table', () => {
  it('aligns the columns, marks required failures, lists each fix, and has no colour off a terminal', () => {
    const text = renderReport(report, { colour: false });
    expect(text).not.toContain('\u001b[');
    const table = text.slice(0, text.indexOf('What to do:'));
    const rows = table.split('\n').filter((l) => /^[✔⚠✖-] /.test(l));
    expect(rows).toEqual([
      '✖ nvidia-smi      fail*   not found',
      '✔ cgroup version  ok      v2',
      '⚠ agent endpoint  warn    nothing',
      '- DCGM            skip    off',
    ]);
    expect(text).toContain(
      '✖ nvidia-smi (required)\n    problem: no GPU metrics\n    fix:     install the driver',
    );
    expect(text).toContain('⚠ agent endpoint\n    problem: no agent\n    fix:     gpulse run');
    expect(text).toContain(
      '1 ok, 1 warning, 1 failed (1 required, marked *), 1 skipped: not ready (exit 1)',
    );
  });

  it('colours the symbols and statuses on a terminal', () => {
    const text = renderReport(report, { colour: true });
    expect(text).toContain('\u001b[31m✖\u001b[0m nvidia-smi');
    expect(text).toContain('\u001b[32mok    \u001b[0m');
  });
});
