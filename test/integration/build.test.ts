import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { containersWithLabel } from "../helpers/docker.ts";
import { clearBehaviour, builtSandbox, plan, type Sandbox, sandbox, setBehaviour, stateOf, until } from "../helpers/product.ts";
import { useWorld, type World } from "../helpers/world.ts";

const stepIds = ["trtllm-repo", "backend-repo", "weights", "build-image", "checkpoint", "engine", "model-repo"];

const reasonOf = (steps: { id: string; reason: string }[], id: string) => steps.find((s) => s.id === id)?.reason;

async function containersOf(box: Sandbox) {
  return containersWithLabel("dev.llama3-trt.workdir", box.workdirId);
}

describe("build against the test world", { timeout: 300_000 }, () => {
  let world: World;
  let built: Sandbox;

  beforeAll(async () => {
    world = useWorld();
    built = await builtSandbox(world);
    return async () => {
      await built[Symbol.asyncDispose]();
      await world[Symbol.asyncDispose]();
    };
  });

  afterEach(async () => {
    await clearBehaviour(world);
  });

  it("builds every step from an empty workdir into the contract's layout", async () => {
    const state = JSON.parse(readFileSync(join(built.workdir, "state.json"), "utf8")) as { steps: Record<string, unknown> };
    expect(Object.keys(state.steps).sort()).toEqual([...stepIds].sort());
    for (const id of stepIds) expect(existsSync(join(built.workdir, "logs", `${id}.log`)), id).toBe(true);
    expect(readdirSync(join(built.workdir, "model-repo")).sort()).toEqual(
      ["ensemble", "postprocessing", "preprocessing", "tensorrt_llm", "tensorrt_llm_bls"],
    );
    expect(readdirSync(join(built.workdir, "engine")).sort()).toContain("rank0.engine");
    // Weights went to the standard Hugging Face cache, without original/.
    const snapshots = join(built.dir, "home/.cache/huggingface/hub/models--meta-llama--Meta-Llama-3-8B-Instruct/snapshots");
    const [commit] = readdirSync(snapshots);
    expect(readdirSync(join(snapshots, commit as string))).not.toContain("original");
    expect(await containersOf(built)).toEqual([]);
  });

  it("a second build starts no container and runs no stand-in", async () => {
    await using w = useWorld();
    const started = Date.now();
    const result = await built.run(["build", "--json"]);
    const seconds = (Date.now() - started) / 1000;
    expect(result.exitCode, result.stderr).toBe(0);
    const outcome = JSON.parse(result.stdout) as { steps: { id: string; action: string }[] };
    expect(outcome.steps.map((s) => s.action)).toEqual(Array(7).fill("skipped"));
    expect(await w.invocations()).toBe(0);
    // Reported, not asserted: a timing assertion would be a flaky test (bench/ measures it).
    console.info(`no-op build: ${seconds.toFixed(2)} s`);
  });

  it("plan --json has the contract's shape", async () => {
    const steps = await plan(built);
    expect(steps.map((s) => s.id)).toEqual(stepIds);
    for (const step of steps) {
      expect(step.state).toBe("done");
      expect(typeof step.reason).toBe("string");
    }
    const git = steps.find((s) => s.id === "trtllm-repo")?.git;
    expect(git).toEqual({ url: world.env.LLAMA3_TRT_TRTLLM_REPO_URL, ref: "v0.8.0", dir: join(built.workdir, "repos/TensorRT-LLM") });
    const weights = steps.find((s) => s.id === "weights")?.weights;
    expect(weights?.repo).toBe("meta-llama/Meta-Llama-3-8B-Instruct");
    expect(weights?.files.map((f) => f.path)).toContain("config.json");
    expect(weights?.files.every((f) => !f.path.startsWith("original/") && f.size > 0)).toBe(true);
    const engine = steps.find((s) => s.id === "engine")?.container;
    expect(engine?.image).toBe(world.env.LLAMA3_TRT_BUILD_IMAGE);
    expect(engine?.cmd.slice(0, 3)).toEqual(["trtllm-build", "--checkpoint_dir", "/llama3-trt/checkpoint"]);
    expect(engine?.gpus).toBe("none");
    expect(engine?.workingDir).toBe("/llama3-trt/output");
    expect(engine?.mounts).toContainEqual({ host: join(built.workdir, "checkpoint"), container: "/llama3-trt/checkpoint", readOnly: true });
    // The token never appears in a plan.
    const raw = (await built.run(["plan", "--json"])).stdout;
    expect(raw).not.toContain(world.env.HF_TOKEN);
  });

  it("--max-batch-size makes engine and model-repo stale, not weights or checkpoint", async () => {
    const steps = await plan(built, ["--max-batch-size", "8"]);
    expect(stateOf(steps)).toEqual({
      "trtllm-repo": "done",
      "backend-repo": "done",
      weights: "done",
      "build-image": "done",
      checkpoint: "done",
      engine: "stale",
      "model-repo": "stale",
    });
    expect(reasonOf(steps, "engine")).toBe("maxBatchSize changed 64 → 8");
  });

  it("--dtype makes checkpoint, engine and model-repo stale and names the change", async () => {
    const steps = await plan(built, ["--dtype", "float16"]);
    expect(stateOf(steps)).toMatchObject({ weights: "done", checkpoint: "stale", engine: "stale", "model-repo": "stale" });
    expect(reasonOf(steps, "checkpoint")).toBe("dtype changed bfloat16 → float16");
    expect(reasonOf(steps, "engine")).toMatch(/dtype changed bfloat16 → float16/);
  });

  it("--gpus does not change what is built", async () => {
    const steps = await plan(built, ["--gpus", "0"]);
    expect(Object.values(stateOf(steps))).toEqual(Array(7).fill("done"));
  });

  it("a failing trtllm-build exits 1 naming the step, its log and the last lines; the old engine stays recorded as gone", async () => {
    await setBehaviour(world, "trtllm-build", { exitCode: 1 }, 1);
    const result = await built.run(["build", "--force", "engine"]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain("Step engine failed: trtllm-build exited with code 1");
    expect(result.stderr).toContain(`Full log: ${join(built.workdir, "logs/engine.log")}`);
    expect(result.stderr).toContain("Last lines:");
    expect(await containersOf(built)).toEqual([]);
    const steps = await plan(built);
    expect(stateOf(steps).engine).toBe("pending");
    expect(stateOf(steps).checkpoint).toBe("done");
    const rebuilt = await built.run(["build"]);
    expect(rebuilt.exitCode, rebuilt.stderr).toBe(0);
  });

  it("an OOM-killed step says so", async () => {
    await setBehaviour(world, "trtllm-build", { oom: true }, 1);
    const result = await built.run(["build", "--force", "engine"]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/Step engine failed: trtllm-build was killed by the kernel's OOM killer/);
    expect(await containersOf(built)).toEqual([]);
    expect((await built.run(["build"])).exitCode).toBe(0);
  });

  it("Ctrl-C during engine stops its container, exits 130, and the rerun resumes at engine", async () => {
    await using w = useWorld();
    // As PID 1 without a handler, the real problem: the tool ignores SIGINT (reliability D4).
    await setBehaviour(world, "trtllm-build", { sleepSeconds: 120, ignoreSigint: true }, 1);
    const run = built.start(["build", "--force", "engine"]);
    await until(async () => (await w.invocations("trtllm-build")) === 1, "trtllm-build to start");
    await until(async () => (await containersOf(built)).some((c) => c.state === "running"), "the engine container");

    // A second build meanwhile is refused, naming the holder; plan still works.
    const second = await built.run(["build"]);
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`locked by pid ${run.child.pid} on host .* \\(build, started`));
    expect((await built.run(["plan"])).exitCode).toBe(0);

    const interrupted = Date.now();
    run.child.kill("SIGINT");
    const result = await run.exited();
    expect(result.exitCode).toBe(130);
    expect(Date.now() - interrupted).toBeLessThan(30_000);
    expect(result.stderr).toContain("interrupted during engine");
    expect(await containersOf(built)).toEqual([]);
    expect(existsSync(join(built.workdir, ".lock"))).toBe(false);
    expect(readdirSync(built.workdir).filter((n) => n.includes(".tmp-"))).toEqual([]);

    const steps = await plan(built);
    expect(stateOf(steps)).toMatchObject({ checkpoint: "done", engine: "pending", "model-repo": "stale" });
    const rerun = await built.run(["build", "--json"]);
    expect(rerun.exitCode, rerun.stderr).toBe(0);
    const actions = Object.fromEntries((JSON.parse(rerun.stdout) as { steps: { id: string; action: string }[] }).steps.map((s) => [s.id, s.action]));
    // The rebuilt engine is identical to the one the model repository was made for, so that stays.
    expect(actions).toEqual({
      "trtllm-repo": "skipped",
      "backend-repo": "skipped",
      weights: "skipped",
      "build-image": "skipped",
      checkpoint: "skipped",
      engine: "ran",
      "model-repo": "skipped",
    });
  });

  it("a second Ctrl-C kills the container at once", async () => {
    await using w = useWorld();
    // Deaf to SIGTERM too, so the graceful stop would take docker's whole grace period.
    await setBehaviour(world, "trtllm-build", { sleepSeconds: 120, ignoreSigint: true, ignoreSigterm: true }, 1);
    const run = built.start(["build", "--force", "engine"]);
    await until(async () => (await w.invocations("trtllm-build")) === 1, "trtllm-build to start");
    await until(async () => (await containersOf(built)).some((c) => c.state === "running"), "the engine container");
    run.child.kill("SIGINT");
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const second = Date.now();
    run.child.kill("SIGINT");
    const result = await run.exited();
    expect(result.exitCode).toBe(130);
    expect(result.stderr).toContain("second interrupt");
    // Well inside docker stop's 10 s grace period: it did not wait for it.
    expect(Date.now() - second).toBeLessThan(8_000);
    await until(async () => (await containersOf(built)).length === 0, "the container to be gone", 10_000);
    expect((await built.run(["build"])).exitCode).toBe(0);
  });

  it("kill -9 of the CLI leaves its container running; status shows it; the next build reaps it and rebuilds", async () => {
    await using w = useWorld();
    await setBehaviour(world, "trtllm-build", { sleepSeconds: 120 }, 1);
    const run = built.start(["build", "--force", "engine"]);
    await until(async () => (await w.invocations("trtllm-build")) === 1, "trtllm-build to start");
    run.child.kill("SIGKILL");
    await run.exited();
    const left = await containersOf(built);
    expect(left.map((c) => c.labels["dev.llama3-trt.role"])).toEqual(["engine"]);

    const status = await built.run(["status", "--json"]);
    const doc = JSON.parse(status.stdout) as { orphans: { step: string }[]; lock: { alive: boolean } | null };
    expect(doc.orphans.map((o) => o.step)).toEqual(["engine"]);
    expect(doc.lock?.alive).toBe(false);

    const rerun = await built.run(["build"]);
    expect(rerun.exitCode, rerun.stderr).toBe(0);
    expect(rerun.stderr).toMatch(/removed container .* left running by a killed run/);
    expect(await containersOf(built)).toEqual([]);
    expect(stateOf(await plan(built)).engine).toBe("done");
  });

  /** Runs `build --force engine` until a pause point, then kills it with SIGKILL there. */
  async function killAt(point: string): Promise<void> {
    const marker = join(built.dir, `paused-${Date.now()}`);
    const run = built.start(["build", "--force", "engine"], { LLAMA3_TRT_TEST_PAUSE_AT: point, LLAMA3_TRT_TEST_PAUSE_MARKER: marker });
    await until(() => existsSync(marker), `the build to reach ${point}`);
    run.child.kill("SIGKILL");
    await run.exited();
  }

  it("kill -9 after the engine is built but before it is recorded: the rerun builds it again", async () => {
    await killAt("engine:before-record");
    expect(stateOf(await plan(built)).engine).toBe("pending");
    await using w = useWorld();
    expect((await built.run(["build"])).exitCode).toBe(0);
    expect(await w.invocations("trtllm-build")).toBe(1);
  });

  it("kill -9 right after the engine is recorded: the rerun does not build it again", async () => {
    await killAt("engine:after-record");
    expect(stateOf(await plan(built)).engine).toBe("done");
    await using w = useWorld();
    expect((await built.run(["build"])).exitCode).toBe(0);
    expect(await w.invocations("trtllm-build")).toBe(0);
  });

  it("kill -9 in the middle of writing state.json leaves the old file whole; the stray temp file is swept", async () => {
    const before = readFileSync(join(built.workdir, "state.json"), "utf8");
    await killAt("state.json:before-rename");
    expect(readFileSync(join(built.workdir, "state.json"), "utf8")).toBe(before);
    expect(readdirSync(built.workdir).filter((n) => n.endsWith(".tmp"))).toHaveLength(1);
    expect((await built.run(["build"])).exitCode).toBe(0);
    expect(readdirSync(built.workdir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
    expect(JSON.parse(readFileSync(join(built.workdir, "state.json"), "utf8")).steps.engine).toBeDefined();
  });

  it("a damaged state.json is refused (exit 2), never read as nothing done", async () => {
    await using box = sandbox(world);
    const first = await box.run(["build", "--only", "trtllm-repo"]);
    expect(first.exitCode, first.stderr).toBe(0);
    writeFileSync(join(box.workdir, "state.json"), '{"version": 1, "steps": {"trtllm-re');
    const result = await box.run(["build"]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${join(box.workdir, "state.json")} is damaged`);
  });

  it("--only refuses to run a step whose inputs are not built", async () => {
    await using box = sandbox(world);
    const result = await box.run(["build", "--only", "engine"]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("Step build-image is pending (not built yet) and a selected step needs it");
  });

  it("no Docker engine: exit 1 within seconds, saying so, nothing changed", async () => {
    await using box = sandbox(world);
    for (const host of ["unix:///nonexistent.sock", "tcp://127.0.0.1:1"]) {
      const started = Date.now();
      const result = await box.run(["build"], { DOCKER_HOST: host });
      expect(result.exitCode).toBe(1);
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(result.stderr).toContain(`Cannot connect to the Docker engine at ${host}`);
      expect(existsSync(join(box.workdir, "state.json"))).toBe(false);
    }
  });

  it("--gpus all on an engine without the NVIDIA runtime is refused before any GPU step", async () => {
    await using box = sandbox(world);
    await using w = useWorld();
    const result = await box.run(["build", "--gpus", "all"]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain("NVIDIA Container Toolkit not configured for this Docker engine");
    expect(result.stderr).toContain("could not select device driver");
    expect(await w.invocations("convert_checkpoint.py")).toBe(0);
    expect(await w.invocations("trtllm-build")).toBe(0);
    expect(await containersOf(box)).toEqual([]);
  });

  it("the token appears in no output, log or state", async () => {
    const files = [join(built.workdir, "state.json"), ...stepIds.map((id) => join(built.workdir, "logs", `${id}.log`))];
    for (const file of files) expect(readFileSync(file, "utf8"), file).not.toContain(world.env.HF_TOKEN);
    const status = await built.run(["status", "--json"]);
    expect(status.stdout + status.stderr).not.toContain(world.env.HF_TOKEN);
  });
});
