/**
 * Running the world's stand-in programs (world/images/common, world/repos) on the host with
 * python3, the way their tests need them: a pinned environment, the stand-in packages on
 * PYTHONPATH, invocations recorded to a file. Also makes the small Hugging Face checkpoints the
 * stand-ins convert.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const common = join(repoRoot, "world/images/common");
export const standinLib = join(common, "lib");
export const standinPkg = join(common, "tensorrt_llm_pkg");
export const standinBin = join(common, "bin");
export const trtllmRepo = join(repoRoot, "world/repos/TensorRT-LLM");
export const backendRepo = join(repoRoot, "world/repos/tensorrtllm_backend");

/** The programs, as argv prefixes for python3. */
export const tools = {
  convert: [join(trtllmRepo, "examples/llama/convert_checkpoint.py")],
  build: [join(standinBin, "trtllm-build")],
  run: [join(trtllmRepo, "examples/run.py")],
  mpirun: [join(standinBin, "mpirun")],
  launch: [join(backendRepo, "scripts/launch_triton_server.py")],
  fill: [join(backendRepo, "tools/fill_template.py")],
} as const;

export interface PyResult {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface PyOptions {
  readonly cwd: string;
  /** File the stand-ins append their invocation to (LLAMA3_TRT_WORLD_INVOCATIONS). */
  readonly invocations?: string;
  /** Replaces the recording variables and adds to the pinned environment. */
  readonly env?: Record<string, string>;
  readonly timeoutMs?: number;
}

/** A pinned environment: no recorder, the stand-ins importable, nothing of the developer's. */
export function standinEnv(options: Pick<PyOptions, "invocations" | "env">): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    PYTHONPATH: [standinLib, standinPkg].join(":"),
    PYTHONDONTWRITEBYTECODE: "1",
    ...(options.invocations ? { LLAMA3_TRT_WORLD_INVOCATIONS: options.invocations } : {}),
    ...options.env,
  };
}

export function py(args: readonly string[], options: PyOptions): Promise<PyResult> {
  return new Promise((resolve, reject) => {
    execFile(
      "python3",
      [...args],
      { cwd: options.cwd, env: standinEnv(options), timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== "number" && !error.signal) return reject(error);
        resolve({
          exitCode: typeof error?.code === "number" ? error.code : error?.signal ? null : 0,
          signal: (error?.signal as NodeJS.Signals | undefined) ?? null,
          stdout,
          stderr,
        });
      },
    );
  });
}

/** Starts a stand-in without waiting for it (for signal tests). */
export function spawnPy(args: readonly string[], options: PyOptions): ChildProcess {
  return spawn("python3", [...args], { cwd: options.cwd, env: standinEnv(options), stdio: ["ignore", "pipe", "pipe"] });
}

export interface Invocation {
  tool: string;
  argv: string[];
  cwd: string;
  time: string;
}

export function readInvocations(file: string): Invocation[] {
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Invocation);
}

/** The parser of a stand-in, dumped as the fixture records argparse actions. */
export async function dumpParser(kind: "build" | "convert" | "run" | "launch" | "fill", cwd: string): Promise<unknown[]> {
  const loaders: Record<typeof kind, string> = {
    build: "from tensorrt_llm.commands.build import parse_arguments_parser as make",
    convert: `make = load(${JSON.stringify(tools.convert[0])}).build_parser`,
    run: `sys.path.insert(0, ${JSON.stringify(join(trtllmRepo, "examples"))}); make = load(${JSON.stringify(tools.run[0])}).build_parser`,
    launch: `make = load(${JSON.stringify(tools.launch[0])}).build_parser`,
    fill: `make = load(${JSON.stringify(tools.fill[0])}).build_parser`,
  };
  const code = `
import argparse, importlib.util, json, sys
def load(path):
    spec = importlib.util.spec_from_file_location("standin_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
${loaders[kind]}
def kind(t):
    return None if t is None else getattr(t, "__name__", repr(t))
names = {argparse._StoreAction: "store", argparse._StoreTrueAction: "store_true",
         argparse._StoreFalseAction: "store_false", argparse._HelpAction: "help",
         argparse._AppendAction: "append", argparse._StoreConstAction: "store_const"}
out = []
for a in make()._actions:
    out.append({"option_strings": a.option_strings, "dest": a.dest, "action": names.get(type(a), type(a).__name__),
                "type": kind(a.type), "default": a.default, "choices": list(a.choices) if a.choices is not None else None,
                "nargs": a.nargs, "const": a.const, "required": a.required})
print(json.dumps(out))
`;
  const result = await py(["-c", code], { cwd });
  if (result.exitCode !== 0) throw new Error(`dumping the ${kind} parser failed:\n${result.stderr}`);
  return JSON.parse(result.stdout) as unknown[];
}

