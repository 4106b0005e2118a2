import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { InterruptedError, StepFailedError, UsageError } from "../../../src/common/errors.ts";
import { EngineUnreachableError } from "../../../src/docker/docker-client.ts";
import { fingerprint, type StepInputs } from "../../../src/pipeline/fingerprint.ts";
import type { StepOutcome } from "../../../src/pipeline/runner.ts";
import type { StepRecord } from "../../../src/pipeline/state.ts";
import type { StepId } from "../../../src/pipeline/step.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { type FakeSpec, FakeWorkdir, toolVersion } from "./fake-steps.ts";

/** weights → checkpoint → engine: each reads the one before, as the real steps do. */
const chain: readonly FakeSpec[] = [
  { id: "weights", uses: ["revision"] },
  { id: "checkpoint", reads: ["weights"], uses: ["dtype"] },
  { id: "engine", reads: ["checkpoint"], uses: ["dtype", "maxBatchSize"] },
];

const sha256Hex = /^[0-9a-f]{64}$/;
const isoTime = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

const ran = (id: StepId, reason: string): StepOutcome => ({ id, action: "ran", state: "done", reason, seconds: expect.any(Number) });
const skipped = (id: StepId): StepOutcome => ({ id, action: "skipped", state: "done", reason: "up to date" });
const notSelected = (id: StepId, state: StepOutcome["state"], reason: string): StepOutcome => ({ id, action: "not-selected", state, reason });

interface Expected {
  /** The step's own inputs; `upstream.<id>` of each step it reads is added (a hash). */
  readonly inputs: StepInputs;
  readonly reads?: readonly StepId[];
  readonly content: string;
  readonly repairs?: number;
}

/** state.json holds exactly these records, each whole, with the real fingerprint of its inputs. */
function expectRecords(w: FakeWorkdir, expected: Partial<Record<StepId, Expected>>): void {
  const records = w.onDisk();
  // Which steps are recorded; the order of the keys in the file means nothing.
  expect(Object.keys(records).sort()).toEqual(Object.keys(expected).sort());
  for (const [id, e] of Object.entries(expected) as [StepId, Expected][]) {
    const record = records[id] as StepRecord;
    const upstream = Object.fromEntries((e.reads ?? []).map((r) => [`upstream.${r}`, expect.stringMatching(sha256Hex)]));
    expect(record).toStrictEqual({
      id,
      fingerprint: fingerprint(id, record.inputs),
      inputs: { ...e.inputs, ...upstream },
      out: { file: w.file(id), content: e.content },
      // The work its run was given: what its plan returned.
      work: work(w, id),
      finishedAt: expect.stringMatching(isoTime),
      tool: { version: toolVersion, node: process.versions.node },
      ...(e.repairs === undefined ? {} : { repairs: e.repairs }),
    });
  }
}

/** The chain's records after a build with the default settings. */
const builtChain = (changes: { weights?: Partial<Expected>; checkpoint?: Partial<Expected>; engine?: Partial<Expected> } = {}) => ({
  weights: { inputs: { revision: "main" }, content: "weights v1", ...changes.weights },
  checkpoint: { inputs: { dtype: "bfloat16" }, reads: ["weights"] as const, content: "checkpoint v1", ...changes.checkpoint },
  engine: { inputs: { dtype: "bfloat16", maxBatchSize: 64 }, reads: ["checkpoint"] as const, content: "engine v1", ...changes.engine },
});

/** What `upstream.<id>` in a step's record says: the identity of what it was built from. */
const upstreamIn = (w: FakeWorkdir, id: StepId, read: StepId) => w.onDisk()[id]?.inputs[`upstream.${read}`];

const work = (w: FakeWorkdir, id: StepId) => ({ kind: "files", files: { dir: `${w.paths.root}/out`, paths: [`${id}.txt`], templates: "", values: {}, engine: "" } });
const out = (w: FakeWorkdir, id: StepId, content = `${id} v1`) => ({ file: w.file(id), content });
const expected = (w: FakeWorkdir, id: StepId) => ({ file: w.file(id), content: "(expected)" });

async function built(root: string, specs: readonly FakeSpec[] = chain): Promise<FakeWorkdir> {
  const w = new FakeWorkdir(root, specs);
  await (await w.pipeline()).run({});
  w.calls.length = 0;
  return w;
}

const rejection = async (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: unknown) => error,
  );

