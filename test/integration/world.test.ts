/**
 * The test world itself (world/README.md): it starts once and reuses everything on a second
 * start, its images run from the local registry, its git repositories look like the real
 * ones at v0.8.0, its Hub answers, and world:down stops exactly what world:up started.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, inject, it } from "vitest";
import { engineAnswers } from "../../world/docker.ts";
import { portAnswers } from "../../world/net.ts";
import { repoRoot, worldConfig } from "../../world/paths.ts";
import { findProcesses } from "../../world/processes.ts";
import { manifestDigest } from "../../world/registry.ts";
import { DENIED_TOKEN, GRANTED_TOKEN } from "../../world/server/tokens.ts";
import type { WorldEnvFile } from "../../world/state.ts";
import { worldDown, worldUp } from "../../world/world.ts";
import { containersWithLabel, docker, imageId, pullImage, removeImageTag, runContainer } from "../helpers/docker.ts";
import { readWorldFile, useWorld } from "../helpers/world.ts";

const TRITON_MODELS = ["ensemble", "preprocessing", "postprocessing", "tensorrt_llm", "tensorrt_llm_bls"];

describe("the test world", () => {
  it("writes env.json with exactly the documented keys", () => {
    const file = readWorldFile();
    expect(Object.keys(file).sort()).toEqual(["env", "world"]);
    expect(Object.keys(file.env).sort()).toEqual(
      [
        "HF_ENDPOINT",
        "HF_TOKEN",
        "LLAMA3_TRT_GPUS",
        "LLAMA3_TRT_TRTLLM_REPO_URL",
        "LLAMA3_TRT_BACKEND_REPO_URL",
        "LLAMA3_TRT_BUILD_IMAGE",
        "LLAMA3_TRT_BUILD_BASE_IMAGE",
        "LLAMA3_TRT_TRITON_IMAGE",
      ].sort(),
    );
    expect(Object.keys(file.world).sort()).toEqual(
      ["root", "registry", "hubUrl", "cdnUrl", "recorderUrl", "invocationsLog", "hubRequestLog", "images", "gitRepos", "started"].sort(),
    );
    const { env, world } = file;
    expect(env.HF_ENDPOINT).toBe(world.hubUrl);
    expect(env.HF_TOKEN).toBe(GRANTED_TOKEN);
    expect(env.LLAMA3_TRT_GPUS).toBe("none");
    expect(world.images).toEqual({
      triton: `${world.registry}/nvidia/tritonserver:24.03-trtllm-python-py3`,
      build: `${world.registry}/llama3-trt/tensorrt-llm:0.8.0`,
      cudaDevel: `${world.registry}/nvidia/cuda:12.1.0-devel-ubuntu22.04`,
    });
    expect(env.LLAMA3_TRT_TRITON_IMAGE).toBe(world.images.triton);
    expect(env.LLAMA3_TRT_BUILD_IMAGE).toBe(world.images.build);
    expect(env.LLAMA3_TRT_BUILD_BASE_IMAGE).toBe(world.images.cudaDevel);
    expect(world.gitRepos.trtllm).toMatch(/^file:\/\/\/.*\/git\/TensorRT-LLM\.git$/);
    expect(world.gitRepos.backend).toMatch(/^file:\/\/\/.*\/git\/tensorrtllm_backend\.git$/);
    expect(env.LLAMA3_TRT_TRTLLM_REPO_URL).toBe(world.gitRepos.trtllm);
    expect(env.LLAMA3_TRT_BACKEND_REPO_URL).toBe(world.gitRepos.backend);
    expect(world.recorderUrl).toMatch(/^http:\/\/\d+\.\d+\.\d+\.\d+:\d+$/);
    // What globalSetup provides is the same file.
    expect(inject("world")).toEqual(file);
  });

  it("prints the product's environment for a shell (node world/env.ts)", async () => {
    const { env } = readWorldFile();
    const { stdout } = await execa(process.execPath, [path.join(repoRoot, "world", "env.ts")]);
    expect(stdout.split("\n")).toEqual(Object.entries(env).map(([name, value]) => `${name}=${value}`));
  });

  it("starts a second time without duplicating anything", async () => {
    const before = await snapshot(readWorldFile());
    const again = await worldUp();
    expect(again.startedNow).toEqual([]);
    expect(again.images.filter((image) => image.built || image.pushed)).toEqual([]);
    expect(again.repos.filter((repo) => repo.rebuilt)).toEqual([]);
    expect(again.durationMs).toBeLessThan(15_000);
    const after = await snapshot(again.file);
    expect(after).toEqual(before);
  });

  it("runs a container from the local registry on the local engine", async () => {
    await using world = useWorld();
    const ref = world.world.images.build;
    const id = await imageId(ref);
    expect(id).toBeDefined();
    // Only what the registry holds can bring the tag back. Forced: a container of another test
    // run on this engine may still use the image, which then stays (untagged) until it ends.
    await removeImageTag(ref, { force: true });
    expect(await imageId(ref)).toBeUndefined();
    await pullImage(ref);
    expect(await imageId(ref)).toBe(id);

    const version = await runContainer(ref, ["python3", "-c", "import tensorrt_llm; print(tensorrt_llm.__version__)"]);
    expect(version).toMatchObject({ exitCode: 0 });
    expect(version.stdout.trim().split("\n").at(-1)).toBe("0.8.0");

    // A stand-in reports its run to the recorder across the docker bridge.
    const help = await runContainer(ref, ["trtllm-build", "--help"]);
    expect(help, help.stderr).toMatchObject({ exitCode: 0 });
    expect(await world.invocations("trtllm-build")).toBe(1);
  });

  it("serves bare git repositories with a v0.8.0 tag and a commit after it", async () => {
    const { world } = readWorldFile();
    const expected: Record<string, string[]> = {
      [world.gitRepos.trtllm]: ["examples/llama/convert_checkpoint.py"],
      [world.gitRepos.backend]: TRITON_MODELS.map((model) => `all_models/inflight_batcher_llm/${model}/config.pbtxt`),
    };
    for (const [url, files] of Object.entries(expected)) {
      const refs = await lsRemote(url);
      const tagged = refs.get("refs/tags/v0.8.0^{}");
      const main = refs.get("refs/heads/main");
      expect(refs.get("refs/tags/v0.8.0"), `${url}: v0.8.0 is an annotated tag`).not.toBe(tagged);
      expect(tagged).toBeDefined();
      expect(main).toBeDefined();
      expect(main).not.toBe(tagged);

      const dir = await mkdtemp(path.join(os.tmpdir(), "world-clone-"));
      try {
        await execa("git", ["clone", "--quiet", "--depth", "1", "--branch", "v0.8.0", url, dir]);
        expect((await execa("git", ["-C", dir, "rev-parse", "HEAD"])).stdout).toBe(tagged);
        for (const file of files) await expect(readFile(path.join(dir, file))).resolves.toBeDefined();
        // The commit after the tag is what a clone of the default branch would get instead.
        const changelog = await readFile(path.join(dir, "CHANGELOG.md"), "utf8").catch(() => "");
        expect(changelog).not.toContain("post-0.8.0 work");
        const log = await execa("git", ["-C", dir, "fetch", "--quiet", "--depth", "2", "origin", "main"]).then(() =>
          execa("git", ["-C", dir, "log", "--format=%H", "FETCH_HEAD"]),
        );
        expect(log.stdout.split("\n")).toEqual([main, tagged]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  });

  it("answers the Hub API with the world's tokens", async () => {
    await using world = useWorld();
    const whoami = (token?: string) =>
      fetch(`${world.world.hubUrl}/api/whoami-v2`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    const granted = await whoami(GRANTED_TOKEN);
    expect(granted.status).toBe(200);
    expect(await granted.json()).toMatchObject({ name: "world-user" });
    const denied = await whoami(DENIED_TOKEN);
    expect(denied.status).toBe(200);
    expect(await denied.json()).toMatchObject({ name: "world-denied" });
    expect((await whoami("hf_notAWorldToken")).status).toBe(401);
    await expect.poll(async () => (await world.hubRequests()).filter((entry) => entry.path === "/api/whoami-v2").length).toBe(3);
  });
});

describe("world:down", () => {
  const isolated: { root?: string; file?: WorldEnvFile } = {};
  let isolatedEnv: Record<string, string> = {};

  afterAll(async () => {
    // Whatever the test got to: stop the isolated world, drop its images and its root.
    if (!isolated.root) return;
    const env = { ...process.env, ...isolatedEnv };
    await worldDown({ env, removeContainers: false }).catch(() => {});
    for (const ref of Object.values(isolated.file?.world.images ?? {})) await removeImageTag(ref).catch(() => {});
    await rm(isolated.root, { recursive: true, force: true });
  });

  it("stops the registry and server an isolated world started, and leaves the shared engine and the main world alone", async () => {
    const main = readWorldFile();
    isolated.root = await mkdtemp(path.join(os.tmpdir(), "world-isolated-"));
    const [registry, hub, cdn, recorder] = (await freePorts(4)) as [number, number, number, number];
    isolatedEnv = {
      WORLD_ROOT: isolated.root,
      WORLD_REGISTRY_PORT: String(registry),
      WORLD_HUB_PORT: String(hub),
      WORLD_CDN_PORT: String(cdn),
      WORLD_RECORDER_PORT: String(recorder),
    };
    const env = { ...process.env, ...isolatedEnv };

    const up = await worldUp({ env });
    isolated.file = up.file;
    // The engine was already running: the isolated world must not claim it.
    expect(up.startedNow).toEqual(["registry", "server"]);
    expect(up.file.world.started).toEqual(["registry", "server"]);
    expect(up.file.world.registry).toBe(`127.0.0.1:${registry}`);
    expect(await portAnswers("127.0.0.1", registry)).toBe(true);
    expect(await portAnswers("127.0.0.1", hub)).toBe(true);

    // A container the product left behind is removed by down.
    const leftover = await docker().createContainer({
      Image: up.file.world.images.build,
      Cmd: ["true"],
      Labels: { "dev.llama3-trt": "1", "dev.llama3-trt.run": "world-down-test" },
    });

    const down = await worldDown({ env });
    expect(down.stopped).toEqual(["server", "registry"]);
    // Only containers of the isolated world's own images: the main world's are not its to remove.
    expect(down.removedContainers).toBe(1);
    expect(await containersWithLabel("dev.llama3-trt.run", "world-down-test")).toEqual([]);
    await expect(docker().getContainer(leftover.id).inspect()).rejects.toMatchObject({ statusCode: 404 });

    const recorderHost = new URL(up.file.world.recorderUrl).hostname;
    for (const [host, port] of [["127.0.0.1", registry], ["127.0.0.1", hub], ["127.0.0.1", cdn], [recorderHost, recorder]] as const) {
      expect(await portAnswers(host, port), `${host}:${port} still answers`).toBe(false);
    }
    await expect(readFile(path.join(isolated.root, "env.json"))).rejects.toMatchObject({ code: "ENOENT" });
    // Idempotent: nothing left to stop.
    expect((await worldDown({ env })).stopped).toEqual([]);

    // The engine and the main world are untouched.
    expect(await engineAnswers()).toBe(true);
    expect(await portAnswers("127.0.0.1", Number(main.world.registry.split(":")[1]))).toBe(true);
    expect((await fetch(`${main.world.hubUrl}/api/whoami-v2`)).status).toBe(401);
  });
});

/** Everything a second world:up must leave as it was. */
async function snapshot(file: WorldEnvFile) {
  const { world } = file;
  const images: Record<string, { id: string | undefined; digest: string | undefined }> = {};
  for (const ref of Object.values(world.images)) {
    const [repository, tag] = ref.slice(world.registry.length + 1).split(":") as [string, string];
    images[ref] = { id: await imageId(ref), digest: await manifestDigest(world.registry, repository, tag) };
  }
  const git: Record<string, Record<string, string>> = {};
  for (const url of Object.values(world.gitRepos)) git[url] = Object.fromEntries(await lsRemote(url));
  const config = worldConfig();
  const pids = async (match: (argv: string[]) => boolean) => (await findProcesses(match)).map((p) => p.pid).sort();
  return {
    images,
    git,
    started: world.started,
    servers: await pids((argv) => argv.some((arg) => arg.endsWith("world/server/main.ts")) && argv.includes(config.root)),
    registries: await pids((argv) => argv.some((arg) => arg.endsWith("docker-registry")) && argv.includes(config.files.registryConfig)),
    dockerds: await pids((argv) => path.basename(argv[0] ?? "") === "dockerd"),
  };
}

async function lsRemote(url: string): Promise<Map<string, string>> {
  const { stdout } = await execa("git", ["ls-remote", url]);
  return new Map(
    stdout
      .split("\n")
      .filter(Boolean)
      .map((line) => {
        const [sha = "", ref = ""] = line.split("\t");
        return [ref, sha] as const;
      }),
  );
}

/** Ports the kernel hands out as free right now (held together so they differ). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<net.Server>((resolve) => {
      const server = net.createServer();
      server.listen(0, "127.0.0.1", () => resolve(server));
    })),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}
