/** Frameworks whose GPU out-of-memory messages are recognised. */
export type GpuOomFramework =
  'pytorch' | 'tensorflow' | 'jax' | 'onnxruntime' | 'vllm' | 'triton' | 'llama.cpp' | 'cuda';

/** A log line recognised as a GPU out-of-memory failure. */
export interface GpuOomMatch {
  readonly framework: GpuOomFramework;
  /** Which rule matched (stable, for event data and tests). */
  readonly rule: string;
  /** GPU index the message names, when it names one. */
  readonly gpu?: string;
  /** Size of the allocation that failed, when the message gives it. */
  readonly requestedBytes?: number;
}

interface Rule {
  readonly name: string;
  readonly re: RegExp;
  readonly framework: GpuOomFramework;
}

// Each rule is an allocation *failure* message (real lines in fixtures/logs/). Informational sizing
// lines, TensorFlow's BFC "ran out of memory ... this is not a failure" warning, memory summaries
// ("CUDA OOMs: 0") and Java's OutOfMemoryError (host heap) deliberately match none.
const RULES: readonly Rule[] = [
  {
    name: 'vllm_kv_cache',
    re: /ValueError: No available memory for the cache blocks/,
    framework: 'vllm',
  },
  { name: 'cuda_out_of_memory', re: /CUDA out of memory/i, framework: 'pytorch' },
  {
    name: 'cuda_runtime_error_2',
    re: /cuda runtime error \(2\) : out of memory|THCudaCheck FAIL.*error=2 : out of memory/,
    framework: 'pytorch',
  },
  { name: 'tf_oom_allocating', re: /OOM when allocating tensor/, framework: 'tensorflow' },
  {
    name: 'xla_resource_exhausted',
    re: /RESOURCE_EXHAUSTED: Out of memory while trying to allocate|Resource exhausted: Failed to allocate request for/,
    framework: 'jax',
  },
  {
    name: 'ort_bfc_arena',
    re: /Failed to allocate memory for requested buffer of size/,
    framework: 'onnxruntime',
  },
  { name: 'triton_cnmem', re: /CNMEM_STATUS_OUT_OF_MEMORY/, framework: 'triton' },
  {
    name: 'triton_gpu_alloc',
    re: /unable to allocate memory of \d+\s*bytes on gpu/i,
    framework: 'triton',
  },
  {
    name: 'cuda_error_out_of_memory',
    re: /CUDA_ERROR_OUT_OF_MEMORY|cudaErrorMemoryAllocation|Cuda Error in allocate: 2 \(out of memory\)|CUDA runtime error: out of memory/,
    framework: 'cuda',
  },
  { name: 'cuda_malloc_failed', re: /cudaMalloc failed: out of memory/, framework: 'cuda' },
  { name: 'cublas_alloc_failed', re: /CU(?:BLAS|DNN)_STATUS_ALLOC_FAILED/, framework: 'cuda' },
];

// Cheap gate before the rules: most log lines contain none of these words.
const PREFILTER = /memory|OOM|ALLOC_FAILED|xhausted/i;

const GPU_PATTERNS: readonly RegExp[] = [
  /\bGPU (\d+)\b/,
  /\bGPU:(\d+)/,
  /\bGPU_(\d+)_bfc/,
  /\bon device (\d+)\b/,
  /\bdevice ordinal (\d+)\b/,
  /\bCUDA(\d+) buffer\b/,
];

const UNIT: Readonly<Record<string, number>> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
};

function requested(line: string): number | undefined {
  const sized =
    /(?:Tried to allocate|allocating|trying to allocate) ([\d.]+) ?(B|KiB|MiB|GiB|KB|MB|GB)\b/.exec(
      line,
    );
  if (sized?.[1] && sized[2]) return Math.round(Number(sized[1]) * (UNIT[sized[2]] ?? 1));
  const bytes =
    /\((\d+)(?: bytes|B)\)/.exec(line) ??
    /(?:allocate|buffer of size|byte size|allocate memory of) (\d+)(?![.\d])/.exec(line);
  return bytes?.[1] ? Number(bytes[1]) : undefined;
}

function refine(line: string, base: GpuOomFramework): GpuOomFramework {
  if (/VllmWorker|EngineCore|\bvllm[.\-/ ]/i.test(line)) return 'vllm';
  if (base === 'cuda') {
    if (/onnxruntime/.test(line)) return 'onnxruntime';
    if (/tensorflow/.test(line)) return 'tensorflow';
    if (/\bggml_/.test(line)) return 'llama.cpp';
  }
  return base;
}

/** The GPU out-of-memory failure a log line reports, if any. */
export function matchGpuOom(line: string): GpuOomMatch | undefined {
  if (!PREFILTER.test(line)) return undefined;
  for (const rule of RULES) {
    if (!rule.re.test(line)) continue;
    const gpu = GPU_PATTERNS.map((re) => re.exec(line)?.[1]).find((g) => g !== undefined);
    const bytes = requested(line);
    return {
      framework: refine(line, rule.framework),
      rule: rule.name,
      ...(gpu === undefined ? {} : { gpu }),
      ...(bytes === undefined ? {} : { requestedBytes: bytes }),
    };
  }
  return undefined;
}

/**
 * Groups matches of one container into episodes: a traceback or an allocator that retries prints
 * several matching lines for one failure, so a match within `quietMs` of the previous one
 * belongs to the same episode.
 */
export class GpuOomEpisodes {
  private last: number | undefined;

  constructor(private readonly quietMs = 10_000) {}

  /** Records a match at `atMs`; true when it starts a new episode. */
  observe(atMs: number): boolean {
    const isNew = this.last === undefined || atMs - this.last > this.quietMs;
    this.last = this.last === undefined ? atMs : Math.max(this.last, atMs);
    return isNew;
  }
}