describe("Pipeline.evaluate: done, stale, pending", () => {
  it("a fresh workdir: every step pending, the first ones 'not built yet', the others after what they read; nothing written", async () => {
    using dir = tempDir();
    const w = new FakeWorkdir(dir.path, [
      { id: "trtllm-repo" },
      { id: "weights", uses: ["revision"] },
      { id: "checkpoint", reads: ["trtllm-repo", "weights"], uses: ["dtype"] },
      { id: "engine", reads: ["checkpoint"], uses: ["dtype"] },
    ]);
    const pipeline = await w.pipeline();
    expect(pipeline.steps.map((s) => s.id)).toEqual(["trtllm-repo", "weights", "checkpoint", "engine"]);
    const statuses = await pipeline.evaluate();
    expect(statuses).toStrictEqual([
      { id: "trtllm-repo", title: "Fake trtllm-repo", state: "pending", reason: "not built yet", work: work(w, "trtllm-repo") },
      { id: "weights", title: "Fake weights", state: "pending", reason: "not built yet", work: work(w, "weights") },
      { id: "checkpoint", title: "Fake checkpoint", state: "pending", reason: "after trtllm-repo, weights", work: work(w, "checkpoint") },
      { id: "engine", title: "Fake engine", state: "pending", reason: "after checkpoint", work: work(w, "engine") },
    ]);
    // Plans are made from what the steps they read are expected to produce.
    expect(w.calls).toStrictEqual([
      { call: "plan", id: "trtllm-repo", upstream: {} },
      { call: "plan", id: "weights", upstream: {} },
      { call: "plan", id: "checkpoint", upstream: { "trtllm-repo": expected(w, "trtllm-repo"), weights: expected(w, "weights") } },
      { call: "plan", id: "engine", upstream: { checkpoint: expected(w, "checkpoint") } },
    ]);
    expect(readdirSync(dir.path)).toEqual([]);
  });

  it("after a build: every step done and up to date, checked by its verify, planned from the recorded outputs", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    const statuses = await (await w.pipeline()).evaluate();
    expect(statuses.map((s) => [s.id, s.state, s.reason])).toEqual([
      ["weights", "done", "up to date"],
      ["checkpoint", "done", "up to date"],
      ["engine", "done", "up to date"],
    ]);
    expect(w.calls).toStrictEqual([
      { call: "verify", id: "weights", upstream: {} },
      { call: "plan", id: "weights", upstream: {} },
      { call: "verify", id: "checkpoint", upstream: { weights: out(w, "weights") } },
      { call: "plan", id: "checkpoint", upstream: { weights: out(w, "weights") } },
      { call: "verify", id: "engine", upstream: { checkpoint: out(w, "checkpoint") } },
      { call: "plan", id: "engine", upstream: { checkpoint: out(w, "checkpoint") } },
    ]);
  });

  it("a changed setting: the step using it is stale naming the change; the step after it names its own change and what must run first", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    const before = w.onDisk();
    const statuses = await (await w.pipeline({ settings: { dtype: "float16" } })).evaluate();
    expect(statuses.map((s) => [s.id, s.state, s.reason])).toEqual([
      ["weights", "done", "up to date"],
      ["checkpoint", "stale", "dtype changed bfloat16 → float16"],
      // Its upstream hash changed too, but "checkpoint must run first" says it better.
      ["engine", "stale", "dtype changed bfloat16 → float16; checkpoint must run first"],
    ]);
    // Planning the engine from the checkpoint it will get, not from the one recorded.
    expect(w.calls.find((c) => c.call === "plan" && c.id === "engine")?.upstream).toEqual({ checkpoint: expected(w, "checkpoint") });
    expect(w.onDisk()).toStrictEqual(before);
  });

  it("a step reading two steps that must run first names both, after its own change", async () => {
    using dir = tempDir();
    const w = await built(dir.path, [
      { id: "trtllm-repo", uses: ["trtllmRepoRef"] },
      { id: "weights", uses: ["revision"] },
      { id: "checkpoint", reads: ["trtllm-repo", "weights"], uses: ["dtype"] },
    ]);
    const statuses = await (await w.pipeline({ settings: { trtllmRepoRef: "v0.9.0", revision: "v2", dtype: "float16" } })).evaluate();
    expect(statuses.map((s) => [s.id, s.state, s.reason])).toEqual([
      ["trtllm-repo", "stale", "trtllmRepoRef changed v0.8.0 → v0.9.0"],
      ["weights", "stale", "revision changed main → v2"],
      ["checkpoint", "stale", "dtype changed bfloat16 → float16; trtllm-repo, weights must run first"],
    ]);
  });

  it("a step's describeChange gives the reason when it has one, and the generic one when it returns undefined", async () => {
    using dir = tempDir();
    const w = await built(dir.path, [
      {
        id: "weights",
        uses: ["model", "revision"],
        describeChange: (was, now) => (was.revision === now.revision ? undefined : `revision ${String(was.revision)} moved to ${String(now.revision)} (3 files changed)`),
      },
      { id: "checkpoint", reads: ["weights"] },
    ]);
    const moved = await (await w.pipeline({ settings: { revision: "v2" } })).evaluate();
    expect(moved.map((s) => [s.id, s.state, s.reason])).toEqual([
      ["weights", "stale", "revision main moved to v2 (3 files changed)"],
      ["checkpoint", "stale", "weights must run first"],
    ]);
    const otherModel = await (await w.pipeline({ settings: { model: "meta-llama/Meta-Llama-3-70B-Instruct" } })).evaluate();
    expect(otherModel.map((s) => [s.id, s.state, s.reason])).toEqual([
      ["weights", "stale", "model changed meta-llama/Meta-Llama-3-8B-Instruct → meta-llama/Meta-Llama-3-70B-Instruct"],
      ["checkpoint", "stale", "weights must run first"],
    ]);
  });

  it("a record whose fingerprint does not match its inputs (another tool's scheme) is stale: 'inputs changed'", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    const file = JSON.parse(readFileSync(w.paths.state, "utf8")) as { steps: Record<string, { fingerprint: string }> };
    (file.steps.weights as { fingerprint: string }).fingerprint = "0".repeat(64);
    writeFileSync(w.paths.state, JSON.stringify(file));
    const statuses = await (await w.pipeline()).evaluate();
    expect(statuses.map((s) => [s.id, s.state, s.reason])).toEqual([
      ["weights", "stale", "inputs changed"],
      ["checkpoint", "stale", "weights must run first"],
      ["engine", "stale", "checkpoint must run first"],
    ]);
  });
});

