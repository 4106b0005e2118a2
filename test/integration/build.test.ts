import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, readlinkSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { containerEvents, containersWithLabel, docker } from "../helpers/docker.ts";
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

  it("a second build starts no container and runs no stand-in, one short line a step", async () => {
    await using w = useWorld();
    const plain = await built.run(["build"]);
    expect(plain.exitCode, plain.stderr).toBe(0);
    expect(plain.stdout.trimEnd().split("\n")).toEqual([...stepIds.map((id) => `· ${id.padEnd(12)}  up to date`), "Everything is up to date."]);
    expect(plain.stderr).toBe("");
    // Only what was selected is shown.
    const only = await built.run(["build", "--only", "weights", "--force"]);
    const shownSteps = new Set([...only.stdout.matchAll(/^[▸✔·✖] (\S+)/gm)].map((m) => m[1]));
    expect([...shownSteps]).toEqual(["weights"]);
    expect(only.stdout).toMatch(/^▸ weights {7}Get the model weights$/m);
    expect(only.stdout).toMatch(/^✔ weights {7}done in \d+\.\d s$/m);
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

  it("each step does exactly the work plan --json showed for it: the very same object (plan = run)", async () => {
    await using box = sandbox(world);
    const planned = await plan(box);
    const result = await box.run(["build"]);
    expect(result.exitCode, result.stderr).toBe(0);
    const records = (JSON.parse(readFileSync(join(box.workdir, "state.json"), "utf8")) as { steps: Record<string, { work: Record<string, unknown> }> }).steps;
    for (const step of planned) {
      const { id, state: _state, reason: _reason, ...work } = step as unknown as Record<string, unknown>;
      const { kind: _kind, ...performed } = records[id as string]?.work ?? {};
      expect(performed, id as string).toEqual(work);
    }
    // What plan shows of the model repository includes the values it fills.
    const files = planned.find((s) => s.id === "model-repo") as unknown as { files: { values: Record<string, string> } };
    expect(files.files.values).toMatchObject({ engine_dir: "/llama3-trt/engine", decoupled_mode: "true", triton_max_batch_size: "64" });
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

  it("a limit the model cannot hold is refused (exit 2) before the stale engine's container starts", async () => {
    await using w = useWorld();
    const since = Math.floor(Date.now() / 1000);
    // plan says so too (exit 2); build stops before any step.
    const planned = await built.run(["plan", "--json", "--max-output-len", "4097"]);
    expect(planned.exitCode, planned.stderr).toBe(2);
    expect((JSON.parse(planned.stdout) as { model: { refusals: { rule: string }[] } }).model.refusals.map((r) => r.rule)).toEqual(["context"]);
    const result = await built.run(["build", "--max-output-len", "4097"]);
    expect(result.exitCode, result.stderr).toBe(2);
    expect(result.stderr).toContain("--max-input-len 4096 + --max-output-len 4097 = 8193 tokens, more than 8192");
    expect(result.stderr).toContain("The largest that works: --max-input-len 4095 (with --max-output-len 4097), or --max-output-len 4096 (with --max-input-len 4096)");
    expect(await containerEvents(since, { "dev.llama3-trt.workdir": built.workdirId })).toEqual([]);
    expect(await w.invocations()).toBe(0);
    // The build that was there is untouched.
    expect(Object.values(stateOf(await plan(built)))).toEqual(Array(7).fill("done"));
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

  it("a failing trtllm-build exits 1 naming the step, its log and the last lines; the old engine stays recorded as gone (case 30)", async () => {
    const before = JSON.parse(readFileSync(join(built.workdir, "state.json"), "utf8")) as { steps: Record<string, unknown> };
    // exit 2: what argparse does with a flag it does not know.
    await setBehaviour(world, "trtllm-build", { exitCode: 2 }, 1);
    const result = await built.run(["build", "--force", "engine"]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain("Step engine failed: trtllm-build exited with code 2");
    expect(result.stderr).toContain(`Full log: ${join(built.workdir, "logs/engine.log")}`);
    // The last lines of the step's log, at most 20 of them, ending with what the tool printed last.
    const quoted = result.stderr.slice(result.stderr.indexOf("Last lines:")).split("\n").slice(1).filter((l) => l.startsWith("    "));
    expect(quoted.length).toBeGreaterThan(0);
    expect(quoted.length).toBeLessThanOrEqual(20);
    const logLines = readFileSync(join(built.workdir, "logs/engine.log"), "utf8").trimEnd().split("\n");
    expect(logLines.map((l) => l.trim())).toEqual(expect.arrayContaining(quoted.map((l) => l.trim())));
    expect(await containersOf(built)).toEqual([]);
    // The other steps' records are untouched; the failed one is not recorded as done.
    const after = JSON.parse(readFileSync(join(built.workdir, "state.json"), "utf8")) as { steps: Record<string, unknown> };
    const { engine: _engine, ...others } = before.steps;
    expect(after.steps).toEqual(others);
    const steps = await plan(built);
    expect(stateOf(steps).engine).toBe("pending");
    expect(stateOf(steps).checkpoint).toBe("done");
    const rebuilt = await built.run(["build"]);
    expect(rebuilt.exitCode, rebuilt.stderr).toBe(0);
  });

  it("an OOM-killed step says so and what to lower (case 30)", async () => {
    await setBehaviour(world, "trtllm-build", { oom: true }, 1);
    const result = await built.run(["build", "--force", "engine"]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/Step engine failed: trtllm-build was killed by the kernel's OOM killer/);
    expect(result.stderr).toContain("--max-batch-size");
    expect(await containersOf(built)).toEqual([]);
    expect((await built.run(["build"])).exitCode).toBe(0);
  });

  it("Ctrl-C during engine stops its container, exits 130, and the rerun resumes at engine (cases 22, 28)", async () => {
    await using w = useWorld();
    // As PID 1 without a handler, the real problem: the tool ignores SIGINT (reliability D4).
    await setBehaviour(world, "trtllm-build", { sleepSeconds: 120, ignoreSigint: true }, 1);
    const run = built.start(["build", "--force", "engine"]);
    await until(async () => (await w.invocations("trtllm-build")) === 1, "trtllm-build to start");
    await until(async () => (await containersOf(built)).some((c) => c.state === "running"), "the engine container");

    // A second build meanwhile is refused at once, naming the holder; plan, status and logs still work.
    const before = readFileSync(join(built.workdir, "state.json"), "utf8");
    const second = await built.run(["build"]);
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toMatch(
      new RegExp(`The workdir ${built.workdir} is locked by pid ${run.child.pid} on host .+ \\(build, started \\d\\d:\\d\\d:\\d\\d, run [0-9a-f]{8}\\)\\. Wait for it to finish or stop it`),
    );
    expect(readFileSync(join(built.workdir, "state.json"), "utf8")).toBe(before);
    expect((await built.run(["plan"])).exitCode).toBe(0);
    const status = await built.run(["status", "--json"]);
    expect(status.exitCode, status.stderr).toBe(0);
    expect((JSON.parse(status.stdout) as { lock: { pid: number; alive: boolean; command: string } }).lock).toMatchObject({ pid: run.child.pid, alive: true, command: "build" });
    expect((await built.run(["logs"])).exitCode).not.toBe(2);

    const interrupted = Date.now();
    run.child.kill("SIGINT");
    const result = await run.exited();
    expect(result.exitCode).toBe(130);
    // The promise: within docker stop's grace period (StopTimeout, 10 s) + 5 s.
    expect(Date.now() - interrupted).toBeLessThan(15_000);
    expect(result.stderr).toContain("interrupted during engine; finished steps are kept. Rerun `llama3-trt build` to continue from engine.");
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

  it("a second Ctrl-C kills the container at once (case 28)", async () => {
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
    expect(result.stderr).toContain("second interrupt: killing the containers of this run now");
    // Well inside docker stop's 10 s grace period: it did not wait for it.
    expect(Date.now() - second).toBeLessThan(8_000);
    // Killed and its removal asked for; the engine may take a moment to finish removing it.
    await until(async () => (await containersOf(built)).length === 0, "the container to be gone", 5_000);
    expect(stateOf(await plan(built)).engine).toBe("pending");
    expect((await built.run(["build"])).exitCode).toBe(0);
    expect(readdirSync(built.workdir).filter((n) => n.includes(".tmp-"))).toEqual([]);
  });

  /** `build --force engine` killed with SIGKILL while trtllm-build runs: returns the orphan it leaves. */
  async function orphanEngine(box: Sandbox): Promise<{ id: string; name: string }> {
    await using w = useWorld();
    await setBehaviour(world, "trtllm-build", { sleepSeconds: 120 }, 1);
    const run = box.start(["build", "--force", "engine"]);
    await until(async () => (await w.invocations("trtllm-build")) === 1, "trtllm-build to start");
    run.child.kill("SIGKILL");
    await run.exited();
    const left = (await containersWithLabel("dev.llama3-trt.workdir", box.workdirId)).filter((c) => c.labels["dev.llama3-trt.role"] === "engine");
    // Docker fact (reliability D4): the container outlives the client that started it.
    expect(left.map((c) => c.state)).toEqual(["running"]);
    return { id: (left[0] as { id: string }).id, name: (left[0] as { name: string }).name };
  }

  it("kill -9 during engine leaves its container running; status names it; stop removes it (case 29)", async () => {
    const orphan = await orphanEngine(built);
    const status = await built.run(["status", "--json"]);
    const doc = JSON.parse(status.stdout) as { orphans: { name: string; step: string; state: string }[]; lock: { alive: boolean } | null };
    expect(doc.orphans).toEqual([expect.objectContaining({ name: orphan.name, step: "engine", state: "running" })]);
    expect(doc.lock?.alive).toBe(false);
    expect((await built.run(["status"])).stdout).toContain(`Orphaned container ${orphan.name} (running)`);

    const stopped = await built.run(["stop"]);
    expect(stopped.exitCode, stopped.stderr).toBe(0);
    expect(stopped.stderr).toMatch(new RegExp(`removed container ${orphan.name} left running by a killed run [0-9a-f]{8} \\(engine\\)`));
    expect(await containersOf(built)).toEqual([]);
    expect(stateOf(await plan(built)).engine).toBe("pending");
    expect((await built.run(["build"])).exitCode).toBe(0);
  });

  it("the next build removes the orphan before trtllm-build starts again, and leaves a live ask --local alone (case 29)", async () => {
    // Another process of the same workdir, alive: its container is not an orphan.
    await setBehaviour(world, "run.py", { sleepSeconds: 60 }, 1);
    const asking = built.start(["ask", "--local", "hello"]);
    await until(
      async () => (await containersOf(built)).some((c) => c.labels["dev.llama3-trt.role"] === "ask-local" && c.state === "running"),
      "the ask --local container",
    );
    try {
      const orphan = await orphanEngine(built);
      const since = Math.floor(Date.parse((await docker().getContainer(orphan.id).inspect()).Created) / 1000);
      const rerun = await built.run(["build", "--json"]);
      expect(rerun.exitCode, rerun.stderr).toBe(0);
      expect(rerun.stderr).toMatch(new RegExp(`removed container ${orphan.name} left running by a killed run`));
      expect((JSON.parse(rerun.stdout) as { steps: { id: string; action: string }[] }).steps.find((s) => s.id === "engine")?.action).toBe("ran");
      // In the engine's own order of events: the orphan was destroyed before the new engine container was created.
      const events = (await containerEvents(since, { "dev.llama3-trt.workdir": built.workdirId })).filter((e) => e.labels["dev.llama3-trt.role"] === "engine");
      const order = events.filter((e) => e.action === "create" || e.action === "destroy").map((e) => `${e.action} ${e.id === orphan.id ? "orphan" : "new"}`);
      const fromOrphan = order.slice(order.indexOf("create orphan"));
      // (The engine may create two containers: the memlock retry of an engine that refuses it.)
      expect(fromOrphan.slice(0, 3)).toEqual(["create orphan", "destroy orphan", "create new"]);
      expect(fromOrphan.slice(2).every((e) => e.endsWith("new"))).toBe(true);
      // The live ask --local kept its container.
      const live = (await containersOf(built)).filter((c) => c.labels["dev.llama3-trt.role"] === "ask-local");
      expect(live.map((c) => c.state)).toEqual(["running"]);
    } finally {
      asking.child.kill("SIGINT");
      await asking.exited();
    }
    expect((await asking.exited()).exitCode).toBe(130);
    expect(await containersOf(built)).toEqual([]);
    expect(stateOf(await plan(built)).engine).toBe("done");
  });

  it("clean removes a killed run's orphan too (case 29)", async () => {
    await using box = await builtSandbox(world);
    const orphan = await orphanEngine(box);
    const cleaned = await box.run(["clean"]);
    expect(cleaned.exitCode, cleaned.stderr).toBe(0);
    expect(cleaned.stderr).toMatch(new RegExp(`removed container ${orphan.name} left running by a killed run [0-9a-f]{8} \\(engine\\)`));
    expect(await containersWithLabel("dev.llama3-trt.workdir", box.workdirId)).toEqual([]);
    expect(readdirSync(box.workdir)).toEqual([]);
  });

  /** Runs `build --force engine` until a pause point, then kills it with SIGKILL there. */
  async function killAt(point: string): Promise<void> {
    const marker = join(built.dir, `paused-${Date.now()}`);
    const run = built.start(["build", "--force", "engine"], { LLAMA3_TRT_TEST_PAUSE_AT: point, LLAMA3_TRT_TEST_PAUSE_MARKER: marker });
    await until(() => existsSync(marker), `the build to reach ${point}`);
    run.child.kill("SIGKILL");
    await run.exited();
  }

  it("kill -9 after the engine is built but before it is recorded: the rerun builds it again (case 24)", async () => {
    await killAt("engine:before-record");
    expect(stateOf(await plan(built)).engine).toBe("pending");
    await using w = useWorld();
    expect((await built.run(["build"])).exitCode).toBe(0);
    expect(await w.invocations("trtllm-build")).toBe(1);
    expect(readdirSync(built.workdir).filter((n) => n.includes(".tmp-"))).toEqual([]);
    expect(stateOf(await plan(built)).engine).toBe("done");
  });

  it("kill -9 right after the engine is recorded: the rerun does not build it again (case 24)", async () => {
    await killAt("engine:after-record");
    expect(stateOf(await plan(built)).engine).toBe("done");
    await using w = useWorld();
    expect((await built.run(["build"])).exitCode).toBe(0);
    expect(await w.invocations("trtllm-build")).toBe(0);
  });

  it("kill -9 while the model repository is being filled: the old one stays whole, the rerun fills it again (case 21)", async () => {
    const configs = ["ensemble", "postprocessing", "preprocessing", "tensorrt_llm", "tensorrt_llm_bls"].map((m) => join(built.workdir, "model-repo", m, "config.pbtxt"));
    const before = configs.map((c) => readFileSync(c, "utf8"));
    const marker = join(built.dir, `paused-fill-${Date.now()}`);
    const run = built.start(["build", "--force", "model-repo"], { LLAMA3_TRT_TEST_PAUSE_AT: "model-repo:mid-fill", LLAMA3_TRT_TEST_PAUSE_MARKER: marker });
    await until(() => existsSync(marker), "the fill to be half done");
    // Half of it is written, in the staging folder only.
    const staged = join(built.workdir, "model-repo.tmp-staging");
    expect(readdirSync(staged).length).toBeGreaterThan(0);
    run.child.kill("SIGKILL");
    await run.exited();
    expect(configs.map((c) => readFileSync(c, "utf8"))).toEqual(before);
    expect(stateOf(await plan(built))["model-repo"]).toBe("pending");
    const rerun = await built.run(["build", "--json"]);
    expect(rerun.exitCode, rerun.stderr).toBe(0);
    expect((JSON.parse(rerun.stdout) as { steps: { id: string; action: string }[] }).steps.filter((s) => s.action === "ran").map((s) => s.id)).toEqual(["model-repo"]);
    expect(existsSync(staged)).toBe(false);
    expect(configs.map((c) => readFileSync(c, "utf8"))).toEqual(before);
  });

  it("a truncated blob after a build: weights stale with its sizes; build repairs it and rebuilds what came from it, once (case 7a)", async () => {
    const cache = join(built.dir, "home/.cache/huggingface/hub/models--meta-llama--Meta-Llama-3-8B-Instruct");
    const shard = join(cache, "snapshots", readFileSync(join(cache, "refs/main"), "utf8"), "model-00002-of-00004.safetensors");
    const size = statSync(shard).size;
    truncateSync(shard, size - 1);
    const steps = await plan(built);
    expect(stateOf(steps)).toEqual({
      "trtllm-repo": "done",
      "backend-repo": "done",
      weights: "stale",
      "build-image": "done",
      checkpoint: "stale",
      engine: "stale",
      "model-repo": "stale",
    });
    expect(reasonOf(steps, "weights")).toBe(`model-00002-of-00004.safetensors has ${size - 1} bytes, expected ${size}`);
    await using w = useWorld();
    const repaired = await built.run(["build", "--json"]);
    expect(repaired.exitCode, repaired.stderr).toBe(0);
    const actions = Object.fromEntries((JSON.parse(repaired.stdout) as { steps: { id: string; action: string }[] }).steps.map((s) => [s.id, s.action]));
    expect(actions).toEqual({
      "trtllm-repo": "skipped",
      "backend-repo": "skipped",
      weights: "ran",
      "build-image": "skipped",
      checkpoint: "ran",
      engine: "ran",
      "model-repo": "ran",
    });
    const fetched = (await w.hubRequests()).filter((r) => r.file !== undefined && r.status < 300 && r.bytesSent > 0).map((r) => r.file);
    expect(fetched).toEqual(["model-00002-of-00004.safetensors"]);
    const blob = readlinkSync(shard).split("/").pop() as string;
    expect(createHash("sha256").update(readFileSync(shard)).digest("hex")).toBe(blob);
    // Once: the repair is recorded, so the next build has nothing to do.
    const again = await built.run(["build", "--json"]);
    expect((JSON.parse(again.stdout) as { steps: { action: string }[] }).steps.map((s) => s.action)).toEqual(Array(7).fill("skipped"));
  });

  it("a flipped byte of the same size: doctor --verify names the file as a blocker, doctor alone does not read it (case 7b)", async () => {
    const cache = join(built.dir, "home/.cache/huggingface/hub/models--meta-llama--Meta-Llama-3-8B-Instruct");
    const shard = join(cache, "snapshots", readFileSync(join(cache, "refs/main"), "utf8"), "model-00003-of-00004.safetensors");
    const blob = join(cache, "blobs", readlinkSync(shard).split("/").pop() as string);
    const original = readFileSync(blob);
    const flipped = Buffer.from(original);
    flipped[1000] = (flipped[1000] as number) ^ 0xff;
    writeFileSync(blob, flipped);
    try {
      type Doctor = { checks: { name: string; status: string; detail: string; fix?: string }[] };
      const plain = await built.run(["doctor", "--json"]);
      expect((JSON.parse(plain.stdout) as Doctor).checks.map((c) => c.name)).not.toContain("Weights");
      const verified = await built.run(["doctor", "--json", "--verify"]);
      expect(verified.exitCode).toBe(1);
      expect((JSON.parse(verified.stdout) as Doctor).checks.find((c) => c.name === "Weights")).toEqual({
        name: "Weights",
        status: "blocker",
        detail: expect.stringMatching(/^model-00003-of-00004\.safetensors does not match its hash [0-9a-f]{12} \(changed on disk\)$/),
        fix: "`llama3-trt build --verify` fetches again what does not match",
      });
    } finally {
      writeFileSync(blob, original);
    }
    const whole = await built.run(["doctor", "--json", "--verify"]);
    expect(whole.exitCode, whole.stdout).toBe(0);
    expect((JSON.parse(whole.stdout) as { checks: { name: string; status: string; detail: string }[] }).checks.find((c) => c.name === "Weights")).toMatchObject({
      status: "ok",
      detail: "10 files read back: each matches its hash",
    });
  });

  it("kill -9 in the middle of writing state.json leaves the old file whole; the stray temp file is swept (case 21)", async () => {
    const before = readFileSync(join(built.workdir, "state.json"), "utf8");
    await killAt("state.json:before-rename");
    expect(readFileSync(join(built.workdir, "state.json"), "utf8")).toBe(before);
    expect(readdirSync(built.workdir).filter((n) => n.endsWith(".tmp"))).toHaveLength(1);
    expect((await built.run(["build"])).exitCode).toBe(0);
    expect(readdirSync(built.workdir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
    expect(JSON.parse(readFileSync(join(built.workdir, "state.json"), "utf8")).steps.engine).toBeDefined();
  });

  it("a damaged or future state.json is refused (exit 2) naming the file and where, never read as nothing done (case 23)", async () => {
    await using box = sandbox(world);
    await using w = useWorld();
    const first = await box.run(["build", "--only", "trtllm-repo"]);
    expect(first.exitCode, first.stderr).toBe(0);
    const statePath = join(box.workdir, "state.json");
    for (const [text, message] of [
      ['{"version": 1, "steps": {"trtllm-re', `${statePath}:1:26: the state file is damaged (Unterminated string). Nothing was run. Move it aside`],
      ["garbage", `${statePath}:1:1: the state file is damaged (Unexpected token 'g', "garbage" is not valid JSON)`],
      ['{"version": 99, "steps": {}}', `${statePath} was written by a newer llama3-trt (state version 99; this one reads 1). Upgrade llama3-trt.`],
    ] as const) {
      writeFileSync(statePath, text);
      const invocationsBefore = await w.invocations();
      for (const command of [["build"], ["plan"], ["status"]]) {
        const result = await box.run(command);
        expect(result.exitCode, `${command} on ${text}`).toBe(2);
        expect(result.stderr).toContain(message);
        expect(result.stderr).not.toMatch(/^\s+at /m);
      }
      // Nothing ran and the file is as it was: the user decides what to do with it.
      expect(await w.invocations()).toBe(invocationsBefore);
      expect(readFileSync(statePath, "utf8")).toBe(text);
      expect(existsSync(join(box.workdir, ".lock"))).toBe(false);
    }
  });

  it("--only refuses to run a step whose inputs are not built", async () => {
    await using box = sandbox(world);
    const result = await box.run(["build", "--only", "engine"]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("Step build-image is pending (not built yet) and a selected step needs it");
  });

  it("no Docker engine: build and serve exit 1 within 5 s, saying so, no stack trace, nothing changed (case 25)", async () => {
    await using box = sandbox(world);
    const builtState = readFileSync(join(built.workdir, "state.json"), "utf8");
    for (const [host, code] of [["unix:///nonexistent.sock", "ENOENT"], ["tcp://127.0.0.1:1", "ECONNREFUSED"]] as const) {
      // build from nothing, and serve of a finished build.
      for (const [where, command] of [[box, ["build"]], [built, ["serve", "--detach"]], [built, ["serve"]]] as const) {
        const started = Date.now();
        const result = await where.run(command, { DOCKER_HOST: host });
        const ms = Date.now() - started;
        expect(result.exitCode, `${command.join(" ")} with ${host}: ${result.stderr}`).toBe(1);
        // The promise is 5 s; the CLI itself starts in well under one.
        expect(ms).toBeLessThan(5_000);
        expect(result.stderr).toContain(`Cannot connect to the Docker engine at ${host} (${code}). Is dockerd running?`);
        expect(result.stderr).not.toMatch(/^\s+at /m);
        expect(existsSync(join(where.workdir, ".lock"))).toBe(false);
      }
    }
    expect(existsSync(join(box.workdir, "state.json"))).toBe(false);
    expect(readFileSync(join(built.workdir, "state.json"), "utf8")).toBe(builtState);
    // With -v, the cause is shown too.
    const verbose = await box.run(["build", "-v"], { DOCKER_HOST: "unix:///nonexistent.sock" });
    expect(verbose.exitCode).toBe(1);
    expect(verbose.stderr).toContain("connect ENOENT /nonexistent.sock");
  });

  it("without a Docker engine, plan and status say what they cannot know (exit 0), and build --only weights runs", async () => {
    const noEngine = { DOCKER_HOST: "unix:///nonexistent.sock" };
    const planned = await plan(built, [], noEngine);
    expect(stateOf(planned)).toEqual({
      "trtllm-repo": "done",
      "backend-repo": "done",
      weights: "done",
      "build-image": "unknown",
      checkpoint: "done",
      engine: "done",
      "model-repo": "done",
    });
    expect(reasonOf(planned, "build-image")).toBe("cannot tell: Docker not reachable at unix:///nonexistent.sock (ENOENT)");
    expect(planned.find((s) => s.id === "build-image")?.image).toEqual({
      ref: world.env.LLAMA3_TRT_BUILD_IMAGE,
      action: "unknown",
      reason: "Docker not reachable at unix:///nonexistent.sock (ENOENT)",
    });
    const status = await built.run(["status", "--json"], noEngine);
    expect(status.exitCode, status.stderr).toBe(0);
    const doc = JSON.parse(status.stdout) as { server: unknown; steps: { id: string; state: string }[] };
    expect(doc.server).toEqual({ state: "unknown: Docker not reachable at unix:///nonexistent.sock (ENOENT)" });
    expect(doc.steps.find((s) => s.id === "build-image")?.state).toBe("unknown");
    // A step that needs no engine runs without one (a download to carry to an air-gapped host).
    const weights = await built.run(["build", "--only", "weights", "--force"], noEngine);
    expect(weights.exitCode, weights.stderr).toBe(0);
    expect(weights.stdout).toMatch(/^✔ weights/m);
    // One that needs it fails fast, saying so.
    const image = await built.run(["build", "--only", "build-image", "--force"], noEngine);
    expect(image.exitCode).toBe(1);
    expect(image.stderr).toContain("Cannot connect to the Docker engine at unix:///nonexistent.sock (ENOENT)");
    expect(stateOf(await plan(built))["build-image"]).toBe("done");
  });

  it("--gpus all on an engine without the NVIDIA runtime is refused before any GPU step; doctor says so and leaves no probe (case 26)", async () => {
    await using box = sandbox(world);
    await using w = useWorld();
    const result = await box.run(["build", "--gpus", "all"]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain("NVIDIA Container Toolkit not configured for this Docker engine");
    expect(result.stderr).toContain("could not select device driver");
    expect(result.stderr).toContain("Install nvidia-container-toolkit and run `nvidia-ctk runtime configure --runtime=docker`");
    expect(await w.invocations("convert_checkpoint.py")).toBe(0);
    expect(await w.invocations("trtllm-build")).toBe(0);
    expect(stateOf(await plan(box))).toMatchObject({ checkpoint: "pending", engine: "pending" });
    expect(await containersOf(box)).toEqual([]);
    // doctor finds it with a one-second probe container, which it removes (it stayed in Created: D2).
    const doctor = await box.run(["doctor", "--json", "--gpus", "all"]);
    expect(doctor.exitCode).toBe(1);
    const check = (JSON.parse(doctor.stdout) as { checks: { name: string; status: string; detail: string; fix: string }[] }).checks.find(
      (c) => c.name === "NVIDIA container runtime",
    );
    expect(check).toMatchObject({ status: "blocker", detail: expect.stringContaining("could not select device driver"), fix: expect.stringContaining("nvidia-ctk runtime configure") });
    expect(await containersWithLabel("dev.llama3-trt.role", "doctor")).toEqual([]);
  });

  it("the token appears in no output, log or state", async () => {
    const files = [join(built.workdir, "state.json"), ...stepIds.map((id) => join(built.workdir, "logs", `${id}.log`))];
    for (const file of files) expect(readFileSync(file, "utf8"), file).not.toContain(world.env.HF_TOKEN);
    const status = await built.run(["status", "--json"]);
    expect(status.stdout + status.stderr).not.toContain(world.env.HF_TOKEN);
  });
});
