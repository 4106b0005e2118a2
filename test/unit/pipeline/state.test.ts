import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { UsageError } from "../../../src/common/errors.ts";
import { StateStore, stateVersion, type StepRecord } from "../../../src/pipeline/state.ts";
import { WorkdirPaths } from "../../../src/pipeline/workdir.ts";
import { tempDir } from "../../helpers/tmp.ts";

const record = (id: StepRecord["id"], fingerprint = "f".repeat(64)): StepRecord => ({
  id,
  fingerprint,
  inputs: { dtype: "bfloat16" },
  out: { dir: "/x" },
  finishedAt: "2026-11-25T00:00:00.000Z",
  tool: { version: "0.1.0", node: "24" },
});

/** What is on disk, parsed: the whole promise of a write is in it. */
const onDisk = (paths: WorkdirPaths): unknown => JSON.parse(readFileSync(paths.state, "utf8"));

describe("state.json", () => {
  it("starts empty without a file, and keeps each record whole across loads", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(join(dir.path, "w"));
    const state = await StateStore.load(paths);
    expect(state.all()).toEqual({});
    expect(state.get("engine")).toBeUndefined();

    await state.put(record("engine"));
    await state.put(record("checkpoint", "c".repeat(64)));

    expect(state.get("engine")).toEqual(record("engine"));
    expect(onDisk(paths)).toEqual({ version: stateVersion, steps: { engine: record("engine"), checkpoint: record("checkpoint", "c".repeat(64)) } });
    expect(readFileSync(paths.state, "utf8").endsWith("}\n")).toBe(true);
    const again = await StateStore.load(paths);
    expect(again.all()).toEqual({ engine: record("engine"), checkpoint: record("checkpoint", "c".repeat(64)) });
    expect(again.get("checkpoint")).toEqual(record("checkpoint", "c".repeat(64)));
    // Nothing but state.json: no temp file left beside it.
    expect(readdirSync(paths.root)).toEqual(["state.json"]);
    // Case 40c: readable by others, writable only by its owner.
    expect(statSync(paths.state).mode & 0o777).toBe(0o644);
  });

  it("hands out a copy: changing it changes neither the store nor the file", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    const state = await StateStore.load(paths);
    await state.put(record("engine"));
    const copy = state.all();
    delete copy.engine;
    expect(state.get("engine")).toEqual(record("engine"));
    expect(onDisk(paths)).toEqual({ version: stateVersion, steps: { engine: record("engine") } });
  });

  it("a put replaces the record of its step and keeps the others", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    const state = await StateStore.load(paths);
    await state.put(record("engine"));
    await state.put(record("weights"));
    await state.put(record("engine", "e".repeat(64)));
    expect(onDisk(paths)).toEqual({ version: stateVersion, steps: { engine: record("engine", "e".repeat(64)), weights: record("weights") } });
  });

  it("removes the records it is given, those it has among several", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    const state = await StateStore.load(paths);
    await state.put(record("engine"));
    await state.put(record("checkpoint"));
    await state.remove("model-repo", "engine");
    expect(state.all()).toEqual({ checkpoint: record("checkpoint") });
    expect(onDisk(paths)).toEqual({ version: stateVersion, steps: { checkpoint: record("checkpoint") } });
  });

  it("writes nothing when there is nothing to remove", async () => {
    using dir = tempDir();
    // A workdir that does not exist yet stays that way (plan and status must not create it).
    const paths = new WorkdirPaths(join(dir.path, "not-yet"));
    const state = await StateStore.load(paths);
    await state.remove("engine", "weights");
    expect(existsSync(paths.root)).toBe(false);
  });

  // Case 21: a kill at the pause point leaves the old file under the final name, the new one whole beside it.
  it("keeps the old file under its name while the complete new one waits to be renamed", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    const state = await StateStore.load(paths);
    await state.put(record("weights"));
    const marker = join(dir.path, "midway");
    vi.stubEnv("LLAMA3_TRT_TEST_PAUSE_AT", "state.json:before-rename");
    vi.stubEnv("LLAMA3_TRT_TEST_PAUSE_MARKER", marker);
    vi.stubEnv("LLAMA3_TRT_TEST_RESUME_ON_REMOVE", "1");

    const writing = state.put(record("engine"));
    await vi.waitFor(() => expect(existsSync(marker)).toBe(true), { timeout: 5_000, interval: 10 });

    expect(readFileSync(marker, "utf8")).toBe("state.json:before-rename");
    expect(onDisk(paths)).toEqual({ version: stateVersion, steps: { weights: record("weights") } });
    const temps = readdirSync(dir.path).filter((name) => /^\.state\.json\.[0-9a-f]{12}\.tmp$/.test(name));
    expect(temps).toHaveLength(1);
    const pending = { version: stateVersion, steps: { weights: record("weights"), engine: record("engine") } };
    expect(JSON.parse(readFileSync(join(dir.path, temps[0] as string), "utf8"))).toEqual(pending);

    rmSync(marker);
    await writing;
    expect(onDisk(paths)).toEqual(pending);
    expect(readdirSync(dir.path)).toEqual(["state.json"]);
  });
});

