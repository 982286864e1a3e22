import { gauge, SampleBuilder } from './metric.js';
import { collectFacts } from './state-store.js';
import type { Deriver, Sample, Snapshot } from './types.js';

/** Per-process GPU memory series. */
export const gpuProcessMetrics = {
  memory: gauge(
    'gpulse_gpu_process_memory_used_bytes',
    'GPU memory used by a process (host PID).',
    ['gpu', 'uuid', 'pid', 'process_name'],
  ),
} as const;

/** Emits one series per GPU process from every GPU collector's `gpuProcesses` facts. */
export const gpuProcessesDeriver: Deriver = {
  name: 'gpu-processes',
  derive(snapshot: Snapshot): readonly Sample[] {
    const b = new SampleBuilder();
    for (const p of collectFacts(snapshot, 'gpuProcesses')) {
      b.add(
        gpuProcessMetrics.memory,
        {
          gpu: p.gpuIndex === undefined ? '' : String(p.gpuIndex),
          uuid: p.gpuUuid,
          pid: String(p.pid),
          process_name: p.processName,
        },
        p.usedMemoryBytes,
      );
    }
    return b.build();
  },
};
