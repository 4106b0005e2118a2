import { readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sweepTempFiles, writeFileAtomic } from "../../../src/common/atomic-file.ts";
import { UsageError } from "../../../src/common/errors.ts";
import { StateStore, stateVersion, type StepRecord } from "../../../src/pipeline/state.ts";
import { WorkdirPaths } from "../../../src/pipeline/workdir.ts";
import { tempDir } from "../../helpers/tmp.ts";

const record = (id: StepRecord["id"]): StepRecord => ({
  id,
  fingerprint: "f".repeat(64),
  inputs: { dtype: "bfloat16" },
  out: { dir: "/x" },
  finishedAt: "2026-11-25T00:00:00.000Z",
  tool: { version: "0.1.0", node: "24" },
});

describe("state.json", () => {
  it("starts empty, keeps records across loads, and removes them", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    const state = await StateStore.load(paths);
    expect(state.all()).toEqual({});
    await state.put(record("engine"));
    await state.put(record("checkpoint"));
    expect(Object.keys((await StateStore.load(paths)).all()).sort()).toEqual(["checkpoint", "engine"]);
    await state.remove("engine");
    expect(Object.keys((await StateStore.load(paths)).all())).toEqual(["checkpoint"]);
    expect(JSON.parse(readFileSync(paths.state, "utf8")).version).toBe(stateVersion);
  });

  it("refuses a damaged file instead of treating it as nothing done", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    writeFileSync(paths.state, '{"version": 1, "steps": {');
    await expect(StateStore.load(paths)).rejects.toThrow(UsageError);
    await expect(StateStore.load(paths)).rejects.toThrow(`${paths.state}:1:26: the state file is damaged (Expected property name or '}'). Nothing was run.`);
    writeFileSync(paths.state, '{"version": 1,\n  "steps": x}');
    await expect(StateStore.load(paths)).rejects.toThrow(`${paths.state}:2:12: the state file is damaged (Unexpected token 'x', ..." "steps": x}" is not valid JSON).`);
    writeFileSync(paths.state, "[1,2]");
    await expect(StateStore.load(paths)).rejects.toThrow("is not a llama3-trt state file");
  });

  it("refuses a file from a newer version", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    writeFileSync(paths.state, JSON.stringify({ version: stateVersion + 1, steps: {} }));
    await expect(StateStore.load(paths)).rejects.toThrow("written by a newer llama3-trt");
  });

  it("drops records of unknown steps", async () => {
    using dir = tempDir();
    const paths = new WorkdirPaths(dir.path);
    writeFileSync(paths.state, JSON.stringify({ version: 1, steps: { engine: record("engine"), ghost: { fingerprint: "x" } } }));
    expect(Object.keys((await StateStore.load(paths)).all())).toEqual(["engine"]);
  });
});

describe("atomic writes", () => {
  it("replace the file and leave no temp file", async () => {
    using dir = tempDir();
    const file = join(dir.path, "state.json");
    await writeFileAtomic(file, "old");
    await writeFileAtomic(file, "new");
    expect(readFileSync(file, "utf8")).toBe("new");
    expect(readdirSync(dir.path)).toEqual(["state.json"]);
  });

  it("never follow a symlink planted where a temp file could be", async () => {
    using dir = tempDir();
    const victim = join(dir.path, "victim");
    writeFileSync(victim, "untouched");
    // Plant links under many names a writer might pick; the random name never matches one.
    for (let i = 0; i < 20; i++) symlinkSync(victim, join(dir.path, `.state.json.${String(i).padStart(12, "0")}.tmp`));
    await writeFileAtomic(join(dir.path, "state.json"), "data");
    expect(readFileSync(victim, "utf8")).toBe("untouched");
  });

  it("leftover temp files are swept, other files are not", async () => {
    using dir = tempDir();
    writeFileSync(join(dir.path, ".state.json.0123456789ab.tmp"), "partial");
    writeFileSync(join(dir.path, "keep.tmp"), "mine");
    expect(await sweepTempFiles(dir.path)).toEqual([".state.json.0123456789ab.tmp"]);
    expect(readdirSync(dir.path)).toEqual(["keep.tmp"]);
  });
});
