/**
 * The one schema for every setting: its type, default and one-line description. Validation,
 * the commander options, the environment names, `init`'s commented file and the README's
 * settings table are all derived from this list, so they cannot drift apart.
 *
 * Names: `maxBatchSize` in code, `max_batch_size` in llama3-trt.yaml/.json,
 * `LLAMA3_TRT_MAX_BATCH_SIZE` in the environment, `--max-batch-size` on the command line.
 */

/** Which commands take a setting as a flag. Sources and images are file/env only (contract). */
export type SettingGroup = "build" | "sources" | "images" | "serve" | "workdir";

export type Parsed<T> = { ok: true; value: T } | { ok: false; expected: string };

export interface SettingSpec<T> {
  readonly group: SettingGroup;
  readonly description: string;
  readonly default: T;
  /** The value shape for --help and the README, e.g. `<n>` or `bfloat16|float16`. */
  readonly valueHint: string;
  /** False for settings that only the config file and the environment set. */
  readonly flag: boolean;
  /** Parses a value from a flag, an environment variable or the config file (which may be typed). */
  parse(raw: unknown): Parsed<T>;
}

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(expected: string): Parsed<T> => ({ ok: false, expected });

function integer(min: number, max: number, allowed?: readonly number[]) {
  return (raw: unknown): Parsed<number> => {
    const text = typeof raw === "number" ? String(raw) : typeof raw === "string" ? raw.trim() : undefined;
    const expected = allowed ? `one of ${allowed.join(", ")}` : `an integer from ${min} to ${max}`;
    if (text === undefined || !/^\d+$/.test(text)) return fail(expected);
    const value = Number(text);
    if (value < min || value > max || (allowed && !allowed.includes(value))) return fail(expected);
    return ok(value);
  };
}

function oneOf<const C extends readonly string[]>(choices: C) {
  return (raw: unknown): Parsed<C[number]> =>
    typeof raw === "string" && (choices as readonly string[]).includes(raw)
      ? ok(raw as C[number])
      : fail(`one of ${choices.join(", ")}`);
}

function text(pattern: RegExp, expected: string) {
  return (raw: unknown): Parsed<string> =>
    typeof raw === "string" && pattern.test(raw) ? ok(raw) : fail(expected);
}

import { gpuProfileNames, type GpuProfileName } from "../model/gpu-profiles.ts";

export type Dtype = "bfloat16" | "float16";
export type Quantize = "none" | "int8" | "int4";

/** `all`, `none`, or a comma-separated list of GPU indices or UUIDs (as `docker run --gpus device=`). */
export type Gpus = "all" | "none" | readonly string[];

function parseGpus(raw: unknown): Parsed<Gpus> {
  const value = typeof raw === "number" ? String(raw) : raw;
  const expected = "`all`, `none`, or GPU indices/UUIDs separated by commas (e.g. `0,1`)";
  if (typeof value !== "string") return fail(expected);
  if (value === "all" || value === "none") return ok(value);
  const ids = value.split(",").map((id) => id.trim());
  if (ids.some((id) => !/^(\d+|GPU-[0-9a-fA-F-]{8,})$/.test(id))) return fail(expected);
  if (new Set(ids).size !== ids.length) return fail(`${expected}, each once`);
  return ok(Object.freeze(ids));
}

/**
 * Git URLs are handed to git, so anything that git could read as an option or a remote helper
 * (`--upload-pack=…`, `ext::sh -c …`) is refused here, before git is ever spawned
 * (reliability case 20; CVE-2026-28291, CVE-2022-24439).
 */
function parseGitUrl(raw: unknown): Parsed<string> {
  const expected = "an https://, ssh://, git:// or file:// URL";
  if (typeof raw !== "string" || raw.length === 0 || raw.length > 2048) return fail(expected);
  if (/[\s\0]/.test(raw) || raw.startsWith("-")) return fail(expected);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail(expected);
  }
  if (!["https:", "ssh:", "git:", "file:"].includes(url.protocol)) return fail(expected);
  if (url.protocol !== "file:" && url.hostname === "") return fail(expected);
  // A token in the URL would be in git's argv (`ps` shows it to every user) and in .git/config
  // (reliability case 37). An ssh user name (git@host) is no secret.
  if (url.password !== "" || (url.username !== "" && url.protocol !== "ssh:")) {
    return fail(`${expected} without credentials in it (git would show them in \`ps\` and keep them in .git/config): use a git credential helper, or ssh://`);
  }
  return ok(raw);
}

/** A branch, tag or commit in `git check-ref-format` terms, never something git reads as an option. */
function parseGitRef(raw: unknown): Parsed<string> {
  const expected = "a git branch, tag or commit (letters, digits, `.`, `_`, `-`, `/`; not starting with `-`)";
  if (typeof raw !== "string" || !/^[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}$/.test(raw)) return fail(expected);
  if (raw.includes("..") || raw.includes("//") || raw.endsWith("/") || raw.endsWith(".lock") || raw.endsWith("."))
    return fail(expected);
  return ok(raw);
}