describe("Pipeline: staleness through a chain of steps", () => {
  it("a changed input of the first step: the later steps must wait for it, then run again after it even with the same output", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    const v2 = await w.pipeline({ settings: { revision: "v2" } });
    expect((await v2.evaluate()).map((s) => [s.id, s.state, s.reason])).toEqual([
      ["weights", "stale", "revision changed main → v2"],
      ["checkpoint", "stale", "weights must run first"],
      ["engine", "stale", "checkpoint must run first"],
    ]);
    // The weights come out the same ("weights v1"), yet the later steps run again: an output
    // names files, not their bytes (a checkpoint's out is its folder whatever its dtype), so an
    // upstream is identified by its fingerprint and its output together.
    const outcomes = await (await w.pipeline({ settings: { revision: "v2" } })).run({});
    expect(outcomes).toStrictEqual([
      ran("weights", "revision changed main → v2"),
      ran("checkpoint", "upstream weights changed"),
      ran("engine", "upstream checkpoint changed"),
    ]);
    expectRecords(w, builtChain({ weights: { inputs: { revision: "v2" } } }));
    const again = await (await w.pipeline({ settings: { revision: "v2" } })).run({});
    expect(again).toStrictEqual([skipped("weights"), skipped("checkpoint"), skipped("engine")]);
  });

  it("the first step run again with the same inputs and output: the later steps stay done (upstreams are content-addressed, not timestamped)", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    const before = { checkpoint: upstreamIn(w, "checkpoint", "weights"), engine: upstreamIn(w, "engine", "checkpoint") };
    const outcomes = await (await w.pipeline()).run({ force: "weights" });
    expect(outcomes).toStrictEqual([ran("weights", "up to date"), skipped("checkpoint"), skipped("engine")]);
    expect(w.called("run")).toEqual(["weights"]);
    expect({ checkpoint: upstreamIn(w, "checkpoint", "weights"), engine: upstreamIn(w, "engine", "checkpoint") }).toEqual(before);
    expectRecords(w, builtChain());
    expect(readFileSync(w.paths.log("weights"), "utf8")).toMatch(/^\[llama3-trt\] weights: forced\nbuilding weights\n\[llama3-trt\] done in \d+\.\d s\n$/);
  });

  it("the first step run again with another output: the later steps are stale through the chain, and run again", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    const before = upstreamIn(w, "checkpoint", "weights");
    w.behave("weights", { content: "weights v2" });
    expect(await (await w.pipeline()).run({ only: "weights", force: true })).toStrictEqual([
      ran("weights", "up to date"),
      notSelected("checkpoint", "stale", "upstream weights changed"),
      notSelected("engine", "stale", "checkpoint must run first"),
    ]);
    expect((await (await w.pipeline()).evaluate()).map((s) => [s.id, s.state, s.reason])).toEqual([
      ["weights", "done", "up to date"],
      ["checkpoint", "stale", "upstream weights changed"],
      ["engine", "stale", "checkpoint must run first"],
    ]);
    expect(await (await w.pipeline()).run({})).toStrictEqual([
      skipped("weights"),
      ran("checkpoint", "upstream weights changed"),
      ran("engine", "upstream checkpoint changed"),
    ]);
    expect(upstreamIn(w, "checkpoint", "weights")).not.toEqual(before);
    expectRecords(w, builtChain({ weights: { content: "weights v2" } }));
  });

  it("a setting changed and changed back: everything is done again without running anything", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    expect((await (await w.pipeline({ settings: { revision: "v2" } })).evaluate()).map((s) => s.state)).toEqual(["stale", "stale", "stale"]);
    expect(await (await w.pipeline()).run({})).toStrictEqual([skipped("weights"), skipped("checkpoint"), skipped("engine")]);
    expect(w.called("run")).toEqual([]);
  });
});

