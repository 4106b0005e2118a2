/**
 * Shell and filesystem hostility (reliability case 40): strings with shell syntax stay data,
 * a planted symlink at a temp file's exact name is not followed, a symlinked workdir is shown
 * by its real path, a world-writable folder is warned about, and nothing the tool creates is
 * writable by other users.
 */
import { createHash } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { containersWithLabel } from "../helpers/docker.ts";
import { freePorts } from "../helpers/ports.ts";
import { builtSandbox, plan, type Sandbox, sandbox } from "../helpers/product.ts";
import { useWorld, type World } from "../helpers/world.ts";

const pwned = ["/tmp/llama3-trt-pwned", "/tmp/llama3-trt-pwned2", "/tmp/llama3-trt-pwned3", "/tmp/llama3-trt-pwned4"];

/** What the world's stand-in model answers (llama3_trt_standin/textgen.py): it hashes the exact message. */
function standInAnswer(message: string): string {
  const words = (message.match(/[\w'-]+/g) ?? []).slice(0, 8);
  const tag = createHash("sha256").update(message).digest("hex").slice(0, 8);
  return `Stand-in answer ${tag}: you asked about ${words.length > 0 ? words.join(" ") : "nothing in particular"}.`;
}

/** Files and folders under `root` (symlinks not followed) that users other than the owner may write. */
function writableByOthers(root: string): string[] {
  if (!existsSync(root)) return [];
  const found: string[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    if (entry.isSymbolicLink()) continue;
    if ((lstatSync(path).mode & 0o002) !== 0) found.push(path);
  }
  return found;
}

describe("shell and filesystem hostility (case 40)", { timeout: 300_000 }, () => {
  let world: World;
  let built: Sandbox;

  beforeAll(async () => {
    for (const file of pwned) rmSync(file, { force: true });
    world = useWorld();
    built = await builtSandbox(world);
    return async () => {
      await built[Symbol.asyncDispose]();
      await world[Symbol.asyncDispose]();
    };
  });

  it("prompts and settings with shell syntax are passed literally, never run (40a)", async () => {
    const prompt = "$(touch /tmp/llama3-trt-pwned); `touch /tmp/llama3-trt-pwned2` && echo hi; rm -rf /";
    const ports = (await freePorts()).env;
    expect((await built.run(["serve", "--detach"], ports)).exitCode).toBe(0);
    try {
      const asked = await built.run(["ask", prompt], ports);
      expect(asked.exitCode, asked.stderr).toBe(0);
      // The answer is made from the exact bytes of the prompt: it arrived untouched.
      expect(asked.stdout).toBe(`${standInAnswer(prompt)}\n`);
      const system = await built.run(["ask", "--system", "`touch /tmp/llama3-trt-pwned3`", prompt], ports);
      expect(system.exitCode, system.stderr).toBe(0);
    } finally {
      expect((await built.run(["stop"])).exitCode).toBe(0);
    }
    const local = await built.run(["ask", "--local", prompt]);
    expect(local.exitCode, local.stderr).toBe(0);
    expect(local.stdout).toBe(`${standInAnswer(prompt)}\n`);

    // Settings: refused as values, before anything runs.
    await using box = sandbox(world);
    for (const [name, value] of [
      ["LLAMA3_TRT_MODEL", "meta-llama/x;touch /tmp/llama3-trt-pwned4"],
      ["LLAMA3_TRT_BUILD_IMAGE", "img`touch /tmp/llama3-trt-pwned4`"],
      ["LLAMA3_TRT_REVISION", "main && touch /tmp/llama3-trt-pwned4"],
    ] as const) {
      const result = await box.run(["build"], { [name]: value });
      expect(result.exitCode, `${name}=${value}`).toBe(2);
      expect(result.stderr).toContain(`${name}: expected`);
    }
    for (const file of pwned) expect(existsSync(file), file).toBe(false);
  });

  it("a symlink planted at the exact name of a temp file is not followed; the write still happens (40b)", async () => {
    await using box = sandbox(world);
    const victim = join(box.dir, "victim");
    writeFileSync(victim, "precious\n");
    // refs/main in the Hugging Face cache is written through a temp file; plant its exact name.
    const refs = join(box.dir, "home/.cache/huggingface/hub/models--meta-llama--Meta-Llama-3-8B-Instruct/refs");
    mkdirSync(refs, { recursive: true });
    const random = "0123456789ab";
    const planted = join(refs, `.main.${random}.tmp`);
    symlinkSync(victim, planted);
    const result = await box.run(["build", "--only", "weights"], { LLAMA3_TRT_TEST_TEMP_RANDOM: random });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(readFileSync(victim, "utf8")).toBe("precious\n");
    expect(lstatSync(planted).isSymbolicLink()).toBe(true);
    expect(readlinkSync(planted)).toBe(victim);
    // The write went to a temp file of its own and was renamed into place.
    expect(lstatSync(join(refs, "main")).isFile()).toBe(true);
    expect(readFileSync(join(refs, "main"), "utf8")).toMatch(/^[0-9a-f]{40}$/);
  });

  it("a symlinked workdir is shown by its real path; a folder writable by everyone is warned about (40b)", async () => {
    await using box = sandbox(world);
    const real = join(box.dir, "real-workdir");
    mkdirSync(real);
    const link = join(box.dir, "linked-workdir");
    symlinkSync(real, link);
    const result = await box.run(["-w", link, "build", "--only", "trtllm-repo"]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain(`in ${realpathSync(real)}`);
    expect(result.stdout + result.stderr).not.toContain(link);
    const steps = await plan(box, [], { LLAMA3_TRT_WORKDIR: link });
    expect(steps.find((s) => s.id === "trtllm-repo")?.git?.dir).toBe(join(realpathSync(real), "repos/TensorRT-LLM"));

    chmodSync(join(real, "logs"), 0o777);
    const warned = await box.run(["-w", link, "build", "--only", "trtllm-repo"]);
    expect(warned.exitCode, warned.stderr).toBe(0);
    const logs = join(realpathSync(real), "logs");
    expect(warned.stderr).toContain(`${logs} is writable by every user of this host: anyone could change what llama3-trt writes and later reads there. Run \`chmod o-w ${logs}\`.`);
    chmodSync(join(real, "logs"), 0o755);
    const quiet = await box.run(["-w", link, "build", "--only", "trtllm-repo"]);
    expect(quiet.stderr).not.toContain("is writable by every user");
  });

  it("started with umask 000, it still creates nothing others may write (40c)", async () => {
    await using box = sandbox(world);
    const entry = fileURLToPath(new URL("../helpers/llama3-trt.ts", import.meta.url));
    const result = spawnSync("sh", ["-c", 'umask 000 && exec "$0" "$@"', process.execPath, "--disable-warning=ExperimentalWarning", entry, "build", "--only", "trtllm-repo"], {
      cwd: box.dir,
      env: box.env,
      encoding: "utf8",
    });
    expect(result.status, result.stderr).toBe(0);
    expect(readdirSync(box.workdir).length).toBeGreaterThan(0);
    expect(writableByOthers(box.workdir)).toEqual([]);
  });

  it("nothing the tool created is writable by other users, and state.json holds no secret (40c)", async () => {
    expect(writableByOthers(built.workdir)).toEqual([]);
    const cache = join(built.dir, "home/.cache/huggingface/hub/models--meta-llama--Meta-Llama-3-8B-Instruct");
    expect(writableByOthers(cache)).toEqual([]);
    // Blobs take the cache folder's permissions less the execute bits: 644 under a 755 folder.
    const cacheMode = statSync(join(cache, "blobs")).mode & 0o777;
    for (const blob of readdirSync(join(cache, "blobs"))) expect(statSync(join(cache, "blobs", blob)).mode & 0o777).toBe(cacheMode & 0o666);
    expect(readFileSync(join(built.workdir, "state.json"), "utf8")).not.toContain(world.env.HF_TOKEN);
    expect(await containersWithLabel("dev.llama3-trt.workdir", built.workdirId)).toEqual([]);
  });
});
