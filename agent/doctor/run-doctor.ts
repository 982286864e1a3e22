import type { AgentConfig } from '../config.js';
import { errorMessage } from '../core/errors.js';
import { loadChecks } from './checks/index.js';
import { probeNvidiaSmi, type NvidiaSmiProbe } from './checks/nvidia-smi.js';
import { probeDocker, type DockerProbe } from './docker-api.js';
import { resolveEndpoint } from '../../collectors/docker/endpoint.js';
import type { Check, CheckResult, CheckStatus, DoctorContext } from './types.js';

/** Version of the `--json` document; bumped only when a field changes meaning or goes away. */
export const DOCTOR_SCHEMA_VERSION = 1;

/** The whole diagnosis. */
export interface DoctorReport {
  readonly schemaVersion: number;
  readonly gpulseVersion: string;
  /** True when no required check failed. */
  readonly ok: boolean;
  readonly exitCode: 0 | 1;
  readonly summary: Readonly<Record<CheckStatus, number>> & { readonly requiredFailed: number };
  readonly checks: readonly CheckResult[];
}

/** What the doctor is asked to look at. */
export interface DoctorOptions {
  readonly config: AgentConfig;
  readonly env: NodeJS.ProcessEnv;
  readonly version: string;
  readonly cuda?: string;
  readonly timeoutMs?: number;
  readonly checks?: readonly Check[];
}

function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

/** Runs every check concurrently (shared probes run once) and rates the outcome. */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const ctx: DoctorContext = {
    config: options.config,
    env: options.env,
    cuda: options.cuda,
    timeoutMs,
    nvidiaSmi: once<NvidiaSmiProbe>(() => probeNvidiaSmi(options)),
    docker: once<DockerProbe>(async () => {
      const endpoint = resolveEndpoint(options.config.collectors.docker.socket, options.env);
      if ('error' in endpoint) return { ok: false, code: 'EINVAL', message: endpoint.error };
      return probeDocker(endpoint, timeoutMs);
    }),
  };
  const checks = options.checks ?? (await loadChecks());
  const results = await Promise.all(
    checks.map(async (check): Promise<CheckResult> => {
      try {
        return { id: check.id, title: check.title, ...(await check.run(ctx)) };
      } catch (err) {
        // A bug in one check must not hide the others' answers.
        return {
          id: check.id,
          title: check.title,
          status: 'fail',
          required: false,
          finding: `the check itself failed: ${errorMessage(err)}`,
          problem: 'gpulse doctor could not finish this check',
          fix: 'report it with the output of `gpulse doctor --json`',
        };
      }
    }),
  );
  const summary = { ok: 0, warn: 0, fail: 0, skip: 0, requiredFailed: 0 };
  for (const r of results) {
    summary[r.status]++;
    if (r.status === 'fail' && r.required) summary.requiredFailed++;
  }
  return {
    schemaVersion: DOCTOR_SCHEMA_VERSION,
    gpulseVersion: options.version,
    ok: summary.requiredFailed === 0,
    exitCode: summary.requiredFailed === 0 ? 0 : 1,
    summary,
    checks: results,
  };
}