describe("Pipeline.run: a build, and --only, --from, --force", () => {
  it("a first build runs every step in order, each from the recorded outputs of the ones before it; the next build skips them all", async () => {
    using dir = tempDir();
    const w = new FakeWorkdir(dir.path, chain);
    // Long enough for its duration to be measured.
    w.behave("weights", { runMs: 20 });
    const started = Date.now();
    const starts: string[] = [];
    const lines: string[] = [];
    const outcomes = await (await w.pipeline()).run({}, {
      onStepStart: (step) => starts.push(step.id),
      onStepLine: (step, line) => lines.push(`${step.id}| ${line}`),
    });
    const wall = (Date.now() - started) / 1000;
    expect(outcomes).toStrictEqual([ran("weights", "not built yet"), ran("checkpoint", "not built yet"), ran("engine", "not built yet")]);
    const seconds = outcomes[0]?.seconds as number;
    expect(seconds).toBeGreaterThanOrEqual(0.015);
    expect(seconds).toBeLessThanOrEqual(wall);
    expect(starts).toEqual(["weights", "checkpoint", "engine"]);
    expect(lines).toEqual([
      "weights| [llama3-trt] weights: not built yet",
      "weights| building weights",
      `weights| [llama3-trt] done in ${seconds.toFixed(1)} s`,
      "checkpoint| [llama3-trt] checkpoint: not built yet",
      "checkpoint| building checkpoint",
      expect.stringMatching(/^checkpoint\| \[llama3-trt\] done in \d+\.\d s$/),
      "engine| [llama3-trt] engine: not built yet",
      "engine| building engine",
      expect.stringMatching(/^engine\| \[llama3-trt\] done in \d+\.\d s$/),
    ]);
    expect(readFileSync(w.paths.log("weights"), "utf8")).toBe(
      `[llama3-trt] weights: not built yet\nbuilding weights\n[llama3-trt] done in ${seconds.toFixed(1)} s\n`,
    );
    // Each step ran the work its plan returned, from the outputs recorded before it.
    expect(w.calls.filter((c) => c.call === "run")).toStrictEqual([
      { call: "run", id: "weights", upstream: {}, work: work(w, "weights"), recordedWhileRunning: false },
      { call: "run", id: "checkpoint", upstream: { weights: out(w, "weights") }, work: work(w, "checkpoint"), recordedWhileRunning: false },
      { call: "run", id: "engine", upstream: { checkpoint: out(w, "checkpoint") }, work: work(w, "engine"), recordedWhileRunning: false },
    ]);
    expectRecords(w, builtChain());

    w.calls.length = 0;
    const again = await (await w.pipeline()).run({});
    expect(again).toStrictEqual([skipped("weights"), skipped("checkpoint"), skipped("engine")]);
    expect(w.calls).toStrictEqual([
      { call: "verify", id: "weights", upstream: {} },
      { call: "verify", id: "checkpoint", upstream: { weights: out(w, "weights") } },
      { call: "verify", id: "engine", upstream: { checkpoint: out(w, "checkpoint") } },
    ]);
    expectRecords(w, builtChain());
  });

  it("--only runs the one step when the steps it reads are done, and leaves the others as they are", async () => {
    using dir = tempDir();
    const w = new FakeWorkdir(dir.path, chain);
    const starts: string[] = [];
    const hooks = { onStepStart: (step: { id: string }) => starts.push(step.id) };
    expect(await (await w.pipeline()).run({ only: "weights" }, hooks)).toStrictEqual([
      ran("weights", "not built yet"),
      notSelected("checkpoint", "pending", "not built yet"),
      notSelected("engine", "pending", "after checkpoint"),
    ]);
    expect(await (await w.pipeline()).run({ only: "checkpoint" }, hooks)).toStrictEqual([
      notSelected("weights", "done", "up to date"),
      ran("checkpoint", "not built yet"),
      notSelected("engine", "pending", "not built yet"),
    ]);
    expect(await (await w.pipeline()).run({ only: "checkpoint" }, hooks)).toStrictEqual([
      notSelected("weights", "done", "up to date"),
      skipped("checkpoint"),
      notSelected("engine", "pending", "not built yet"),
    ]);
    // Only selected steps are announced to the progress display.
    expect(starts).toEqual(["weights", "checkpoint", "checkpoint"]);
    expect(w.called("run")).toEqual(["weights", "checkpoint"]);
    const { engine: _, ...records } = builtChain();
    expectRecords(w, records);
  });

  it("--only refuses a step whose input step is not done, naming it, before anything runs", async () => {
    using dir = tempDir();
    const w = new FakeWorkdir(dir.path, chain);
    const fresh = await rejection((await w.pipeline()).run({ only: "checkpoint" }));
    expect(fresh).toBeInstanceOf(UsageError);
    expect((fresh as Error).message).toBe(
      "Step weights is pending (not built yet) and a selected step needs it. Run `llama3-trt build` without --only/--from, or `--from weights`.",
    );
    expect(w.called("run")).toEqual([]);
    expect(existsSync(w.paths.state)).toBe(false);

    await (await w.pipeline()).run({});
    const before = w.onDisk();
    w.calls.length = 0;
    const stale = await rejection((await w.pipeline({ settings: { revision: "v2" } })).run({ only: "checkpoint" }));
    expect(stale).toBeInstanceOf(UsageError);
    expect((stale as Error).message).toBe(
      "Step weights is stale (revision changed main → v2) and a selected step needs it. Run `llama3-trt build` without --only/--from, or `--from weights`.",
    );
    // Two steps away: the step in between is not done either, and it is the one named.
    const far = await rejection((await w.pipeline({ settings: { revision: "v2" } })).run({ only: "engine" }));
    expect(far).toBeInstanceOf(UsageError);
    expect((far as Error).message).toBe(
      "Step checkpoint is stale (weights must run first) and a selected step needs it. Run `llama3-trt build` without --only/--from, or `--from checkpoint`.",
    );
    expect(w.called("run")).toEqual([]);
    expect(w.onDisk()).toStrictEqual(before);
  });

  it("--from runs that step and the ones after it; the ones before are not selected, and must be done when read", async () => {
    using dir = tempDir();
    const specs: FakeSpec[] = [{ id: "trtllm-repo", uses: ["trtllmRepoRef"] }, ...chain];
    const w = new FakeWorkdir(dir.path, specs);
    const refused = await rejection((await w.pipeline()).run({ from: "checkpoint" }));
    expect(refused).toBeInstanceOf(UsageError);
    expect((refused as Error).message).toBe(
      "Step weights is pending (not built yet) and a selected step needs it. Run `llama3-trt build` without --only/--from, or `--from weights`.",
    );
    expect(w.called("run")).toEqual([]);

    await (await w.pipeline()).run({});
    const repoRecord = w.onDisk()["trtllm-repo"];
    w.calls.length = 0;
    // trtllm-repo is stale but no selected step reads it: left alone, not refused.
    const outcomes = await (await w.pipeline({ settings: { trtllmRepoRef: "v0.9.0", dtype: "float16" } })).run({ from: "checkpoint" });
    expect(outcomes).toStrictEqual([
      notSelected("trtllm-repo", "stale", "trtllmRepoRef changed v0.8.0 → v0.9.0"),
      notSelected("weights", "done", "up to date"),
      ran("checkpoint", "dtype changed bfloat16 → float16"),
      ran("engine", "dtype changed bfloat16 → float16; upstream checkpoint changed"),
    ]);
    expect(w.called("run")).toEqual(["checkpoint", "engine"]);
    expect(w.onDisk()["trtllm-repo"]).toStrictEqual(repoRecord);
    expectRecords(w, {
      "trtllm-repo": { inputs: { trtllmRepoRef: "v0.8.0" }, content: "trtllm-repo v1" },
      ...builtChain({ checkpoint: { inputs: { dtype: "float16" } }, engine: { inputs: { dtype: "float16", maxBatchSize: 64 } } }),
    });
  });

  it("--force runs every selected step again, each with no record while it runs; the records come back the same", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    const outcomes = await (await w.pipeline()).run({ force: true });
    expect(outcomes).toStrictEqual([ran("weights", "up to date"), ran("checkpoint", "up to date"), ran("engine", "up to date")]);
    expect(w.calls.filter((c) => c.call === "run").map((c) => [c.id, c.recordedWhileRunning])).toEqual([
      ["weights", false],
      ["checkpoint", false],
      ["engine", false],
    ]);
    expect(readFileSync(w.paths.log("engine"), "utf8").split("\n")[0]).toBe("[llama3-trt] engine: forced");
    expectRecords(w, builtChain());
    // --force with --from forces the selected steps only.
    w.calls.length = 0;
    expect(await (await w.pipeline()).run({ from: "engine", force: true })).toStrictEqual([
      notSelected("weights", "done", "up to date"),
      notSelected("checkpoint", "done", "up to date"),
      ran("engine", "up to date"),
    ]);
    expect(w.called("run")).toEqual(["engine"]);
    // A forced step that had to run anyway says why in its log.
    await (await w.pipeline({ settings: { dtype: "float16" } })).run({ force: true });
    expect(readFileSync(w.paths.log("weights"), "utf8").split("\n")[0]).toBe("[llama3-trt] weights: forced");
    expect(readFileSync(w.paths.log("checkpoint"), "utf8").split("\n")[0]).toBe("[llama3-trt] checkpoint: dtype changed bfloat16 → float16");
  });

  it("--only with --from is refused before any pre-flight check or step", async () => {
    using dir = tempDir();
    const w = new FakeWorkdir(dir.path, [{ id: "weights", preflight: true }]);
    const error = await rejection((await w.pipeline()).run({ only: "weights", from: "weights" }));
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toBe("--only and --from cannot be used together");
    expect(w.calls).toEqual([]);
  });
});

