import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GpuOomEpisodes, matchGpuOom } from './gpu-oom.js';

const LOGS = join(import.meta.dirname, 'fixtures', 'logs');

/** Data lines of a logs/ fixture grouped by `# source:` (a repeated source gets a ' suffix). */
function snippets(file: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = '';
  for (const line of readFileSync(join(LOGS, file), 'utf8').split('\n')) {
    const src = /^# source: (\S+)/.exec(line);
    if (src?.[1]) {
      current = src[1];
      while (out.has(current)) current += "'";
      out.set(current, []);
    } else if (!line.startsWith('#') && current && line.trim() !== '') {
      out.get(current)?.push(line);
    }
  }
  return out;
}

/** Episodes found when a snippet is printed at once by one container. */
function episodes(lines: readonly string[]): number {
  const ep = new GpuOomEpisodes();
  let n = 0;
  for (const l of lines) if (matchGpuOom(l) && ep.observe(0)) n++;
  return n;
}

// Expected GPU-OOM episodes per snippet of each fixture, in file order.
const EXPECTED: Record<string, Record<string, number>> = {
  'pytorch-oom.log': {
    'pytorch/pytorch#465': 1,
    "pytorch/pytorch#465'": 1,
    'pytorch/pytorch#4844': 1,
    'pytorch/pytorch#16417': 1,
    'pytorch/pytorch#18853': 1,
    'pytorch/pytorch#59778': 1,
    'vllm-project/vllm#783': 1,
    "pytorch/pytorch#16417'": 1,
    'vllm-project/vllm#20581': 1,
    'kaito-project/kaito#976': 1,
    // cuBLAS could not allocate its handle: a GPU allocation failure without the words.
    'pytorch/pytorch#128601': 1,
    // Caught and logged as a WARNING; the process goes on, but the GPU ran out all the same.
    'facebookresearch/fairseq#2442': 1,
  },
  'tensorflow-oom.log': {
    'tensorflow/tensorflow#136': 1,
    // The same op failing twice in a row prints the block twice: one episode.
    'tensorflow/models#848': 1,
    'tensorflow/tensorflow#4735': 1,
    'tensorflow/tensorflow#17994': 1,
    'tensorflow/models#5527': 1,
    'keras-team/keras#9643': 1,
    "tensorflow/tensorflow#136'": 1,
    // Only the BFC allocator's "this is not a failure" warning.
    'keras-team/keras-io#709': 0,
  },
  'jax-xla-oom.log': {
    'jax-ml/jax#13428': 1,
    'google-deepmind/jaxline#11': 1,
    'google-deepmind/alphafold#1023': 1,
    'kingoflolz/mesh-transformer-jax#66': 1,
    "kingoflolz/mesh-transformer-jax#66'": 1,
  },
  'cuda-runtime-oom.log': {
    'pytorch/pytorch#465': 1,
    'pytorch/pytorch#128601': 1,
    'cortexlabs/cortex#853': 1,
    'triton-inference-server/server#1705': 1,
    'microsoft/onnxruntime#10770': 1,
    'ggml-org/llama.cpp#20431': 1,
    'ggml-org/llama.cpp#16725': 1,
    'ggml-org/llama.cpp#11476': 1,
    'ggml-org/llama.cpp#26297': 1,
  },
  'onnxruntime-oom.log': {
    'microsoft/onnxruntime#16307': 1,
    'microsoft/onnxruntime#9939': 1,
    'microsoft/onnxruntime#22702': 1,
    'microsoft/onnxruntime#14942': 1,
    'microsoft/onnxruntime#10770': 1,
    // A cudaMemcpy failure often mistaken for OOM.
    'microsoft/onnxruntime#4008': 0,
  },
  'triton-oom.log': {
    'triton-inference-server/server#8177': 1,
    'triton-inference-server/server#1765': 1,
    'triton-inference-server/server#4023': 1,
    'microsoft/onnxruntime#20038': 1,
    'triton-inference-server/fastertransformer_backend#157': 1,
    'triton-inference-server/server#1138': 1,
    'triton-inference-server/server#1705': 1,
  },
  'vllm-oom.log': {
    'vllm-project/vllm#10439': 1,
    // "EngineCore failed to start" says nothing about memory.
    'vllm-project/vllm#17431': 0,
    // Source lines of a traceback (`raise ValueError("No available memory ...`) are code, not the error;
    // the excerpt lost its exception line.
    'vllm-project/vllm#27508': 0,
    "vllm-project/vllm#27508'": 0,
    'vllm-project/vllm#20581': 1,
    'vllm-project/vllm#15039': 1,
  },
};