/** `[registry[:port]/]path[:tag][@sha256:…]`, the grammar of Docker's reference package (simplified). */
const imageRef = text(
  /^(?:[a-zA-Z0-9.-]+(?::\d+)?\/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$/,
  "a container image reference such as `nvcr.io/nvidia/tritonserver:24.03-trtllm-python-py3`",
);

const port = integer(1, 65535);

function parseHost(raw: unknown): Parsed<string> {
  const expected = "an IPv4 address such as `127.0.0.1` or `0.0.0.0`";
  if (typeof raw !== "string") return fail(expected);
  const parts = raw.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) return fail(expected);
  return ok(raw);
}

function boolean(raw: unknown): Parsed<boolean> {
  if (raw === true || raw === "true") return ok(true);
  if (raw === false || raw === "false") return ok(false);
  return fail("true or false");
}

function nullablePath(raw: unknown): Parsed<string | null> {
  if (raw === null || raw === "") return ok(null);
  return typeof raw === "string" && !raw.includes("\0") ? ok(raw) : fail("a folder path");
}

function path(raw: unknown): Parsed<string> {
  return typeof raw === "string" && raw.length > 0 && !raw.includes("\0") ? ok(raw) : fail("a folder path");
}

/** Hugging Face repository ids are `org/name` with the Hub's allowed characters. */
const repoId = text(
  /^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}\/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$/,
  "a Hugging Face model id such as `meta-llama/Meta-Llama-3-8B-Instruct`",
);

/** A revision is a branch, a tag or a commit; it goes into URLs, so no `/../` tricks. */
const revision = parseGitRef;

function spec<T>(s: SettingSpec<T>): SettingSpec<T> {
  return s;
}