describe("Pipeline.run: damaged outputs", () => {
  it("a step whose recorded outputs fail its verify runs again, and so do the steps after it, exactly once", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    writeFileSync(w.file("weights"), "torn");
    expect((await (await w.pipeline()).evaluate()).map((s) => [s.id, s.state, s.reason])).toEqual([
      ["weights", "stale", 'weights.txt holds "torn", expected "weights v1"'],
      ["checkpoint", "stale", "weights must run first"],
      ["engine", "stale", "checkpoint must run first"],
    ]);
    const before = upstreamIn(w, "checkpoint", "weights");
    // The repaired weights are the same as before: the steps after run again all the same,
    // since they may have been built from the damaged files. Their records went with the
    // damaged one's, before the repair started.
    expect(await (await w.pipeline()).run({})).toStrictEqual([
      ran("weights", 'weights.txt holds "torn", expected "weights v1"'),
      ran("checkpoint", "not built yet"),
      ran("engine", "not built yet"),
    ]);
    expect(w.calls.filter((c) => c.call === "run").map((c) => [c.id, c.recordedWhileRunning])).toEqual([
      ["weights", false],
      ["checkpoint", false],
      ["engine", false],
    ]);
    expect(upstreamIn(w, "checkpoint", "weights")).not.toEqual(before);
    expectRecords(w, builtChain({ weights: { repairs: 1 } }));
    expect(await (await w.pipeline()).run({})).toStrictEqual([skipped("weights"), skipped("checkpoint"), skipped("engine")]);

    // A second repair counts on.
    writeFileSync(w.file("weights"), "torn again");
    expect((await (await w.pipeline()).run({})).map((o) => o.action)).toEqual(["ran", "ran", "ran"]);
    expectRecords(w, builtChain({ weights: { repairs: 2 } }));
    expect(w.called("run")).toEqual(["weights", "checkpoint", "engine", "weights", "checkpoint", "engine"]);
  });

  it("damage in the middle of the chain: the steps before it are kept, it and the ones after it run again", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    writeFileSync(w.file("checkpoint"), "torn");
    expect(await (await w.pipeline()).run({})).toStrictEqual([
      skipped("weights"),
      ran("checkpoint", 'checkpoint.txt holds "torn", expected "checkpoint v1"'),
      ran("engine", "not built yet"),
    ]);
    expectRecords(w, builtChain({ checkpoint: { repairs: 1 } }));
  });

  it("a repair of one step alone (--only) drops the records of the steps built from it, which then run", async () => {
    using dir = tempDir();
    const w = await built(dir.path, [{ id: "trtllm-repo" }, ...chain]);
    writeFileSync(w.file("weights"), "torn");
    expect(await (await w.pipeline()).run({ only: "weights" })).toStrictEqual([
      notSelected("trtllm-repo", "done", "up to date"),
      ran("weights", 'weights.txt holds "torn", expected "weights v1"'),
      notSelected("checkpoint", "pending", "not built yet"),
      notSelected("engine", "pending", "after checkpoint"),
    ]);
    const { weights } = builtChain({ weights: { repairs: 1 } });
    expectRecords(w, { "trtllm-repo": { inputs: {}, content: "trtllm-repo v1" }, weights });
    expect(await (await w.pipeline()).run({})).toStrictEqual([
      skipped("trtllm-repo"),
      skipped("weights"),
      ran("checkpoint", "not built yet"),
      ran("engine", "not built yet"),
    ]);
  });

  it.each([
    { name: "fails", error: new Error("connection reset"), kind: StepFailedError },
    { name: "is interrupted", error: new InterruptedError("stopped"), kind: InterruptedError },
  ])("a repair that $name still rebuilds the steps after it on the next run", async ({ error, kind }) => {
    using dir = tempDir();
    const w = await built(dir.path);
    writeFileSync(w.file("weights"), "torn");
    w.behave("weights", { runThrows: error });
    expect(await rejection((await w.pipeline()).run({}))).toBeInstanceOf(kind);
    // Nothing looks done: not the weights, nor what was built from them.
    expectRecords(w, {});
    w.behave("weights", { runThrows: undefined });
    // The checkpoint and engine were built from the damaged weights: losing the repair with the
    // weights' record must not make them look done once the weights are back.
    expect(await (await w.pipeline()).run({})).toStrictEqual([
      ran("weights", "not built yet"),
      ran("checkpoint", "not built yet"),
      ran("engine", "not built yet"),
    ]);
    expect(await (await w.pipeline()).run({})).toStrictEqual([skipped("weights"), skipped("checkpoint"), skipped("engine")]);
  });

  it("a --force rerun of a healthy step is no repair: no count, and the steps after it stay done", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    expect(await (await w.pipeline()).run({ force: "checkpoint" })).toStrictEqual([skipped("weights"), ran("checkpoint", "up to date"), skipped("engine")]);
    expectRecords(w, builtChain());
  });

  it("a --force rerun of a repaired step keeps its count, so the steps built after the repair stay done", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    writeFileSync(w.file("weights"), "torn");
    await (await w.pipeline()).run({});
    expect(await (await w.pipeline()).run({ force: "weights" })).toStrictEqual([ran("weights", "up to date"), skipped("checkpoint"), skipped("engine")]);
    expectRecords(w, builtChain({ weights: { repairs: 1 } }));
  });
});

