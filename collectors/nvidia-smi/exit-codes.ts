/** How a failed nvidia-smi run is reported: a stable reason label, a message, and whether it means "no GPU". */
export interface NvidiaSmiFailure {
  readonly reason: string;
  readonly message: string;
  /** True when the host simply has no usable GPU (a state, not an error, in `auto` mode). */
  readonly noGpu: boolean;
}

// Exit codes documented in `nvidia-smi -h` ("RETURN VALUE" section of the man page).
const EXIT_CODES: Readonly<Record<number, { reason: string; text: string; noGpu?: boolean }>> = {
  2: {
    reason: 'invalid_argument',
    text: 'rejected its arguments (a field this driver does not know?)',
  },
  3: { reason: 'not_supported', text: 'says the operation is not supported on this GPU' },
  4: {
    reason: 'permission_denied',
    text: 'lacks permission (run as root or fix /dev/nvidia* permissions)',
  },
  6: { reason: 'no_devices', text: 'found no NVIDIA devices', noGpu: true },
  8: { reason: 'power_cable', text: 'reports an external power cable not attached' },
  9: {
    reason: 'driver_not_loaded',
    text: 'cannot talk to the NVIDIA driver (is it loaded? try `modprobe nvidia` or reinstall the driver)',
    noGpu: true,
  },
  10: { reason: 'interrupt_issue', text: 'reports a GPU interrupt problem' },
  12: {
    reason: 'library_not_found',
    text: 'cannot find libnvidia-ml.so (install the driver, or mount the driver libraries into the container)',
    noGpu: true,
  },
  13: { reason: 'function_not_found', text: 'found an NVML library too old for this nvidia-smi' },
  14: { reason: 'corrupted_inforom', text: 'reports a corrupted infoROM' },
  15: {
    reason: 'gpu_lost',
    text: 'reports that a GPU has fallen off the bus (GPU is lost; reboot to recover)',
  },
  255: { reason: 'unknown_error', text: 'failed with an unknown error' },
};

/** Classifies an nvidia-smi exit code; `output` is the tool's last words, quoted in the message. */
export function classifyExit(
  binary: string,
  code: number | null,
  signal: string | null,
  output: string,
): NvidiaSmiFailure {
  const said = output.trim().split('\n').slice(-3).join(' / ').slice(0, 400);
  const suffix = said ? `: "${said}"` : '';
  if (code === null) {
    return {
      reason: 'killed',
      message: `${binary} was killed by ${signal ?? 'a signal'}${suffix}`,
      noGpu: false,
    };
  }
  const known = EXIT_CODES[code];
  if (known) {
    return {
      reason: known.reason,
      message: `${binary} ${known.text} (exit ${code})${suffix}`,
      noGpu: known.noGpu === true,
    };
  }
  if (code === 0) {
    return {
      reason: 'stream_ended',
      message: `${binary} ended its output stream unexpectedly${suffix}`,
      noGpu: false,
    };
  }
  return {
    reason: `exit_${code}`,
    message: `${binary} failed (exit ${code})${suffix}`,
    noGpu: false,
  };
}

/** Message for a missing binary, with the fixes a newcomer needs. */
export function notFoundMessage(binary: string): string {
  return (
    `no NVIDIA GPU found: \`${binary}\` is not installed or not on PATH. ` +
    'Install the NVIDIA driver, or set GPULSE_NVIDIA_SMI (--nvidia-smi) to its path; ' +
    '`gpulse simulate` runs the agent with simulated GPUs. /metrics keeps serving everything else.'
  );
}

/**
 * The exit code behind a failure reason of the nvidia-smi collector, as nvidia_gpu_exporter's
 * `nvidia_smi_command_exit_code` reports it: the tool's own code where it exited with one (known
 * codes by their reason, `exit_N` otherwise, 0 for a stream that ended cleanly or a Jetson whose
 * nvidia-smi answers N/A), -1 where it never exited with a code (killed, hung, not found, could
 * not start, printed garbage), as the exporter does for a command that did not exit normally.
 * `permission_denied` reads 4 whether nvidia-smi said so or the binary was not executable.
 */
export function exitCodeOf(reason: string): number {
  for (const [code, known] of Object.entries(EXIT_CODES)) {
    if (known.reason === reason) return Number(code);
  }
  const numbered = /^exit_(\d+)$/.exec(reason);
  if (numbered) return Number(numbered[1]);
  if (reason === 'stream_ended' || reason === 'integrated_gpu') return 0;
  return -1;
}
