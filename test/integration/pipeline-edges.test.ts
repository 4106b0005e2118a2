import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { containersWithLabel, imageId, removeImageTag } from "../helpers/docker.ts";
import { builtSandbox, plan, type Sandbox, sandbox, stateOf } from "../helpers/product.ts";
import { useWorld, type World } from "../helpers/world.ts";


describe("pipeline edges against the test world", { timeout: 300_000 }, () => {
  let world: World;
  let built: Sandbox;

  beforeAll(async () => {
    world = useWorld();
    built = await builtSandbox(world);
  });
  afterAll(async () => {
    await built[Symbol.asyncDispose]();
    await world[Symbol.asyncDispose]();
  });

  it.each([
    [["--tp", "2"], { checkpoint: "stale", engine: "stale", "model-repo": "stale", weights: "done" }, "checkpoint", "tp changed 1 → 2"],
    [["--quantize", "int8"], { checkpoint: "stale", engine: "stale", weights: "done" }, "checkpoint", "quantize changed none → int8"],
    [["--max-input-len", "2048"], { checkpoint: "done", engine: "stale", "model-repo": "stale" }, "engine", "maxInputLen changed 4096 → 2048"],
    [["--max-output-len", "512"], { checkpoint: "done", engine: "stale" }, "engine", "maxOutputLen changed 1024 → 512"],
  ])("plan %j marks exactly the right steps stale", async (args, states, step, reason) => {
    const steps = await plan(built, args);
    expect(stateOf(steps)).toMatchObject({ "trtllm-repo": "done", "backend-repo": "done", "build-image": "done", ...states });
    expect(steps.find((s) => s.id === step)?.reason).toBe(reason);
  });

  it("a changed source ref makes its clone stale, and only what reads it", async () => {
    const steps = await plan(built, [], { LLAMA3_TRT_BACKEND_REPO_REF: "main" });
    expect(stateOf(steps)).toMatchObject({ "backend-repo": "stale", "trtllm-repo": "done", engine: "done", "model-repo": "stale" });
    expect(steps.find((s) => s.id === "backend-repo")?.reason).toBe("ref changed v0.8.0 → main");
  });

  it("--from runs that step and the ones after it, even when up to date only with --force", async () => {
    const result = await built.run(["build", "--from", "engine", "--force", "--json"]);
    expect(result.exitCode, result.stderr).toBe(0);
    const actions = Object.fromEntries((JSON.parse(result.stdout) as { steps: { id: string; action: string }[] }).steps.map((s) => [s.id, s.action]));
    expect(actions).toEqual({
      "trtllm-repo": "not-selected",
      "backend-repo": "not-selected",
      weights: "not-selected",
      "build-image": "not-selected",
      checkpoint: "not-selected",
      engine: "ran",
      "model-repo": "ran",
    });
  });

  it("the leftovers of a clone killed half-way are cleared, and a checkout without the tag's files is refused", async () => {
    await using box = sandbox(world);
    // What `kill -9` during `git clone` leaves: a staging folder, never the final one (case 19).
    const leftover = join(box.workdir, "repos", "TensorRT-LLM.tmp-0000dead");
    mkdirSync(join(leftover, "examples"), { recursive: true });
    writeFileSync(join(leftover, "examples", "half.py"), "");
    expect(stateOf(await plan(box))["trtllm-repo"]).toBe("pending");
    const result = await box.run(["build", "--only", "trtllm-repo"]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(readdirSync(join(box.workdir, "repos"))).toEqual(["TensorRT-LLM"]);
    // The backend repository's URL given for TensorRT-LLM: the files the steps need are not there.
    const wrong = await box.run(["build", "--only", "trtllm-repo", "--force"], { LLAMA3_TRT_TRTLLM_REPO_URL: world.env.LLAMA3_TRT_BACKEND_REPO_URL });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toContain("has no examples/llama/convert_checkpoint.py, examples/run.py: is it the right repository and ref?");
    expect(readdirSync(join(box.workdir, "repos"))).toEqual(["TensorRT-LLM"]);
  });

  it("a ref that does not exist fails the clone with what to check", async () => {
    await using box = sandbox(world);
    const result = await box.run(["build", "--only", "backend-repo"], { LLAMA3_TRT_BACKEND_REPO_REF: "v9.9.9" });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`Could not clone ${world.env.LLAMA3_TRT_BACKEND_REPO_URL} at v9.9.9`);
    const repos = join(box.workdir, "repos");
    expect(existsSync(repos) ? readdirSync(repos) : []).toEqual([]);
  });

  it.each([
    ["--upload-pack=touch /tmp/llama3-trt-pwn1"],
    ["ext::sh -c touch% /tmp/llama3-trt-pwn2"],
  ])("a hostile repository URL %j is refused before git runs (exit 2)", async (url) => {
    await using box = sandbox(world);
    const result = await box.run(["build"], { LLAMA3_TRT_TRTLLM_REPO_URL: url });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("LLAMA3_TRT_TRTLLM_REPO_URL: expected an https://, ssh://, git:// or file:// URL");
    expect(existsSync("/tmp/llama3-trt-pwn1") || existsSync("/tmp/llama3-trt-pwn2")).toBe(false);
    expect(existsSync(box.workdir)).toBe(false);
  });

  it("builds the TensorRT-LLM image from templates/ on the CUDA base when it is a local name, then converts with it", async () => {
    await using box = sandbox(world);
    await using w = useWorld();
    const tag = `llama3-trt/tensorrt-llm:it-${Date.now()}`;
    const env = { LLAMA3_TRT_BUILD_IMAGE: tag };
    await removeImageTag(world.env.LLAMA3_TRT_BUILD_BASE_IMAGE, { force: true }).catch(() => {});
    try {
      const planned = (await plan(box, [], env)).find((s) => s.id === "build-image");
      expect(planned?.image).toEqual({ ref: tag, action: "build", base: world.env.LLAMA3_TRT_BUILD_BASE_IMAGE, recipe: "templates/build-image/Dockerfile" });
      const result = await box.run(["build", "--only", "build-image"], env);
      expect(result.exitCode, result.stderr).toBe(0);
      expect(await imageId(tag)).toBeDefined();
      // The recipe's own commands ran against the stand-in apt-get and pip.
      const pip = await w.invocationList("pip");
      expect(pip.some((i) => i.argv.includes("tensorrt_llm==0.8.0"))).toBe(true);
      const log = await box.run(["build", "--only", "build-image", "--json"], env);
      expect(JSON.parse(log.stdout).steps.find((s: { id: string }) => s.id === "build-image").action).toBe("skipped");
    } finally {
      await removeImageTag(tag, { force: true }).catch(() => {});
    }
  });

  it("pulls a missing image from its registry, and an image that does not exist fails the step", async () => {
    await using box = sandbox(world);
    await removeImageTag(world.env.LLAMA3_TRT_BUILD_IMAGE, { force: true }).catch(() => {});
    const pulled = await box.run(["build", "--only", "build-image"]);
    expect(pulled.exitCode, pulled.stderr).toBe(0);
    expect(await imageId(world.env.LLAMA3_TRT_BUILD_IMAGE)).toBeDefined();
    const missing = `${world.world.registry}/nvidia/nothing-here:1.0`;
    const failed = await box.run(["build", "--only", "build-image"], { LLAMA3_TRT_BUILD_IMAGE: missing });
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toContain(`Step build-image failed: could not pull ${missing}`);
  });

  it("clean removes the built outputs but keeps the Hugging Face cache; --all removes that too", async () => {
    await using box = sandbox(world);
    expect((await box.run(["build"])).exitCode).toBe(0);
    const cache = join(box.dir, "home/.cache/huggingface/hub/models--meta-llama--Meta-Llama-3-8B-Instruct");
    const cleaned = await box.run(["clean"]);
    expect(cleaned.exitCode, cleaned.stderr).toBe(0);
    expect(readdirSync(box.workdir)).toEqual([]);
    expect(existsSync(cache)).toBe(true);
    expect(stateOf(await plan(box))).toMatchObject({ weights: "pending", engine: "pending" });
    expect((await box.run(["clean", "--all"])).exitCode).toBe(0);
    expect(existsSync(cache)).toBe(false);
    expect(await containersWithLabel("dev.llama3-trt.workdir", box.workdirId)).toEqual([]);
  });
});

describe("build --dry-run", { timeout: 120_000 }, () => {
  it("prints exactly what plan prints, and runs nothing", async () => {
    await using w = useWorld();
    await using box = sandbox(w);
    const planned = await box.run(["plan", "--json"]);
    const dry = await box.run(["build", "--dry-run", "--json"]);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stdout).toBe(planned.stdout);
    expect(await w.invocations()).toBe(0);
    expect(existsSync(join(box.workdir, "state.json"))).toBe(false);
  });
});