describe("Pipeline: unknown, when a step's check needs the Docker engine and none answers", () => {
  const unreachable = () => new EngineUnreachableError("unix:///nonexistent.sock", "ENOENT");
  const cannotTell = "cannot tell: Docker not reachable at unix:///nonexistent.sock (ENOENT)";

  it("the step is unknown, and the steps after it are judged from its record", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    w.behave("weights", { verifyThrows: unreachable() });
    expect((await (await w.pipeline()).evaluate()).map((s) => [s.id, s.state, s.reason])).toEqual([
      ["weights", "unknown", cannotTell],
      ["checkpoint", "done", "up to date"],
      ["engine", "done", "up to date"],
    ]);
    expect(w.calls.find((c) => c.call === "plan" && c.id === "checkpoint")?.upstream).toEqual({ weights: out(w, "weights") });
    expect((await (await w.pipeline({ settings: { dtype: "float16" } })).evaluate()).map((s) => [s.id, s.state, s.reason])).toEqual([
      ["weights", "unknown", cannotTell],
      ["checkpoint", "stale", "dtype changed bfloat16 → float16"],
      ["engine", "stale", "dtype changed bfloat16 → float16; checkpoint must run first"],
    ]);
  });

  it("--only a later step runs on the unknown step's record: skipped when done, run from it when stale", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    const before = upstreamIn(w, "checkpoint", "weights");
    w.behave("weights", { verifyThrows: unreachable() });
    expect(await (await w.pipeline()).run({ only: "checkpoint" })).toStrictEqual([
      notSelected("weights", "unknown", cannotTell),
      skipped("checkpoint"),
      notSelected("engine", "done", "up to date"),
    ]);
    expect(await (await w.pipeline({ settings: { dtype: "float16" } })).run({ only: "checkpoint" })).toStrictEqual([
      notSelected("weights", "unknown", cannotTell),
      ran("checkpoint", "dtype changed bfloat16 → float16"),
      notSelected("engine", "stale", "dtype changed bfloat16 → float16; upstream checkpoint changed"),
    ]);
    expect(w.calls.find((c) => c.call === "run")?.upstream).toEqual({ weights: out(w, "weights") });
    expect(upstreamIn(w, "checkpoint", "weights")).toBe(before);
  });

  it("a build does not take unknown for done: the unknown step itself runs", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    // The engine answers again once the step runs (a real build's pre-flight makes sure it does).
    w.behave("weights", { verifyThrows: unreachable(), duringRun: () => w.behave("weights", { verifyThrows: undefined }) });
    expect(await (await w.pipeline()).run({})).toStrictEqual([ran("weights", cannotTell), skipped("checkpoint"), skipped("engine")]);
    expectRecords(w, builtChain());
  });

  it("any other error of a verify is not unknown: it reaches the caller", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    const bug = new TypeError("cannot read properties of undefined");
    w.behave("weights", { verifyThrows: bug });
    expect(await rejection((await w.pipeline()).evaluate())).toBe(bug);
  });
});

describe("Pipeline.run: delete-before-run", () => {
  it("a step that fails leaves no record of itself, keeps the others, and says why with its log's last lines", async () => {
    using dir = tempDir();
    const w = await built(dir.path);
    const before = w.onDisk();
    const cause = new Error("connection reset");
    w.behave("checkpoint", { runThrows: cause });
    const error = await rejection((await w.pipeline({ settings: { dtype: "float16" } })).run({}));
    expect(error).toBeInstanceOf(StepFailedError);
    const log = w.paths.log("checkpoint");
    expect(error).toMatchObject({
      step: "checkpoint",
      logFile: log,
      cause,
      message: `Step checkpoint failed: connection reset\n  Last lines:\n    [llama3-trt] checkpoint: dtype changed bfloat16 → float16\n    building checkpoint\n  Full log: ${log}`,
    });
    expect(readFileSync(log, "utf8")).toBe(
      "[llama3-trt] checkpoint: dtype changed bfloat16 → float16\nbuilding checkpoint\n[llama3-trt] failed: connection reset\n",
    );
    expect(w.called("run")).toEqual(["checkpoint"]);
    expect(w.onDisk()).toStrictEqual({ weights: before.weights, engine: before.engine });
  });

  it("a step whose outputs do not verify after its run fails with StepFailedError, and is not recorded", async () => {
    using dir = tempDir();
    const w = new FakeWorkdir(dir.path, chain);
    w.behave("checkpoint", { writeNothing: true });
    const error = await rejection((await w.pipeline()).run({}));
    expect(error).toBeInstanceOf(StepFailedError);
    const log = w.paths.log("checkpoint");
    expect(error).toMatchObject({
      step: "checkpoint",
      logFile: log,
      message: `Step checkpoint failed: its outputs did not verify: checkpoint.txt is missing\n  Last lines:\n    [llama3-trt] checkpoint: not built yet\n    building checkpoint\n  Full log: ${log}`,
    });
    expect(w.called("run")).toEqual(["weights", "checkpoint"]);
    expectRecords(w, { weights: builtChain().weights });
  });

  it.each([
    { name: "the step throws InterruptedError", make: () => ({ runThrows: new InterruptedError("stopped") }) },
    {
      name: "Ctrl-C aborts the signal while it runs",
      make: (controller: AbortController) => ({ duringRun: () => controller.abort(), runThrows: new Error("The operation was aborted") }),
    },
  ])("$name: an InterruptedError naming the step, and no record of it", async ({ make }) => {
    using dir = tempDir();
    const w = await built(dir.path);
    const before = w.onDisk();
    const controller = new AbortController();
    w.behave("checkpoint", make(controller));
    const error = await rejection((await w.pipeline({ settings: { dtype: "float16" }, signal: controller.signal })).run({}));
    expect(error).toBeInstanceOf(InterruptedError);
    expect((error as Error).message).toBe("interrupted during checkpoint; finished steps are kept. Rerun `llama3-trt build` to continue from checkpoint.");
    expect((error as Error).cause).toBe(w.behaviour("checkpoint").runThrows);
    expect(readFileSync(w.paths.log("checkpoint"), "utf8")).toBe(
      "[llama3-trt] checkpoint: dtype changed bfloat16 → float16\nbuilding checkpoint\n[llama3-trt] interrupted\n",
    );
    expect(w.called("run")).toEqual(["checkpoint"]);
    expect(w.onDisk()).toStrictEqual({ weights: before.weights, engine: before.engine });
  });

  it("a signal aborted before a step starts: InterruptedError, and the step does not run", async () => {
    using dir = tempDir();
    const w = new FakeWorkdir(dir.path, chain);
    const controller = new AbortController();
    controller.abort();
    const error = await rejection((await w.pipeline({ signal: controller.signal })).run({}));
    expect(error).toBeInstanceOf(InterruptedError);
    expect((error as Error).message).toBe("interrupted");
    expect(w.calls).toEqual([]);
    expect(existsSync(w.paths.state)).toBe(false);
  });
});

