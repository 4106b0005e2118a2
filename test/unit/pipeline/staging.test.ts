/**
 * buildFolder, the one staging-then-rename of every step that makes a folder: what is under the
 * final name is always a whole folder — the old one or the new one — whether the build succeeds,
 * fails, or its process is killed with SIGKILL half-way (a real child process here).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { buildFolder, stagingFor } from "../../../src/pipeline/staging.ts";
import { tempDir } from "../../helpers/tmp.ts";

function oldFolder(root: string): string {
  const final = join(root, "engine");
  mkdirSync(final);
  writeFileSync(join(final, "rank0.engine"), "old");
  return final;
}

describe("buildFolder", () => {
  it("replaces the folder with what the build made, and leaves nothing beside it", async () => {
    using dir = tempDir();
    const final = oldFolder(dir.path);
    let seen = "";
    await buildFolder(final, stagingFor(final), async (staging) => {
      seen = staging;
      // The build starts from an empty folder of its own.
      expect(readdirSync(staging)).toEqual([]);
      writeFileSync(join(staging, "rank0.engine"), "new");
    });
    expect(seen).toBe(stagingFor(final));
    expect(readdirSync(final)).toEqual(["rank0.engine"]);
    expect(readFileSync(join(final, "rank0.engine"), "utf8")).toBe("new");
    expect(readdirSync(dir.path)).toEqual(["engine"]);
  });

  it("makes the folder when there was none", async () => {
    using dir = tempDir();
    const final = join(dir.path, "checkpoint");
    await buildFolder(final, stagingFor(final), async (staging) => writeFileSync(join(staging, "config.json"), "{}"));
    expect(readdirSync(final)).toEqual(["config.json"]);
    expect(readdirSync(dir.path)).toEqual(["checkpoint"]);
  });

  it("a failing build leaves the old folder as it was and no staging folder", async () => {
    using dir = tempDir();
    const final = oldFolder(dir.path);
    const failure = new Error("trtllm-build exited with code 1");
    await expect(
      buildFolder(final, stagingFor(final), async (staging) => {
        writeFileSync(join(staging, "rank0.engine"), "half");
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(readFileSync(join(final, "rank0.engine"), "utf8")).toBe("old");
    expect(readdirSync(dir.path)).toEqual(["engine"]);
  });

  it("killed half-way (SIGKILL): the old folder is whole; the next build clears what the kill left", async () => {
    using dir = tempDir();
    const final = oldFolder(dir.path);
    const marker = join(dir.path, "half-written");
    const script = `
      import { writeFileSync } from "node:fs";
      import { join } from "node:path";
      import { buildFolder, stagingFor } from ${JSON.stringify(fileURLToPath(new URL("../../../src/pipeline/staging.ts", import.meta.url)))};
      const final = ${JSON.stringify(final)};
      await buildFolder(final, stagingFor(final), async (staging) => {
        writeFileSync(join(staging, "rank0.engine"), "half");
        writeFileSync(${JSON.stringify(marker)}, "");
        await new Promise(() => setInterval(() => {}, 1 << 30));
      });`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: "ignore" });
    const deadline = Date.now() + 10_000;
    while (!existsSync(marker)) {
      if (Date.now() > deadline) throw new Error("the child did not reach the middle of its build");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    expect(readFileSync(join(final, "rank0.engine"), "utf8")).toBe("old");
    expect(readdirSync(dir.path).sort()).toEqual(["engine", "engine.tmp-staging", "half-written"]);

    await buildFolder(final, stagingFor(final), async (staging) => writeFileSync(join(staging, "rank0.engine"), "new"));
    expect(readFileSync(join(final, "rank0.engine"), "utf8")).toBe("new");
    expect(readdirSync(dir.path).sort()).toEqual(["engine", "half-written"]);
  });

  it("after a kill between its two renames (the old folder aside, the new one not in place), the next build starts clean", async () => {
    using dir = tempDir();
    const final = join(dir.path, "model-repo");
    mkdirSync(`${final}.tmp-old`);
    mkdirSync(stagingFor(final));
    writeFileSync(join(stagingFor(final), "stale"), "");
    await buildFolder(final, stagingFor(final), async (staging) => {
      expect(readdirSync(staging)).toEqual([]);
      writeFileSync(join(staging, "config.pbtxt"), "x");
    });
    expect(readdirSync(dir.path)).toEqual(["model-repo"]);
    expect(readdirSync(final)).toEqual(["config.pbtxt"]);
  });
});

describe("buildFolder, edges", () => {
  it("makes the folder where not even its parent exists yet", async () => {
    using dir = tempDir();
    const final = join(dir.path, "new/parent/engine");
    await buildFolder(final, stagingFor(final), async (staging) => writeFileSync(join(staging, "config.json"), "{}"));
    expect(readdirSync(final)).toEqual(["config.json"]);
    expect(readdirSync(join(dir.path, "new/parent"))).toEqual(["engine"]);
  });

  it("clears what killed runs left, full folders too, before it builds", async () => {
    using dir = tempDir();
    const final = oldFolder(dir.path);
    for (const leftover of [stagingFor(final), `${final}.tmp-old`, `${final}.tmp-0000dead`]) {
      mkdirSync(join(leftover, "deep/er"), { recursive: true });
      writeFileSync(join(leftover, "deep/er/file"), "left");
    }
    await buildFolder(final, stagingFor(final), async (staging) => {
      expect(readdirSync(dir.path).sort()).toEqual(["engine", "engine.tmp-staging"]);
      expect(readdirSync(staging)).toEqual([]);
      writeFileSync(join(staging, "rank0.engine"), "new");
    });
    expect(readdirSync(dir.path)).toEqual(["engine"]);
    expect(readFileSync(join(final, "rank0.engine"), "utf8")).toBe("new");
  });
});