// ------------------------------------------------------------------------------------------
// safetensors and Hugging Face checkpoints

const DTYPE_SIZE: Record<string, number> = { BF16: 2, F16: 2, F32: 4, I8: 1 };

export interface TensorSpec {
  name: string;
  dtype: string;
  shape: number[];
}

export function writeSafetensors(path: string, tensors: readonly TensorSpec[]): void {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const t of tensors) {
    const size = t.shape.reduce((a, b) => a * b, 1) * (DTYPE_SIZE[t.dtype] ?? 4);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeFileSync(path, Buffer.concat([length, Buffer.from(json), Buffer.alloc(offset)]));
}

/** Reads a safetensors header (names -> dtype/shape), as the stand-ins write them. */
export function readSafetensorsHeader(path: string): Record<string, { dtype: string; shape: number[] }> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, { dtype: string; shape: number[] }>;
  delete header["__metadata__"];
  return header;
}

export const LLAMA3_SPECIAL_TOKENS = [
  { id: 128000, content: "<|begin_of_text|>" },
  { id: 128001, content: "<|end_of_text|>" },
  { id: 128006, content: "<|start_header_id|>" },
  { id: 128007, content: "<|end_header_id|>" },
  { id: 128009, content: "<|eot_id|>" },
];

export interface HfCheckpointOptions {
  layers?: number;
  heads?: number;
  kvHeads?: number;
  dtype?: string;
  /** Tensors to leave out, by name. */
  omit?: string[];
  /** Tensors to store in both shards. */
  duplicate?: string[];
  eosToken?: string;
  ropeTheta?: number;
  /** config.json fields to add or replace (another model's shape, rope_scaling, biases …). */
  config?: Record<string, unknown>;
}

export function llamaTensorNames(layers: number): string[] {
  const names = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"];
  for (let i = 0; i < layers; i++) {
    for (const t of [
      "input_layernorm.weight",
      "post_attention_layernorm.weight",
      "self_attn.q_proj.weight",
      "self_attn.k_proj.weight",
      "self_attn.v_proj.weight",
      "self_attn.o_proj.weight",
      "mlp.gate_proj.weight",
      "mlp.up_proj.weight",
      "mlp.down_proj.weight",
    ]) {
      names.push(`model.layers.${i}.${t}`);
    }
  }
  return names;
}

/**
 * A tiny Meta-Llama-3-8B-Instruct look-alike: real config keys and tensor names, tiny shapes,
 * two safetensors shards with their index, and the Llama 3 tokenizer files' special tokens.
 */
export function makeHfCheckpoint(dir: string, options: HfCheckpointOptions = {}): string {
  const layers = options.layers ?? 2;
  const dtype = options.dtype ?? "BF16";
  mkdirSync(dir, { recursive: true });
  const config = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 64,
    intermediate_size: 128,
    num_attention_heads: options.heads ?? 4,
    num_key_value_heads: options.kvHeads ?? 2,
    num_hidden_layers: layers,
    vocab_size: 128256,
    max_position_embeddings: 8192,
    rms_norm_eps: 1e-5,
    rope_theta: options.ropeTheta ?? 500000.0,
    torch_dtype: dtype === "BF16" ? "bfloat16" : "float16",
    bos_token_id: 128000,
    eos_token_id: 128009,
    tie_word_embeddings: false,
    ...options.config,
  };
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2));
  const names = llamaTensorNames(layers).filter((n) => !(options.omit ?? []).includes(n));
  const half = Math.ceil(names.length / 2);
  const shards: Record<string, string[]> = {
    "model-00001-of-00002.safetensors": names.slice(0, half),
    "model-00002-of-00002.safetensors": names.slice(half),
  };
  for (const extra of options.duplicate ?? []) shards["model-00002-of-00002.safetensors"]!.push(extra);
  const weightMap: Record<string, string> = {};
  for (const [file, list] of Object.entries(shards)) {
    writeSafetensors(
      join(dir, file),
      list.map((name) => ({ name, dtype, shape: [2, 2] })),
    );
    for (const name of list) weightMap[name] ??= file;
  }
  writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 8 * names.length }, weight_map: weightMap }, null, 2));
  writeFileSync(
    join(dir, "tokenizer_config.json"),
    JSON.stringify({ bos_token: "<|begin_of_text|>", eos_token: options.eosToken ?? "<|eot_id|>", add_bos_token: true }),
  );
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify({ version: "1.0", added_tokens: LLAMA3_SPECIAL_TOKENS }));
  writeFileSync(join(dir, "special_tokens_map.json"), JSON.stringify({ bos_token: "<|begin_of_text|>", eos_token: options.eosToken ?? "<|eot_id|>" }));
  return dir;
}

/** The Llama 3 chat template around one user message. */
export function chatPrompt(message: string): string {
  return `<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n${message}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`;
}
