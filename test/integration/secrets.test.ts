/**
 * The Hugging Face token never leaves its lane (reliability cases 37 and 38): a sentinel token
 * goes through a whole build, serve, ask and the failure cases, and "SENTINEL" is searched for
 * everywhere a secret could end up: stdout and stderr, logs, state.json, the lock's owner file,
 * plan and status output, the argv and environment of every child the CLI started (traced),
 * `ps` samples taken while git, the download and each container ran, and `docker inspect` of
 * every container. The Hub stand-in's request log shows where Authorization was sent.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { SENTINEL_TOKEN } from "../../world/server/tokens.ts";
import { containersWithLabel, docker } from "../helpers/docker.ts";
import { clearBehaviour, type Sandbox, sandbox, setBehaviour, until } from "../helpers/product.ts";
import { freePorts } from "../helpers/ports.ts";
import { useWorld, type World } from "../helpers/world.ts";

/** What must never appear: the token, its distinctive middle, and the world CDN's signing key id. */
const needles = [SENTINEL_TOKEN, "SENTINEL", "AKIAWORLDSTANDIN"];

/** Every place a leak was looked for, and what was found there. */
class Haystack {
  readonly #texts: { where: string; text: string }[] = [];
  add(where: string, text: string): void {
    this.#texts.push({ where, text });
  }
  addFiles(dir: string, prefix = dir): void {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (!entry.isFile()) continue;
      const path = join(entry.parentPath, entry.name);
      this.add(path.replace(prefix, "<workdir>"), readFileSync(path, "utf8"));
    }
  }
  get size(): number {
    return this.#texts.length;
  }
  /** Every (where, needle) that matched: the test expects none. */
  leaks(): string[] {
    const found: string[] = [];
    for (const { where, text } of this.#texts) {
      for (const needle of needles) if (text.includes(needle)) found.push(`${needle} in ${where}`);
      // A signed CDN URL's signature, unredacted.
      if (/X-Amz-Signature=(?!\*\*\*)[0-9a-f]/.test(text)) found.push(`an X-Amz-Signature in ${where}`);
    }
    return found;
  }
}

/** The workdir's text files: logs, state, lock info, model repository (not the engine or checkpoint). */
function workdirTexts(box: Sandbox, hay: Haystack): void {
  for (const name of ["logs", "model-repo", ".lock"]) hay.addFiles(join(box.workdir, name), box.workdir);
  if (existsSync(join(box.workdir, "state.json"))) hay.add("state.json", readFileSync(join(box.workdir, "state.json"), "utf8"));
}