describe("Pipeline.prepare: pre-flight checks of the steps that will run, first", () => {
  const specs: FakeSpec[] = [
    { id: "weights", preflight: true, uses: ["model"] },
    { id: "checkpoint", reads: ["weights"], uses: ["dtype"] },
    { id: "engine", reads: ["checkpoint"], preflight: true },
  ];
  const expected = (w: FakeWorkdir, id: StepId) => ({ file: w.file(id), content: "(expected)" });

  it("a new workdir: every step will run; each pre-flight check runs before any step, on what the steps it reads will produce", async () => {
    using dir = tempDir();
    const w = new FakeWorkdir(dir.path, specs);
    const executors = await (await w.pipeline()).prepare({});
    expect(executors.map((e) => [e.step.id, e.selected, e.willRun])).toEqual([
      ["weights", true, true],
      ["checkpoint", true, true],
      ["engine", true, true],
    ]);
    expect(w.calls).toEqual([
      { call: "preflight", id: "weights", upstream: {} },
      { call: "preflight", id: "engine", upstream: { checkpoint: expected(w, "checkpoint") } },
    ]);
    for (const executor of executors) await executor.run();
    expect(w.calls.map((c) => `${c.call} ${c.id}`)).toEqual([
      "preflight weights",
      "preflight engine",
      "plan weights",
      "run weights",
      "verify weights",
      "plan checkpoint",
      "run checkpoint",
      "verify checkpoint",
      "plan engine",
      "run engine",
      "verify engine",
    ]);
  });

  it("nothing to do: no pre-flight check, and each step is judged once (prepare's judgment is reused)", async () => {
    using dir = tempDir();
    const w = await built(dir.path, specs);
    const executors = await (await w.pipeline()).prepare({});
    expect(executors.map((e) => e.willRun)).toEqual([false, false, false]);
    for (const executor of executors) await executor.run();
    expect(w.calls.map((c) => `${c.call} ${c.id}`)).toEqual(["verify weights", "verify checkpoint", "verify engine"]);
  });

  it("a step that will run makes the steps after it run too: their checks run, and they are judged again after it ran", async () => {
    using dir = tempDir();
    const w = await built(dir.path, specs);
    const executors = await (await w.pipeline({ settings: { dtype: "float16" } })).prepare({});
    expect(executors.map((e) => [e.step.id, e.willRun])).toEqual([
      ["weights", false],
      ["checkpoint", true],
      ["engine", true],
    ]);
    expect(w.calls.map((c) => `${c.call} ${c.id}`)).toEqual(["verify weights", "preflight engine"]);
    w.calls.length = 0;
    const outcomes = [];
    for (const executor of executors) outcomes.push(await executor.run());
    expect(outcomes.map((o) => [o.id, o.action])).toEqual([
      ["weights", "skipped"],
      ["checkpoint", "ran"],
      ["engine", "ran"],
    ]);
    expect(w.calls.map((c) => `${c.call} ${c.id}`)).toEqual(["plan checkpoint", "run checkpoint", "verify checkpoint", "plan engine", "run engine", "verify engine"]);
    // The engine was recorded on what the new checkpoint made (judged again after it ran, not on
    // prepare's "checkpoint must run first"): the next look finds everything done.
    const after = await (await w.pipeline({ settings: { dtype: "float16" } })).evaluate();
    expect(after.map((s) => [s.id, s.state])).toEqual([
      ["weights", "done"],
      ["checkpoint", "done"],
      ["engine", "done"],
    ]);
  });

  it("checks only the selected steps that will run: --only and --from on a built workdir check nothing, --force checks the forced step", async () => {
    using dir = tempDir();
    const w = await built(dir.path, specs);
    const only = await (await w.pipeline()).prepare({ only: "checkpoint" });
    expect(only.map((e) => [e.step.id, e.selected, e.willRun])).toEqual([
      ["weights", false, false],
      ["checkpoint", true, false],
      ["engine", false, false],
    ]);
    await (await w.pipeline()).prepare({ from: "checkpoint" });
    expect(w.called("preflight")).toEqual([]);
    const forced = await (await w.pipeline()).prepare({ force: "engine" });
    expect(forced.map((e) => e.willRun)).toEqual([false, false, true]);
    expect(w.calls.filter((c) => c.call === "preflight")).toEqual([{ call: "preflight", id: "engine", upstream: { checkpoint: { file: w.file("checkpoint"), content: "checkpoint v1" } } }]);
    w.calls.length = 0;
    // A forced step makes the done steps after it run too.
    expect((await (await w.pipeline()).prepare({ force: "checkpoint" })).map((e) => e.willRun)).toEqual([false, true, true]);
    expect(w.called("preflight")).toEqual(["engine"]);
    w.calls.length = 0;
    expect((await (await w.pipeline()).prepare({ force: true })).map((e) => e.willRun)).toEqual([true, true, true]);
    expect(w.called("preflight")).toEqual(["weights", "engine"]);
    w.calls.length = 0;
    await (await w.pipeline({ settings: { model: "other/model" } })).prepare({ only: "weights" });
    expect(w.called("preflight")).toEqual(["weights"]);
  });

  it("a failing pre-flight check: prepare rejects with it and no step has run", async () => {
    using dir = tempDir();
    const w = new FakeWorkdir(dir.path, specs);
    const failure = new Error("--tp 2 needs 2 GPUs, but the containers see 1");
    w.behave("engine", { preflightThrows: failure });
    expect(await rejection((await w.pipeline()).run({}))).toBe(failure);
    expect(w.calls).toEqual([
      { call: "preflight", id: "weights", upstream: {} },
      { call: "preflight", id: "engine", upstream: { checkpoint: expected(w, "checkpoint") } },
    ]);
    expect(readdirSync(dir.path)).toEqual([]);
  });
});