describe('GPU OOM recognition over fixtures/logs', () => {
  for (const [file, want] of Object.entries(EXPECTED)) {
    describe(file, () => {
      const groups = snippets(file);
      it('has an expectation for every snippet', () => {
        expect([...groups.keys()]).toEqual(Object.keys(want));
      });
      for (const [source, count] of Object.entries(want)) {
        it(`${source}: ${count}`, () => {
          expect(episodes(groups.get(source) ?? [])).toBe(count);
        });
      }
    });
  }

  it('no line of negative-memory-mentions.log matches', () => {
    const groups = snippets('negative-memory-mentions.log');
    expect(groups.size).toBe(14);
    const lines = [...groups.values()].flat();
    expect(lines.length).toBe(57);
    expect(lines.filter((l) => matchGpuOom(l))).toEqual([]);
  });

  it('a whole file printed by one container with a minute between snippets counts each OOM once', () => {
    const ep = new GpuOomEpisodes();
    let n = 0;
    let t = 0;
    for (const lines of snippets('pytorch-oom.log').values()) {
      t += 60_000;
      for (const l of lines) if (matchGpuOom(l) && ep.observe(t)) n++;
    }
    expect(n).toBe(12);
  });
});

describe('matchGpuOom details', () => {
  it('framework, GPU and requested size from the PyTorch 2.5 vLLM worker line', () => {
    const line = [...snippets('pytorch-oom.log').get('vllm-project/vllm#20581')!][0]!;
    expect(matchGpuOom(line)).toEqual({
      framework: 'vllm',
      rule: 'cuda_out_of_memory',
      gpu: '5',
      requestedBytes: Math.round(2.5 * 1024 ** 3),
    });
  });
  it('TensorFlow on GPU 1 (keras multi-GPU)', () => {
    expect(
      matchGpuOom(
        'ResourceExhaustedError: OOM when allocating tensor with shape[128,128,109,109] and type float on /job:localhost/replica:0/task:0/device:GPU:1 by allocator GPU_1_bfc',
      ),
    ).toEqual({ framework: 'tensorflow', rule: 'tf_oom_allocating', gpu: '1' });
  });
  it('JAX bytes, llama.cpp device, TF driver-level refinement', () => {
    expect(
      matchGpuOom(
        'jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 7406166528 bytes.',
      ),
    ).toMatchObject({ framework: 'jax', requestedBytes: 7406166528 });
    expect(
      matchGpuOom(
        'deep-seek-1  | ggml_backend_cuda_buffer_type_alloc_buffer: allocating 9866.00 MiB on device 1: cudaMalloc failed: out of memory',
      ),
    ).toMatchObject({ framework: 'llama.cpp', gpu: '1', requestedBytes: 9866 * 1024 ** 2 });
    expect(
      matchGpuOom(
        '2020-03-13 01:30:26.765089: I tensorflow/stream_executor/cuda/cuda_driver.cc:801] failed to allocate 1.00G (1073741824 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY: out of memory',
      ),
    ).toMatchObject({
      framework: 'tensorflow',
      rule: 'cuda_error_out_of_memory',
      requestedBytes: 1073741824,
    });
  });
  it('host-memory and unrelated failures are not GPU OOMs', () => {
    expect(
      matchGpuOom('Exception in thread "main" java.lang.OutOfMemoryError: Java heap space'),
    ).toBeUndefined();
    expect(
      matchGpuOom('Killed process 1234 (python) total-vm:1234kB, anon-rss:1234kB (Out of memory)'),
    ).toBeUndefined();
    expect(
      matchGpuOom('|            CUDA OOMs: 0            |        cudaMalloc retries: 0         |'),
    ).toBeUndefined();
  });
});

describe('GpuOomEpisodes', () => {
  it('a match more than the quiet time after the previous one is a new episode', () => {
    const ep = new GpuOomEpisodes(10_000);
    expect([0, 5_000, 14_000, 30_000, 30_001].map((t) => ep.observe(t))).toEqual([
      true,
      false,
      false,
      true,
      false,
    ]);
  });
});