describe("no secret anywhere (cases 37, 38)", { timeout: 300_000 }, () => {
  let world: World;

  beforeAll(() => {
    world = useWorld();
    return () => world[Symbol.asyncDispose]();
  });

  afterEach(async () => {
    await clearBehaviour(world);
  });

  it("a whole build, serve and ask with a sentinel token: it is nowhere but in the Authorization header to the Hub", async () => {
    await using box = sandbox(world, { traceSpawns: true });
    await using w = useWorld();
    const env = { HF_TOKEN: SENTINEL_TOKEN };
    const hay = new Haystack();

    // Each clone waits on the serving side until the sampler has looked at it (see git.test.ts).
    const markers = join(box.dir, "clones");
    const hook = join(box.dir, "hold-pack.sh");
    writeFileSync(hook, `#!/bin/sh\ntouch "${markers}/$$"\nwhile [ ! -e "${markers}/$$.go" ]; do sleep 0.05; done\nexec "$@"\n`);
    chmodSync(hook, 0o755);
    execFileSync("mkdir", ["-p", markers]);
    writeFileSync(join(box.dir, "home/.gitconfig"), `[uploadpack]\n\tpackObjectsHook = ${hook}\n`);
    // Long enough to be seen running: the download, the conversion and the engine build.
    await world.setScenario({ rules: [{ match: "model-00001-of-00004.safetensors", origin: "cdn", bytesPerSecond: 400_000 }] });
    await setBehaviour(world, "convert_checkpoint.py", { sleepSeconds: 3 }, 1);
    await setBehaviour(world, "trtllm-build", { sleepSeconds: 3 }, 1);

    const seen = { git: 0, download: 0, containers: new Set<string>() };
    const sample = async (phase: string) => {
      hay.add(`ps during ${phase}`, execFileSync("ps", ["-eo", "args"], { encoding: "utf8" }));
      const owner = join(box.workdir, ".lock/owner.json");
      if (existsSync(owner)) hay.add(`lock owner during ${phase}`, readFileSync(owner, "utf8"));
      for (const c of await containersWithLabel("dev.llama3-trt.workdir", box.workdirId)) {
        const inspect = await docker().getContainer(c.id).inspect().catch(() => undefined);
        if (!inspect) continue;
        hay.add(`docker inspect of ${c.labels["dev.llama3-trt.role"]}`, JSON.stringify(inspect));
        seen.containers.add(c.labels["dev.llama3-trt.role"] as string);
      }
    };

    const run = box.start(["build"], env);
    let done = false;
    void run.exited().then(() => (done = true));
    while (!done) {
      for (const name of existsSync(markers) ? readdirSync(markers) : []) {
        if (name.endsWith(".go") || existsSync(join(markers, `${name}.go`))) continue;
        await sample("git clone");
        seen.git++;
        writeFileSync(join(markers, `${name}.go`), "");
      }
      const blobs = join(box.dir, "home/.cache/huggingface/hub/models--meta-llama--Meta-Llama-3-8B-Instruct/blobs");
      if (existsSync(blobs) && readdirSync(blobs).some((n) => n.endsWith(".incomplete"))) {
        await sample("download");
        seen.download++;
      }
      await sample("build");
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    const built = await run.exited();
    expect(built.exitCode, built.stderr).toBe(0);
    rmSync(join(box.dir, "home/.gitconfig"));
    // The samples did see each phase: a sampler that missed them would prove nothing.
    expect(seen.git).toBe(2);
    expect(seen.download).toBeGreaterThan(0);
    expect([...seen.containers].sort()).toEqual(expect.arrayContaining(["checkpoint", "engine"]));
    hay.add("build stdout", built.stdout);
    hay.add("build stderr", built.stderr);

    // The commands people and scripts read, each with the token in their environment.
    for (const args of [["plan", "--json"], ["plan"], ["status", "--json"], ["doctor", "--json"], ["doctor"], ["build", "--verify", "--json"]]) {
      const result = await box.run(args, env);
      hay.add(`${args.join(" ")} stdout`, result.stdout);
      hay.add(`${args.join(" ")} stderr`, result.stderr);
    }
    const ports = (await freePorts()).env;
    const served = await box.run(["serve", "--detach"], { ...env, ...ports });
    expect(served.exitCode, served.stderr).toBe(0);
    try {
      const [server] = await containersWithLabel("dev.llama3-trt.workdir", box.workdirId);
      hay.add("docker inspect of the server", JSON.stringify(await docker().getContainer(server?.id as string).inspect()));
      for (const args of [["ask", "hello"], ["ask", "--stream", "hello"], ["ask", "--json", "hello"], ["status", "--json"], ["logs"]]) {
        const result = await box.run(args, { ...env, ...ports });
        expect(result.exitCode, `${args.join(" ")}: ${result.stderr}`).toBe(0);
        hay.add(`${args.join(" ")} stdout`, result.stdout);
        hay.add(`${args.join(" ")} stderr`, result.stderr);
      }
      await sample("serve");
    } finally {
      expect((await box.run(["stop"], env)).exitCode).toBe(0);
    }
    const local = await box.run(["ask", "--local", "hello"], env);
    expect(local.exitCode, local.stderr).toBe(0);
    hay.add("ask --local", local.stdout + local.stderr);

    // Every child: no token in its argv or its environment (git gets a built environment, the
    // containers get theirs from the Engine API, never from a child).
    const spawns = box.spawns();
    expect(spawns.some((s) => s.file === "git")).toBe(true);
    for (const s of spawns) {
      hay.add(`argv of ${s.file}`, JSON.stringify([s.file, ...s.args]));
      hay.add(`environment of ${s.file}`, JSON.stringify(s.env));
      expect(s.shell, `${s.file} through a shell`).toBe(false);
    }
    workdirTexts(box, hay);

    expect(hay.size).toBeGreaterThan(40);
    expect(hay.leaks()).toEqual([]);
    // Where it did go: in the Authorization header of requests to the Hub, never to the CDN.
    const requests = await w.hubRequests();
    expect(requests.some((r) => r.origin === "hub" && r.authorization)).toBe(true);
    expect(requests.filter((r) => r.origin === "cdn" && r.authorization)).toEqual([]);
  });

  it("the failure cases say what went wrong without the token in it", async () => {
    await using box = sandbox(world, { traceSpawns: true });
    const env = { HF_TOKEN: SENTINEL_TOKEN };
    const hay = new Haystack();
    const record = (what: string, result: { stdout: string; stderr: string }) => hay.add(what, result.stdout + result.stderr);

    // The Hub failing (cases 10-13): no access, a missing revision, a server error.
    await world.setScenario({ rules: [{ match: "**/paths-info/**", origin: "hub", status: 403, times: 1 }] });
    record("403", await box.run(["build", "--only", "weights"], env));
    await world.setScenario({ rules: [{ match: "config.json", origin: "hub", status: 500, times: 1 }, { match: "config.json", origin: "hub", status: 503, times: 1 }] });
    record("500 then 503", await box.run(["build", "--only", "weights"], env));
    record("revision", await box.run(["build", "--only", "weights"], { ...env, LLAMA3_TRT_REVISION: "nope" }));
    await world.setScenario({ rules: [] });
    // A token in a git URL (case 37), refused without repeating it.
    const gitUrl = await box.run(["build"], { ...env, LLAMA3_TRT_TRTLLM_REPO_URL: "https://u:ghp_SENTINELaaaaaaaaaaaaaaaa@127.0.0.1:1/x.git" });
    expect(gitUrl.exitCode).toBe(2);
    record("git URL with a token", gitUrl);
    // Docker (cases 25, 26, 30): no engine, no NVIDIA runtime, a failing step.
    record("no engine", await box.run(["build"], { ...env, DOCKER_HOST: "unix:///nonexistent.sock" }));
    expect((await box.run(["build"], env)).exitCode).toBe(0);
    record("gpus all", await box.run(["build", "--force", "engine", "--gpus", "all"], env));
    await setBehaviour(world, "trtllm-build", { exitCode: 1 }, 1);
    record("failing engine", await box.run(["build", "--force", "engine"], env));
    expect((await box.run(["build"], env)).exitCode).toBe(0);
    // Serving (cases 31, 32): a port in use, readiness that never comes.
    const ports = (await freePorts()).env;
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(Number(ports.LLAMA3_TRT_PORT), "127.0.0.1", resolve));
    try {
      record("port in use", await box.run(["serve", "--detach"], { ...env, ...ports }));
    } finally {
      holder.close();
    }
    await setBehaviour(world, "tritonserver", { neverReady: true }, 1);
    record("never ready", await box.run(["serve", "--detach", "--timeout", "2"], { ...env, ...ports }));
    // Ctrl-C during a step (case 28).
    await setBehaviour(world, "trtllm-build", { sleepSeconds: 60 }, 1);
    await using w = useWorld();
    const interrupted = box.start(["build", "--force", "engine"], env);
    await until(async () => (await w.invocations("trtllm-build")) === 1, "trtllm-build to start");
    interrupted.child.kill("SIGINT");
    record("interrupted", await interrupted.exited());

    for (const s of box.spawns()) hay.add(`child ${s.file}`, JSON.stringify(s));
    workdirTexts(box, hay);
    expect(hay.leaks()).toEqual([]);
    expect(await containersWithLabel("dev.llama3-trt.workdir", box.workdirId)).toEqual([]);
  });
});
