/**
 * The clone steps against real git and the world's bare repositories: a real clone killed half
 * way (reliability case 19) and hostile URLs and refs that must never reach git (case 20).
 *
 * To catch a clone in the middle, the sandbox's own ~/.gitconfig gives the serving side an
 * `uploadpack.packObjectsHook` (git reads it from the user's config only, never a repository's):
 * it sends the first 2,000 bytes of the pack, leaves a marker, and waits before sending the rest.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { plan, sandbox, stateOf, until } from "../helpers/product.ts";
import { useWorld, type World } from "../helpers/world.ts";

describe("the clone steps against real git", { timeout: 300_000 }, () => {
  let world: World;

  beforeAll(() => {
    world = useWorld();
    return () => world[Symbol.asyncDispose]();
  });

  it("kill -9 in the middle of a real git clone: nothing looks cloned, the rerun clones cleanly at the tag (case 19)", async () => {
    await using box = sandbox(world);
    const marker = join(box.dir, "pack-half-sent");
    const hook = join(box.dir, "slow-pack.sh");
    writeFileSync(
      hook,
      [
        "#!/bin/sh",
        `pack="${box.dir}/pack.$$"`,
        '"$@" > "$pack"',
        'head -c 2000 "$pack"',
        `echo $$ > "${marker}"`,
        // Killed by the test at the end; 120 s is only a bound should it not be.
        "sleep 120",
        'tail -c +2001 "$pack"',
        "",
      ].join("\n"),
    );
    chmodSync(hook, 0o755);
    const gitconfig = join(box.dir, "home/.gitconfig");
    writeFileSync(gitconfig, `[uploadpack]\n\tpackObjectsHook = ${hook}\n`);
    try {
      const run = box.start(["build", "--only", "trtllm-repo"]);
      await until(() => existsSync(marker), "the clone to be half way", 60_000);
      // Half a pack has arrived, into the run's own staging folder, not the final one.
      const repos = join(box.workdir, "repos");
      const staging = readdirSync(repos).filter((n) => n.startsWith("TensorRT-LLM.tmp-"));
      expect(staging).toHaveLength(1);
      expect(readdirSync(repos)).not.toContain("TensorRT-LLM");
      run.child.kill("SIGKILL");
      await run.exited();

      expect(readdirSync(repos)).not.toContain("TensorRT-LLM");
      expect(stateOf(await plan(box))["trtllm-repo"]).toBe("pending");

      // The rerun, with the serving side back to normal: no "destination path already exists".
      rmSync(gitconfig);
      const rerun = await box.run(["build", "--only", "trtllm-repo"]);
      expect(rerun.exitCode, rerun.stderr).toBe(0);
      expect(readdirSync(repos)).toEqual(["TensorRT-LLM"]);
      const checkout = join(repos, "TensorRT-LLM");
      const head = execFileSync("git", ["-C", checkout, "rev-parse", "HEAD"], { encoding: "utf8" }).trim();
      const tag = execFileSync("git", ["--git-dir", fileURLToPath(world.world.gitRepos.trtllm), "rev-parse", "v0.8.0^{commit}"], { encoding: "utf8" }).trim();
      expect(head).toBe(tag);
      expect(execFileSync("git", ["-C", checkout, "status", "--porcelain"], { encoding: "utf8" })).toBe("");
      expect(existsSync(join(checkout, "examples/llama/convert_checkpoint.py"))).toBe(true);
      expect(stateOf(await plan(box))["trtllm-repo"]).toBe("done");
    } finally {
      // The git processes the kill orphaned (git and its serving side keep running: nothing
      // signals them) are the test's to end.
      try {
        execFileSync("pkill", ["-9", "-f", hook], { stdio: "ignore" });
      } catch {
        // pkill exits 1 when nothing matched: nothing was left.
      }
    }
  });

  it.each([
    ["LLAMA3_TRT_TRTLLM_REPO_URL", "--upload-pack=touch /tmp/llama3-trt-pwn1", "expected an https://, ssh://, git:// or file:// URL"],
    ["LLAMA3_TRT_TRTLLM_REPO_URL", "-vu touch /tmp/llama3-trt-pwn1", "expected an https://, ssh://, git:// or file:// URL"],
    ["LLAMA3_TRT_TRTLLM_REPO_URL", "ext::sh -c touch% /tmp/llama3-trt-pwn2", "expected an https://, ssh://, git:// or file:// URL"],
    ["LLAMA3_TRT_BACKEND_REPO_REF", "--output=/tmp/llama3-trt-pwn3", "expected a git branch, tag or commit"],
    ["LLAMA3_TRT_BACKEND_REPO_REF", "-u touch /tmp/llama3-trt-pwn3", "expected a git branch, tag or commit"],
  ])("%s=%j is refused at validation (exit 2), and git never runs (case 20)", async (variable, value, message) => {
    await using box = sandbox(world, { traceSpawns: true });
    const result = await box.run(["build"], { [variable]: value });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`${variable}: ${message}`);
    expect(box.spawns()).toEqual([]);
    for (const n of [1, 2, 3]) expect(existsSync(`/tmp/llama3-trt-pwn${n}`)).toBe(false);
    expect(existsSync(box.workdir)).toBe(false);
  });

  it("the spawn trace sees the git of a normal clone, so the test above can fail (case 20)", async () => {
    await using box = sandbox(world, { traceSpawns: true });
    const result = await box.run(["build", "--only", "backend-repo"]);
    expect(result.exitCode, result.stderr).toBe(0);
    const git = box.spawns().filter((s) => s.file === "git");
    expect(git.some((s) => s.args.includes("clone") && s.args.includes("--") && s.args.at(-2) === world.env.LLAMA3_TRT_BACKEND_REPO_URL)).toBe(true);
    expect(git.every((s) => !s.shell)).toBe(true);
  });
});
