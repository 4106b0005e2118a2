import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../src/common/errors.ts";
import { resolveSettings, type ResolveInput } from "../../../src/config/resolve.ts";
import { settingKeys, settingsSchema } from "../../../src/config/schema.ts";
import { tempDir } from "../../helpers/tmp.ts";

function resolveIn(dir: string, input: Partial<ResolveInput> = {}) {
  return resolveSettings({ flags: {}, env: {}, cwd: dir, ...input });
}

function issuesOf(run: () => unknown): readonly string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("settings precedence", () => {
  it("uses the defaults when nothing is given", () => {
    using dir = tempDir();
    const { settings, sources, configFile } = resolveIn(dir.path);
    expect(configFile).toBeNull();
    for (const key of settingKeys) {
      expect(sources[key]).toBe("default");
      if (key !== "workdir") expect(settings[key]).toEqual(settingsSchema[key].default);
    }
    expect(settings.workdir).toBe(join(dir.path, "llama3-trt"));
  });

  it("ranks flags over environment over file over defaults, per key", () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, "llama3-trt.yaml"), "dtype: float16\nmax_batch_size: 8\ntp: 2\nport: 9100\n");
    const { settings, sources } = resolveIn(dir.path, {
      flags: { dtype: "bfloat16" },
      env: { LLAMA3_TRT_DTYPE: "float16", LLAMA3_TRT_MAX_BATCH_SIZE: "16", LLAMA3_TRT_GPUS: "none" },
    });
    expect(settings.dtype).toBe("bfloat16");
    expect(sources.dtype).toBe("flag");
    expect(settings.maxBatchSize).toBe(16);
    expect(sources.maxBatchSize).toBe("env");
    expect(settings.tp).toBe(2);
    expect(sources.tp).toBe("file");
    expect(settings.port).toBe(9100);
    expect(settings.gpus).toBe("none");
    expect(settings.quantize).toBe("none");
    expect(sources.quantize).toBe("default");
  });

  it("reads llama3-trt.json as well, and an explicit --config path", () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, "llama3-trt.json"), JSON.stringify({ quantize: "int4", gpus: "0,1", tp: 2 }));
    const fromDefault = resolveIn(dir.path);
    expect(fromDefault.settings.quantize).toBe("int4");
    expect(fromDefault.settings.gpus).toEqual(["0", "1"]);
    writeFileSync(join(dir.path, "other.yaml"), "quantize: int8\n");
    expect(resolveIn(dir.path, { configPath: "other.yaml" }).settings.quantize).toBe("int8");
  });

  it("resolves relative folders against the config file's folder, and flags against the cwd", () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, "conf.yaml"), "workdir: ./from-file\nmodel_dir: weights\n");
    const fromFile = resolveIn("/", { configPath: join(dir.path, "conf.yaml") });
    expect(fromFile.settings.workdir).toBe(join(dir.path, "from-file"));
    expect(fromFile.settings.modelDir).toBe(join(dir.path, "weights"));
    const fromFlag = resolveIn(dir.path, { flags: { workdir: "w" } });
    expect(fromFlag.settings.workdir).toBe(join(dir.path, "w"));
    const fromEnv = resolveIn(dir.path, { env: { LLAMA3_TRT_WORKDIR: "/abs/w" } });
    expect(fromEnv.settings.workdir).toBe("/abs/w");
  });

  it("freezes the settings", () => {
    using dir = tempDir();
    const { settings } = resolveIn(dir.path);
    expect(Object.isFrozen(settings)).toBe(true);
  });
});