// Case 23: never read as "nothing done"; exit 2 naming the file, where and what to do.
describe("a damaged state.json", () => {
  it("truncated: refused with the file, the parse error's line and column, and what to do", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    writeFileSync(paths.state, '{"version": 1, "steps": {');
    const refusal = StateStore.load(paths);
    await expect(refusal).rejects.toThrow(UsageError);
    await expect(refusal).rejects.toThrow(
      `${paths.state}:1:26: the state file is damaged (Expected property name or '}'). Nothing was run. ` +
        "Move it aside to rebuild from scratch; finished outputs will be checked and redone only where needed.",
    );
    // V8 says where only for some errors; the line and column are found either way.
    writeFileSync(paths.state, '{"version": 1,\n  "steps": x}');
    await expect(StateStore.load(paths)).rejects.toThrow(`${paths.state}:2:12: the state file is damaged (Unexpected token 'x', ..." "steps": x}" is not valid JSON).`);
  });

  it.each([["null"], ["[1,2]"], ['"text"'], ["42"], ["{}"], ['{"version": "1", "steps": {}}']])("%s: refused as not a state file", async (text) => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    writeFileSync(paths.state, text);
    const refusal = StateStore.load(paths);
    await expect(refusal).rejects.toThrow(UsageError);
    await expect(refusal).rejects.toThrow(`${paths.state} is not a llama3-trt state file. Nothing was run. Move it aside, or use another --workdir.`);
  });

  it("from a newer version: refused, saying to upgrade", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    writeFileSync(paths.state, JSON.stringify({ version: stateVersion + 1, steps: {} }));
    const refusal = StateStore.load(paths);
    await expect(refusal).rejects.toThrow(UsageError);
    await expect(refusal).rejects.toThrow(
      `${paths.state} was written by a newer llama3-trt (state version ${stateVersion + 1}; this one reads ${stateVersion}). Upgrade llama3-trt.`,
    );
  });

  it("unreadable (a folder in its place): the error is reported, not taken for an empty state", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    mkdirSync(paths.state);
    await expect(StateStore.load(paths)).rejects.toMatchObject({ code: "EISDIR" });
  });

  it("keeps only records it can verify: known steps with a fingerprint", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    const steps = {
      engine: record("engine"),
      ghost: { ...record("engine"), id: "ghost" },
      weights: null,
      checkpoint: { ...record("checkpoint"), fingerprint: 42 },
      "model-repo": { id: "model-repo" },
    };
    writeFileSync(paths.state, JSON.stringify({ version: stateVersion, steps }));
    expect((await StateStore.load(paths)).all()).toEqual({ engine: record("engine") });
  });

  it("an older file without steps reads as no step done", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    writeFileSync(paths.state, JSON.stringify({ version: 0 }));
    expect((await StateStore.load(paths)).all()).toEqual({});
  });
});

describe("where a damaged state.json is damaged", () => {
  it.each([
    // A trailing comma and a comment are JSON errors even though JSON-with-comments allows them.
    ['{"version": 1,\n "steps": {},\n}', "3:1", "Expected double-quoted property name"],
    ['// written by hand\n{"version": 1, "steps": {}}', "1:1", "Unexpected token '/'"],
    ['{"version": 1, "steps": {"a": 1}', "1:33", "Expected ',' or '}' after property value"],
  ])("%j is refused at %s", async (text, at, why) => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    writeFileSync(paths.state, text);
    const refusal = StateStore.load(paths);
    await expect(refusal).rejects.toThrow(UsageError);
    await expect(refusal).rejects.toThrow(`${paths.state}:${at}: the state file is damaged (${why}`);
  });
});
