import type { Readiness } from "./wait.ts";

/**
 * The likely cause of a server that never became ready, read from the end of its log: Triton and
 * the TensorRT-LLM backend say what went wrong, but in a line among hundreds. Each rule is tried
 * over the whole tail before the next, so a specific cause wins over a generic "failed to load".
 */
const rules: readonly { readonly pattern: RegExp; readonly cause: (match: RegExpExecArray) => string }[] = [
  {
    pattern: /could not select device driver|nvidia-container-cli|NVIDIA driver|no CUDA-capable device/i,
    cause: () => "no usable GPU in the container: install the NVIDIA Container Toolkit (`nvidia-ctk runtime configure --runtime=docker`) and check `--gpus`",
  },
  {
    pattern: /Number of MPI processes \((\d+)\) must equal the engine's world size[^(]*\(([^)]*)\)/,
    cause: (m) => `the server ran ${m[1]} rank(s) but the engine needs ${m[2]}: rebuild with \`llama3-trt build\``,
  },
  {
    pattern: /engine plan file is not compatible|not compatible with this version of TensorRT|Serialization assertion|Version tag does not match/i,
    cause: () => "the engine was built by another TensorRT-LLM/TensorRT version than the Triton image serves: rebuild the engine, or set triton_image to the image matching the build image",
  },
  {
    pattern: /out of memory|CUDA_ERROR_OUT_OF_MEMORY|OutOfMemory|cudaErrorMemoryAllocation/i,
    cause: () => "the GPU ran out of memory while loading: free the GPU, or build a smaller engine (lower `--max-batch-size`, `--max-input-len`, or `--quantize int8`)",
  },
  {
    pattern: /failed to read text proto|Error parsing text-format|unexpected platform type/i,
    cause: () => "a config.pbtxt of the model repository does not parse: run `llama3-trt build --force model-repo`",
  },
  {
    pattern: /Incorrect path_or_model_id|Can't load tokenizer/,
    cause: () => "the tokenizer folder is not where the model repository says: run `llama3-trt build` so the weights and model-repo steps agree",
  },
  {
    pattern: /(Failed to open file|No such file or directory)[^\n]*engine/i,
    cause: () => "the engine is not where the model repository says: run `llama3-trt build`",
  },
  {
    pattern: /Socket '([^']+)' already in use/,
    cause: (m) => `a port inside the container is taken (${m[1]})`,
  },
  {
    pattern: /failed to load '([^']+)'[^:]*: (.*)/,
    cause: (m) => `model ${m[1]} failed to load: ${m[2]}`,
  },
  {
    pattern: /mpirun has detected an attempt to run as root/,
    cause: () => "mpirun refused to run as root (this is a bug in llama3-trt: --allow-run-as-root is missing)",
  },
  {
    // Triton's own error lines: "E1125 17:37:56.412036 8 server.cc:251] <message>".
    pattern: /^E\d{4} [\d:.]+ +\d+ [^\]]+\] (.+)/,
    cause: (m) => `Triton reported: ${m[1]}`,
  },
];

export function likelyCause(logLines: readonly string[], outcome: Readiness, timeoutSeconds: number): string | undefined {
  if (outcome.ready) return undefined;
  if (outcome.reason === "exited" && outcome.oomKilled) {
    return "the kernel's OOM killer ended the server: the host ran out of memory (a bigger shm or a smaller engine may help)";
  }
  for (const rule of rules) {
    for (let i = logLines.length - 1; i >= 0; i--) {
      const match = rule.pattern.exec(logLines[i] as string);
      if (match) return rule.cause(match);
    }
  }
  if (outcome.reason === "timeout") {
    return `the server runs but its models were not ready within ${timeoutSeconds} s (last check: ${outcome.lastProbe}); a large engine can take minutes to load: raise \`--timeout\``;
  }
  if (outcome.reason === "gone") return "the container was removed while the server was starting (`llama3-trt stop`, or `docker rm`)";
  return undefined;
}