describe("invalid settings", () => {
  const cases: [string, Partial<ResolveInput>, string][] = [
    ["bad enum flag", { flags: { dtype: "fp8" } }, '--dtype: expected one of bfloat16, float16, got "fp8"'],
    ["tp out of range", { flags: { tp: "65" } }, '--tp: expected an integer from 1 to 64, got "65"'],
    ["unknown GPU profile", { flags: { gpu: "h100" } }, '--gpu: expected one of h100-80gb, h200-141gb, a100-80gb, l40s-48gb, a10g-24gb, l4-24gb, got "h100"'],
    ["non-numeric env", { env: { LLAMA3_TRT_MAX_BATCH_SIZE: "big" } }, 'LLAMA3_TRT_MAX_BATCH_SIZE: expected an integer from 1 to 4096, got "big"'],
    ["port with letters", { env: { LLAMA3_TRT_PORT: "80a" } }, 'LLAMA3_TRT_PORT: expected an integer from 1 to 65535, got "80a"'],
    ["zero batch", { flags: { maxBatchSize: "0" } }, '--max-batch-size: expected an integer from 1 to 4096, got "0"'],
    ["bad gpus", { flags: { gpus: "0,x" } }, "--gpus: expected `all`, `none`, or GPU indices/UUIDs separated by commas (e.g. `0,1`), got \"0,x\""],
    ["bad host", { flags: { host: "localhost" } }, '--host: expected an IPv4 address such as `127.0.0.1` or `0.0.0.0`, got "localhost"'],
    ["bad model id", { flags: { model: "Meta-Llama-3" } }, "--model: expected a Hugging Face model id such as `meta-llama/Meta-Llama-3-8B-Instruct`, got \"Meta-Llama-3\""],
    ["bad image", { env: { LLAMA3_TRT_TRITON_IMAGE: "Not An Image" } }, 'LLAMA3_TRT_TRITON_IMAGE: expected a container image reference such as `nvcr.io/nvidia/tritonserver:24.03-trtllm-python-py3`, got "Not An Image"'],
  ];
  it.each(cases)("%s", (_name, input, message) => {
    using dir = tempDir();
    expect(issuesOf(() => resolveIn(dir.path, input))).toEqual([message]);
  });

  it("reports every invalid value at once, each naming its source", () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, "llama3-trt.yaml"), 'port: "80a"\ntp: 0\ndtype: fp8\n');
    const file = join(dir.path, "llama3-trt.yaml");
    expect(issuesOf(() => resolveIn(dir.path))).toEqual([
      `dtype in ${file}: expected one of bfloat16, float16, got "fp8"`,
      `tp in ${file}: expected an integer from 1 to 64, got 0`,
      `port in ${file}: expected an integer from 1 to 65535, got "80a"`,
    ]);
  });

  it.each([
    ["--upload-pack=touch /tmp/pwn"],
    ["-vu"],
    ["ext::sh -c touch% /tmp/pwn"],
    ["http://github.com/NVIDIA/TensorRT-LLM.git"],
    ["not a url"],
  ])("refuses the git URL %s before git could see it", (url) => {
    using dir = tempDir();
    const issues = issuesOf(() => resolveIn(dir.path, { env: { LLAMA3_TRT_TRTLLM_REPO_URL: url } }));
    expect(issues).toEqual([
      `LLAMA3_TRT_TRTLLM_REPO_URL: expected an https://, ssh://, git:// or file:// URL, got ${JSON.stringify(url)}`,
    ]);
  });

  it.each([
    ["https://u:ghp_SENTINELaaaaaaaaaaaaaaaa@github.com/NVIDIA/TensorRT-LLM.git", "https://***@github.com/NVIDIA/TensorRT-LLM.git"],
    ["https://ghp_SENTINELaaaaaaaaaaaaaaaa@github.com/NVIDIA/TensorRT-LLM.git", "https://***@github.com/NVIDIA/TensorRT-LLM.git"],
    ["ssh://git:SENTINELpassword@example.com/x.git", "ssh://***@example.com/x.git"],
  ])("refuses a git URL with credentials in it, without repeating them (case 37)", (url, shown) => {
    using dir = tempDir();
    const issues = issuesOf(() => resolveIn(dir.path, { env: { LLAMA3_TRT_TRTLLM_REPO_URL: url } }));
    expect(issues).toEqual([
      "LLAMA3_TRT_TRTLLM_REPO_URL: expected an https://, ssh://, git:// or file:// URL without credentials in it " +
        `(git would show them in \`ps\` and keep them in .git/config): use a git credential helper, or ssh://, got "${shown}"`,
    ]);
  });

  it("accepts an ssh user name, which is no secret", () => {
    using dir = tempDir();
    expect(resolveIn(dir.path, { env: { LLAMA3_TRT_TRTLLM_REPO_URL: "ssh://git@github.com/NVIDIA/TensorRT-LLM.git" } }).settings.trtllmRepoUrl).toBe(
      "ssh://git@github.com/NVIDIA/TensorRT-LLM.git",
    );
  });

  it.each([["--output=/tmp/x"], ["v0.8.0..main"], ["a b"], ["-b"]])("refuses the git ref %s", (ref) => {
    using dir = tempDir();
    const issues = issuesOf(() => resolveIn(dir.path, { env: { LLAMA3_TRT_BACKEND_REPO_REF: ref } }));
    expect(issues[0]).toMatch(/^LLAMA3_TRT_BACKEND_REPO_REF: expected a git branch, tag or commit/);
  });

  it("names the file, line and column of a syntax error", () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, "llama3-trt.yaml"), "dtype: float16\ntp: [1, 2\nport: 9000\n");
    const [issue] = issuesOf(() => resolveIn(dir.path));
    expect(issue).toMatch(new RegExp(`^${join(dir.path, "llama3-trt.yaml")}:\\d+:\\d+: `));
  });

  it("suggests the key a typo meant", () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, "llama3-trt.yaml"), "max_batchsize: 8\n");
    expect(issuesOf(() => resolveIn(dir.path))).toEqual([
      `${join(dir.path, "llama3-trt.yaml")}:1:1: unknown key \`max_batchsize\` (did you mean \`max_batch_size\`?)`,
    ]);
  });

  it("reports a duplicate key in a JSON file instead of keeping the last", () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, "llama3-trt.json"), '{ "tp": 1, "tp": 2 }');
    const [issue] = issuesOf(() => resolveIn(dir.path));
    expect(issue).toMatch(/llama3-trt\.json:1:\d+: Map keys must be unique/);
  });

  it("refuses a YAML alias bomb in under a second, with bounded memory (case 34d)", () => {
    using dir = tempDir();
    // Nine levels of nine aliases each: 9^9 (387 million) nodes if expanded.
    const levels = ["a: &a [x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i <= 8; i++) levels.push(`${"abcdefghi"[i]}: &${"abcdefghi"[i]} [${Array(9).fill(`*${"abcdefghi"[i - 1]}`).join(", ")}]`);
    writeFileSync(join(dir.path, "llama3-trt.yaml"), `${levels.join("\n")}\n`);
    const heap = process.memoryUsage().heapUsed;
    const started = performance.now();
    const [issue] = issuesOf(() => resolveIn(dir.path));
    const ms = performance.now() - started;
    // The promise is 1 s; the refusal takes milliseconds. An expansion would take minutes and gigabytes.
    expect(ms).toBeLessThan(1_000);
    expect(process.memoryUsage().heapUsed - heap).toBeLessThan(64 * 1024 * 1024);
    expect(issue).toBe(`${join(dir.path, "llama3-trt.yaml")}: Excessive alias count indicates a resource exhaustion attack`);
  });

  it("refuses a file that is not a mapping", () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, "llama3-trt.yaml"), "- dtype\n- tp\n");
    expect(issuesOf(() => resolveIn(dir.path))[0]).toMatch(/expected a mapping of settings/);
  });

  it("a malformed API key is refused without being echoed; a good one is a setting like any other", () => {
    using dir = tempDir();
    const issues = issuesOf(() => resolveIn(dir.path, { env: { LLAMA3_TRT_API_KEY: "sk secret" } }));
    expect(issues).toEqual(["LLAMA3_TRT_API_KEY: expected a key of at least 8 characters without spaces"]);
    expect(resolveIn(dir.path, { env: { LLAMA3_TRT_API_KEY: "sk-0123456789" } }).settings.apiKey).toBe("sk-0123456789");
    expect(resolveIn(dir.path, { env: { LLAMA3_TRT_API_KEY: "" } }).settings.apiKey).toBeNull();
  });

  it("refuses a missing --config file and two default files", () => {
    using dir = tempDir();
    expect(issuesOf(() => resolveIn(dir.path, { configPath: "nope.yaml" }))).toEqual([
      `--config: ${join(dir.path, "nope.yaml")} does not exist (create it with \`llama3-trt init\`)`,
    ]);
    writeFileSync(join(dir.path, "llama3-trt.yaml"), "");
    writeFileSync(join(dir.path, "llama3-trt.json"), "{}");
    expect(issuesOf(() => resolveIn(dir.path))[0]).toMatch(/^both .* exist: keep one, or choose with --config$/);
  });

  it.each<[string, Partial<ResolveInput>, string]>([
    ["ports must differ", { flags: { grpcPort: "8000" } }, "grpc_port and port are both 8000: each server port needs its own number"],
    ["the OpenAI port too", { flags: { openaiPort: "8002" } }, "openai_port and metrics_port are both 8002: each server port needs its own number"],
    ["--model-dir excludes --revision", { flags: { modelDir: "/m", revision: "abc" } }, "--model-dir and --revision (abc) together make no sense: local weights have no Hub revision"],
    ["tp needs that many GPUs", { flags: { tp: "4", gpus: "0,1" } }, "--tp 4 needs 4 GPUs but --gpus lists 2 (0,1)"],
  ])("cross-field rule: %s", (_name, input, message) => {
    using dir = tempDir();
    expect(issuesOf(() => resolveIn(dir.path, input))).toEqual([message]);
  });

  it("warns about a misspelt LLAMA3_TRT_ variable without refusing to run", () => {
    using dir = tempDir();
    const { warnings } = resolveIn(dir.path, { env: { LLAMA3_TRT_GPUSS: "none" } });
    expect(warnings).toEqual(["ignoring LLAMA3_TRT_GPUSS (did you mean LLAMA3_TRT_GPUS?)"]);
  });
});