describe("Pipeline.verifyRecorded", () => {
  it("each asked step's verdict on its record, in pipeline order, without judging inputs; 'X is not built' without one", async () => {
    using dir = tempDir();
    const specs: FakeSpec[] = [...chain, { id: "model-repo", reads: ["engine"] }];
    const w = await built(dir.path, specs);
    writeFileSync(w.file("checkpoint"), "torn");
    const state = w.onDisk();
    // The engine is stale for float16 but still verifies: serve asks about the files, not the settings.
    const verdicts = await (await w.pipeline({ settings: { dtype: "float16" } })).verifyRecorded(["model-repo", "engine", "checkpoint"]);
    expect(verdicts).toStrictEqual([
      { id: "checkpoint", verdict: { ok: false, reason: 'checkpoint.txt holds "torn", expected "checkpoint v1"' } },
      { id: "engine", verdict: { ok: true } },
      { id: "model-repo", verdict: { ok: true } },
    ]);
    // Each record is checked alone: the steps it reads are not judged (null).
    expect(w.calls).toEqual([
      { call: "verify", id: "checkpoint", upstream: { weights: null } },
      { call: "verify", id: "engine", upstream: { checkpoint: null } },
      { call: "verify", id: "model-repo", upstream: { engine: null } },
    ]);
    expect(w.onDisk()).toStrictEqual(state);

    const partial = new FakeWorkdir(join(dir.path, "partial"), specs);
    await (await partial.pipeline()).run({ only: "weights" });
    partial.calls.length = 0;
    expect(await (await partial.pipeline()).verifyRecorded(["weights", "model-repo"])).toStrictEqual([
      { id: "weights", verdict: { ok: true } },
      { id: "model-repo", verdict: { ok: false, reason: "model-repo is not built" } },
    ]);
    expect(partial.calls).toEqual([{ call: "verify", id: "weights", upstream: {} }]);
  });
});

describe("Pipeline.run: the pause points the crash tests kill the CLI at", () => {
  /** Polls until `done` holds: the run goes on in the background meanwhile. */
  async function until(done: () => boolean): Promise<void> {
    const deadline = Date.now() + 2_000;
    while (!done()) {
      if (Date.now() > deadline) throw new Error("timed out waiting");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  it.each([
    { point: "checkpoint:before-record", recorded: ["weights"] },
    { point: "checkpoint:after-record", recorded: ["checkpoint", "weights"] },
  ])("$point: the step's outputs have verified, the next step has not started, recorded: $recorded", async ({ point, recorded }) => {
    using dir = tempDir();
    const w = new FakeWorkdir(join(dir.path, "w"), chain);
    const marker = join(dir.path, "paused");
    vi.stubEnv("LLAMA3_TRT_TEST_PAUSE_AT", point);
    vi.stubEnv("LLAMA3_TRT_TEST_PAUSE_MARKER", marker);
    vi.stubEnv("LLAMA3_TRT_TEST_RESUME_ON_REMOVE", "1");
    const running = (await w.pipeline()).run({});
    await until(() => existsSync(marker));
    expect(readFileSync(marker, "utf8")).toBe(point);
    expect(w.calls.map((c) => `${c.call} ${c.id}`)).toEqual(["plan weights", "run weights", "verify weights", "plan checkpoint", "run checkpoint", "verify checkpoint"]);
    expect(Object.keys(w.onDisk()).sort()).toEqual(recorded);
    rmSync(marker);
    expect((await running).map((o) => [o.id, o.action])).toEqual([
      ["weights", "ran"],
      ["checkpoint", "ran"],
      ["engine", "ran"],
    ]);
    expectRecords(w, builtChain());
  });
});

describe("Pipeline: a mistake in the list of steps is caught, not run on missing outputs", () => {
  it("a step listed before a step it reads", async () => {
    using dir = tempDir();
    const w = new FakeWorkdir(dir.path, [{ id: "checkpoint", reads: ["weights"] }, { id: "weights" }]);
    await expect((await w.pipeline()).evaluate()).rejects.toThrowError(new Error("step checkpoint ran before weights"));
    const error = await rejection((await w.pipeline()).run({}));
    expect(error).toBeInstanceOf(StepFailedError);
    const log = w.paths.log("checkpoint");
    expect((error as Error).message).toBe(
      `Step checkpoint failed: step checkpoint ran before weights\n  Last lines:\n    [llama3-trt] checkpoint: after weights\n  Full log: ${log}`,
    );
    expect(w.called("run")).toEqual([]);
    expect(existsSync(w.paths.state)).toBe(false);
  });

  it("a step that reads a step it does not declare", async () => {
    using dir = tempDir();
    const w = new FakeWorkdir(dir.path, [{ id: "weights" }, { id: "checkpoint", undeclared: "weights" }]);
    await expect((await w.pipeline()).evaluate()).rejects.toThrowError(new Error("step checkpoint reads weights without declaring it"));
  });
});