export const settingsSchema = {
  model: spec({
    group: "build",
    description: "Hugging Face model to serve",
    default: "meta-llama/Meta-Llama-3-8B-Instruct",
    valueHint: "<org/name>",
    flag: true,
    parse: repoId,
  }),
  revision: spec({
    group: "build",
    description: "branch, tag or commit of the model on the Hub",
    default: "main",
    valueHint: "<rev>",
    flag: true,
    parse: revision,
  }),
  modelDir: spec<string | null>({
    group: "build",
    description: "use Hugging Face weights already in this folder instead of downloading them",
    default: null,
    valueHint: "<dir>",
    flag: true,
    parse: nullablePath,
  }),
  dtype: spec<Dtype>({
    group: "build",
    description: "precision of the checkpoint and engine",
    default: "bfloat16",
    valueHint: "bfloat16|float16",
    flag: true,
    parse: oneOf(["bfloat16", "float16"] as const),
  }),
  tp: spec({
    group: "build",
    description: "tensor-parallel size: GPUs one engine is split over",
    default: 1,
    valueHint: "<n>",
    flag: true,
    // Which sizes split the model is the model's to say (its heads and KV heads), checked
    // against its config.json before anything runs (model/limits.ts).
    parse: integer(1, 64),
  }),
  quantize: spec<Quantize>({
    group: "build",
    description: "weight-only quantization",
    default: "none",
    valueHint: "none|int8|int4",
    flag: true,
    parse: oneOf(["none", "int8", "int4"] as const),
  }),
  maxBatchSize: spec({
    group: "build",
    description: "largest batch the engine and Triton accept",
    default: 64,
    valueHint: "<n>",
    flag: true,
    parse: integer(1, 4096),
  }),
  maxInputLen: spec({
    group: "build",
    description: "longest prompt in tokens",
    default: 4096,
    valueHint: "<tokens>",
    flag: true,
    parse: integer(1, 131072),
  }),
  maxOutputLen: spec({
    group: "build",
    description: "most tokens generated per request",
    default: 1024,
    valueHint: "<tokens>",
    flag: true,
    parse: integer(1, 131072),
  }),
  gpus: spec<Gpus>({
    group: "build",
    description: "GPUs the containers get: all, none, or indices such as 0,1",
    default: "all",
    valueHint: "all|none|<ids>",
    flag: true,
    parse: parseGpus,
  }),
  gpu: spec<GpuProfileName | null>({
    group: "build",
    description: `plan memory for these GPUs instead of the ones nvidia-smi reports: ${gpuProfileNames.join(", ")}`,
    default: null,
    valueHint: "<profile>",
    flag: true,
    parse: (raw) => (raw === null || raw === "" ? ok(null) : oneOf(gpuProfileNames)(raw)),
  }),
  streaming: spec({
    group: "build",
    description: "deploy the model decoupled, so `ask --stream` can print tokens as they arrive",
    default: true,
    valueHint: "true|false",
    flag: true,
    parse: boolean,
  }),
  trtllmRepoUrl: spec({
    group: "sources",
    description: "git URL of TensorRT-LLM (a mirror for air-gapped sites)",
    default: "https://github.com/NVIDIA/TensorRT-LLM.git",
    valueHint: "<url>",
    flag: false,
    parse: parseGitUrl,
  }),
  trtllmRepoRef: spec({
    group: "sources",
    description: "tag or commit of TensorRT-LLM to check out",
    default: "v0.8.0",
    valueHint: "<ref>",
    flag: false,
    parse: parseGitRef,
  }),
  backendRepoUrl: spec({
    group: "sources",
    description: "git URL of tensorrtllm_backend (a mirror for air-gapped sites)",
    default: "https://github.com/triton-inference-server/tensorrtllm_backend.git",
    valueHint: "<url>",
    flag: false,
    parse: parseGitUrl,
  }),
  backendRepoRef: spec({
    group: "sources",
    description: "tag or commit of tensorrtllm_backend to check out",
    default: "v0.8.0",
    valueHint: "<ref>",
    flag: false,
    parse: parseGitRef,
  }),
  buildImage: spec({
    group: "images",
    description: "image holding TensorRT-LLM v0.8.0; pulled, or built from templates/ when it cannot be",
    default: "llama3-trt/tensorrt-llm:0.8.0",
    valueHint: "<image>",
    flag: false,
    parse: imageRef,
  }),
  buildBaseImage: spec({
    group: "images",
    description: "CUDA base image the build image is built from",
    default: "nvidia/cuda:12.1.0-devel-ubuntu22.04",
    valueHint: "<image>",
    flag: false,
    parse: imageRef,
  }),
  tritonImage: spec({
    group: "images",
    description: "Triton image with the TensorRT-LLM backend matching v0.8.0",
    default: "nvcr.io/nvidia/tritonserver:24.03-trtllm-python-py3",
    valueHint: "<image>",
    flag: false,
    parse: imageRef,
  }),
  port: spec({
    group: "serve",
    description: "Triton HTTP port on the host",
    default: 8000,
    valueHint: "<port>",
    flag: true,
    parse: port,
  }),
  grpcPort: spec({
    group: "serve",
    description: "Triton gRPC port on the host",
    default: 8001,
    valueHint: "<port>",
    flag: true,
    parse: port,
  }),
  metricsPort: spec({
    group: "serve",
    description: "Triton metrics port on the host",
    default: 8002,
    valueHint: "<port>",
    flag: true,
    parse: port,
  }),
  openaiPort: spec({
    group: "serve",
    description: "port of the OpenAI-compatible API that `serve` runs beside Triton (0: none)",
    default: 9000,
    valueHint: "<port>",
    flag: true,
    parse: integer(0, 65535),
  }),
  apiKey: spec<string | null>({
    group: "serve",
    description: "API key the OpenAI-compatible API asks for (a secret: better in LLAMA3_TRT_API_KEY than on a command line; never printed)",
    default: null,
    valueHint: "<key>",
    flag: true,
    parse: (raw) => (raw === null || raw === "" ? ok(null) : typeof raw === "string" && raw.trim().length >= 8 && !/\s/.test(raw.trim()) ? ok(raw.trim()) : fail("a key of at least 8 characters without spaces")),
  }),
  host: spec({
    group: "serve",
    description: "host address the ports are published on (0.0.0.0 exposes them to the network)",
    default: "127.0.0.1",
    valueHint: "<ip>",
    flag: true,
    parse: parseHost,
  }),
  workdir: spec({
    group: "workdir",
    description: "folder for state, logs, checkouts, checkpoint, engine and model repository",
    default: "./llama3-trt",
    valueHint: "<dir>",
    // The global `-w, --workdir` option sets it; see program.ts.
    flag: false,
    parse: path,
  }),
} as const;

export type SettingKey = keyof typeof settingsSchema;
export const settingKeys = Object.keys(settingsSchema) as SettingKey[];

type ValueOf<S> = S extends SettingSpec<infer T> ? T : never;
export type Settings = { readonly [K in SettingKey]: ValueOf<(typeof settingsSchema)[K]> };

/** `maxBatchSize` → `max_batch_size` (config file key). */
export function fileKey(key: SettingKey): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** `maxBatchSize` → `LLAMA3_TRT_MAX_BATCH_SIZE`. */
export function envName(key: SettingKey): string {
  return `LLAMA3_TRT_${fileKey(key).toUpperCase()}`;
}

/** `maxBatchSize` → `--max-batch-size`. */
export function flagName(key: SettingKey): string {
  return `--${fileKey(key).replace(/_/g, "-")}`;
}

/** Renders a value the way a user would write it in a file or on the command line. */
export function formatValue(value: unknown): string {
  if (value === null) return "";
  if (Array.isArray(value)) return value.join(",");
  return String(value);
}
