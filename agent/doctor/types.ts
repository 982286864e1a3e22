import type { AgentConfig } from '../config.js';
import type { DockerProbe } from './docker-api.js';
import type { NvidiaSmiProbe } from './checks/nvidia-smi.js';

/** Outcome of one check: ok, a problem worth knowing (warn), a problem (fail), or not applicable. */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

/** What one check found. */
export interface CheckOutcome {
  readonly status: CheckStatus;
  /** A failure of a required check makes `gpulse doctor` exit 1. */
  readonly required: boolean;
  /** One line: what was found. */
  readonly finding: string;
  /** For warn/fail: what is wrong and what it breaks. */
  readonly problem?: string;
  /** For warn/fail: the exact command or setting that fixes it. */
  readonly fix?: string;
  /** Machine-readable facts (versions, paths, counts) for `--json`. */
  readonly details?: Readonly<Record<string, string | number | boolean | readonly string[]>>;
}

/** One check as reported: its id and title plus the outcome. */
export interface CheckResult extends CheckOutcome {
  readonly id: string;
  readonly title: string;
}

/** Everything a check may read; probes shared by several checks run once. */
export interface DoctorContext {
  readonly config: AgentConfig;
  readonly env: NodeJS.ProcessEnv;
  /** `--cuda X.Y`: the CUDA version whose driver support is checked. */
  readonly cuda?: string;
  /** Limit of one network request or command (the GPU tools use their own configured timeouts). */
  readonly timeoutMs: number;
  /** `nvidia-smi -q -x` once, shared by the nvidia-smi, driver and toolkit checks. */
  readonly nvidiaSmi: () => Promise<NvidiaSmiProbe>;
  /** The Docker Engine's /_ping, /version and /info once, shared by the socket and toolkit checks. */
  readonly docker: () => Promise<DockerProbe>;
}

/** A diagnostic of `gpulse doctor`. */
export interface Check {
  /** Stable id, used as the key in `--json` output. */
  readonly id: string;
  /** Short name shown in the table. */
  readonly title: string;
  run(ctx: DoctorContext): Promise<CheckOutcome>;
}
