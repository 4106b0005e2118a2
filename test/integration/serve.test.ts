/**
 * serve, stop, logs, status and ask against the test world: the Triton stand-in (which loads the
 * model repository with the real model_config.proto and the backend's checks) in its image on
 * the real dockerd, started by the product as a user would. Reliability cases 31-33 and 39.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { consumeProgress } from "../../world/docker.ts";
import { containersWithLabel, docker, imageId, removeImageTag, TEST_CONTAINER_LABEL } from "../helpers/docker.ts";
import { clearBehaviour, type Sandbox, sandbox, setBehaviour, until } from "../helpers/product.ts";
import { freePorts } from "../helpers/ports.ts";
import { useWorld, type World } from "../helpers/world.ts";

/** A listener on 127.0.0.1:port held by this test process; closed by `await using`. */
async function hold(port: number, host = "127.0.0.1"): Promise<AsyncDisposable> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen({ host, port }, resolve));
  return { [Symbol.asyncDispose]: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Whether a TCP connection to host:port is accepted. */
function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 3_000 });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** What the world's stand-in model answers to a Llama 3 chat prompt (llama3_trt_standin/textgen.py). */
function standInAnswer(message: string): string {
  const words = (message.match(/[\w'-]+/g) ?? []).slice(0, 8);
  const tag = createHash("sha256").update(message).digest("hex").slice(0, 8);
  return `Stand-in answer ${tag}: you asked about ${words.length > 0 ? words.join(" ") : "nothing in particular"}.`;
}

const question = "How do I count to nine in French?";

describe("serve, ask, stop against the world", { timeout: 300_000 }, () => {
  let world: World;
  let box: Sandbox;

  const servers = () => containersWithLabel("dev.llama3-trt.workdir", box.workdirId);

  beforeAll(async () => {
    world = useWorld();
    box = sandbox(world);
    const built = await box.run(["build"]);
    expect(built.exitCode, built.stderr + built.stdout).toBe(0);
  });

  afterEach(async () => {
    await clearBehaviour(world);
    // Nothing may be left running for the next test (the test fails below if something was).
    const left = await servers();
    if (left.length > 0) await box.run(["stop"]);
    expect(left.map((c) => `${c.name} (${c.state})`)).toEqual([]);
  });

  afterAll(async () => {
    await box?.[Symbol.asyncDispose]();
    await world?.[Symbol.asyncDispose]();
  });

  it("serve --detach → ready → ask answers → status and logs show it → stop leaves no container (case 33)", async () => {
    await using w = useWorld();
    const ports = await freePorts();
    const started = Date.now();
    const served = await box.run(["serve", "--detach", "--json"], ports.env);
    const seconds = (Date.now() - started) / 1000;
    expect(served.exitCode, served.stderr).toBe(0);
    const doc = JSON.parse(served.stdout) as { container: string; urls: { http: string; grpc: string; metrics: string }; detached: boolean };
    expect(doc.urls).toEqual({
      http: `http://127.0.0.1:${ports.http}`,
      grpc: `127.0.0.1:${ports.grpc}`,
      metrics: `http://127.0.0.1:${ports.metrics}/metrics`,
    });
    expect(doc.detached).toBe(true);
    console.info(`serve --detach: ready and returned in ${seconds.toFixed(2)} s`);

    // One container, this workdir's server, running the v0.8.0 launch line through mpirun.
    const [container, ...others] = await servers();
    expect(others).toEqual([]);
    expect(container?.state).toBe("running");
    expect(container?.labels["dev.llama3-trt.role"]).toBe("server");
    expect((await w.invocationList("mpirun"))[0]?.argv).toEqual([
      "--allow-run-as-root",
      "-n",
      "1",
      "/opt/tritonserver/bin/tritonserver",
      "--model-repository=/llama3-trt/model-repo",
      "--grpc-port=8001",
      "--http-port=8000",
      "--metrics-port=8002",
      "--disable-auto-complete-config",
      "--backend-config=python,shm-region-prefix-name=prefix0_",
      ":",
    ]);
    expect(await w.invocations("tritonserver")).toBe(1);
    // The engine, model repository and tokenizer are mounted read-only: the engine is not copied.
    const inspect = await docker().getContainer(container?.id as string).inspect();
    const mounts = Object.fromEntries(inspect.Mounts.map((m) => [m.Destination, { source: m.Source, rw: m.RW }]));
    expect(mounts["/llama3-trt/engine"]).toEqual({ source: join(box.workdir, "engine"), rw: false });
    expect(mounts["/llama3-trt/model-repo"]).toEqual({ source: join(box.workdir, "model-repo"), rw: false });
    expect(mounts["/llama3-trt/weights"]?.rw).toBe(false);
    expect(inspect.HostConfig.NetworkMode).not.toBe("host");
    expect(inspect.HostConfig.Init).toBe(true);
    // The server needs no Hugging Face token, so none is in its environment, argv or labels.
    expect(JSON.stringify(inspect)).not.toContain(world.env.HF_TOKEN);
    expect(served.stdout + served.stderr).not.toContain(world.env.HF_TOKEN);

    // ask: the chat template and end_id 128009 make the stand-in answer and stop at the turn's end.
    const asked = await box.run(["ask", question], ports.env);
    expect(asked.exitCode, asked.stderr).toBe(0);
    expect(asked.stdout).toBe(`${standInAnswer(question)}\n`);
    const streamed = await box.run(["ask", "--stream", question], ports.env);
    expect(streamed.exitCode, streamed.stderr).toBe(0);
    expect(streamed.stdout).toBe(`${standInAnswer(question)}\n`);
    const raw = await box.run(["ask", "--raw", "--max-tokens", "5", "Once upon a time"], ports.env);
    expect(raw.exitCode, raw.stderr).toBe(0);
    expect(raw.stdout.trim().split(/\s+/)).toHaveLength(5);

    const status = await box.run(["status", "--json"], ports.env);
    expect((JSON.parse(status.stdout) as { server: unknown }).server).toMatchObject({
      container: doc.container,
      state: "running",
      ready: true,
      urls: doc.urls,
      exposed: false,
    });
    const logs = await box.run(["logs"], ports.env);
    expect(logs.exitCode).toBe(0);
    expect(logs.stdout).toContain(`Started HTTPService at 0.0.0.0:8000`);

    // A second serve reports the running one: foreground refuses, --detach finds it there.
    const again = await box.run(["serve"], ports.env);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toContain(`The server of this workdir is already running: container ${doc.container} at ${doc.urls.http}.`);
    const againDetached = await box.run(["serve", "--detach"], ports.env);
    expect(againDetached.exitCode).toBe(0);
    // Its OpenAI gateway, which runs, is reported with it.
    expect(againDetached.stdout).toContain(`Already running: ${doc.container} at ${doc.urls.http}; OpenAI API at http://127.0.0.1:${ports.openai}/v1.`);
    expect(await w.invocations("tritonserver")).toBe(1);

    const stopped = await box.run(["stop"], ports.env);
    expect(stopped.exitCode, stopped.stderr).toBe(0);
    expect(stopped.stdout).toContain(`Stopped and removed ${doc.container}.`);
    expect(await servers()).toEqual([]);
    const nothing = await box.run(["stop"]);
    expect(nothing.exitCode).toBe(0);
    expect(nothing.stdout).toContain("No server running for this workdir.");
    // Its log outlives the container.
    expect((await box.run(["logs"])).stdout).toContain("Started HTTPService");
    const gone = await box.run(["ask", question], ports.env);
    expect(gone.exitCode).toBe(1);
    expect(gone.stderr).toContain(`No server answers at http://127.0.0.1:${ports.http} (connection refused)`);
  });

  it("a server that dies at start: exit 1 with its log tail, container removed (case 32)", async () => {
    const ports = await freePorts();
    await setBehaviour(world, "tritonserver", { dieAtStart: true }, 1);
    const result = await box.run(["serve", "--detach"], ports.env);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain("The server exited with code 1 while starting; it was removed.");
    expect(result.stderr).toContain("Likely cause: Triton reported: [llama3-trt world] dying at start as the test asked");
    expect(result.stderr).toMatch(/Last \d+ lines of its log:\n[\s\S]*dying at start as the test asked/);
    expect(result.stderr).toContain(`Full log: ${join(box.workdir, "logs/server.log")}`);
    expect(readFileSync(join(box.workdir, "logs/server.log"), "utf8")).toContain("dying at start");
    expect(await servers()).toEqual([]);
  });

  it("--gpus all on an engine without the NVIDIA runtime: the start is refused, said plainly, nothing left in Created", async () => {
    const ports = await freePorts();
    const result = await box.run(["serve", "--detach", "--gpus", "all"], ports.env);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('NVIDIA Container Toolkit not configured for this Docker engine: could not select device driver "" with capabilities: [[gpu]]');
    expect(await servers()).toEqual([]);
  });

  it("readiness that never comes: after --timeout, exit 1 with the log tail, removed (case 32)", async () => {
    const ports = await freePorts();
    await setBehaviour(world, "tritonserver", { neverReady: true }, 1);
    const started = Date.now();
    const result = await box.run(["serve", "--detach", "--timeout", "3"], ports.env);
    const seconds = (Date.now() - started) / 1000;
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain("The server did not become ready within 3 s; it was removed.");
    expect(result.stderr).toContain("(last check: HTTP 400); a large engine can take minutes to load: raise `--timeout`");
    expect(result.stderr).toContain("Started HTTPService");
    // Its log's last lines (at most 50), ending where the log ends.
    const quoted = result.stderr.split("\n").filter((l) => l.startsWith("    ")).map((l) => l.slice(4));
    const log = readFileSync(join(box.workdir, "logs/server.log"), "utf8").trimEnd().split("\n");
    expect(quoted.length).toBeGreaterThan(0);
    expect(quoted.length).toBeLessThanOrEqual(50);
    expect(quoted).toEqual(log.slice(-quoted.length));
    expect(await servers()).toEqual([]);
    // Within the timeout and a few seconds for the log and the removal.
    expect(seconds).toBeLessThan(3 + 10);
    console.info(`serve --timeout 3 with a server that never gets ready: gave up after ${seconds.toFixed(1)} s`);
  });

  it("--keep-on-failure leaves the server that never got ready, for inspection; stop removes it (case 32)", async () => {
    const ports = await freePorts();
    await setBehaviour(world, "tritonserver", { neverReady: true }, 1);
    const result = await box.run(["serve", "--detach", "--timeout", "2", "--keep-on-failure"], ports.env);
    expect(result.exitCode).toBe(1);
    const [kept, ...others] = await servers();
    expect(others).toEqual([]);
    expect(kept?.state).toBe("running");
    expect(result.stderr).toContain(`The server did not become ready within 2 s; it was kept, as --keep-on-failure asks: container ${kept?.name} (\`llama3-trt stop\` removes it).`);
    expect((await box.run(["stop"])).exitCode).toBe(0);
    expect(await servers()).toEqual([]);
  });

  it("Ctrl-C in the foreground stops and removes the server (exit 130)", async () => {
    const ports = await freePorts();
    const run = box.start(["serve"], ports.env);
    await until(() => run.output().stdout.includes("Press Ctrl-C to stop it."), "the server to be ready", 120_000);
    expect(run.output().stdout).toContain(`HTTP     http://127.0.0.1:${ports.http}`);
    expect((await servers()).map((c) => c.state)).toEqual(["running"]);
    const interrupted = Date.now();
    run.child.kill("SIGINT");
    const result = await run.exited();
    expect(result.exitCode).toBe(130);
    expect(result.stderr).toContain("interrupted; the server was stopped and removed");
    expect(await servers()).toEqual([]);
    console.info(`Ctrl-C → server stopped and removed in ${((Date.now() - interrupted) / 1000).toFixed(2)} s`);
    // The foreground serve kept the log.
    expect(readFileSync(join(box.workdir, "logs/server.log"), "utf8")).toContain("Started HTTPService");
  });

  it("stop from another shell ends an attached serve with exit 0 (case 33)", async () => {
    const ports = await freePorts();
    const run = box.start(["serve"], ports.env);
    await until(() => run.output().stdout.includes("Press Ctrl-C to stop it."), "the server to be ready", 120_000);
    const stopped = await box.run(["stop"]);
    expect(stopped.exitCode, stopped.stderr).toBe(0);
    const result = await run.exited();
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain("The server was stopped (by `llama3-trt stop` or `docker stop`).");
    expect(await servers()).toEqual([]);
  });

  describe("a port in use is refused before anything starts (case 31)", () => {
    it("held by a host process: the message names the port, the address, the process and the flag", async () => {
      await using w = useWorld();
      const ports = await freePorts();
      await using _held = await hold(ports.http);
      const result = await box.run(["serve", "--detach"], ports.env);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toContain(`Port ${ports.http} on 127.0.0.1 is in use (by pid ${process.pid} `);
      expect(result.stderr).toContain("Stop what uses it, or pass `--port` with a free port.");
      expect(await servers()).toEqual([]);
      expect(await w.invocations("tritonserver")).toBe(0);
    });

    it("published by another container: the same refusal, pointing at docker ps", async () => {
      const ports = await freePorts();
      const other = await docker().createContainer({
        Image: world.env.LLAMA3_TRT_TRITON_IMAGE,
        Cmd: ["sleep", "300"],
        Labels: { [TEST_CONTAINER_LABEL]: "1" },
        // As `docker run -p 127.0.0.1:<port>:8000`: the engine publishes only exposed ports.
        ExposedPorts: { "8000/tcp": {} },
        HostConfig: { PortBindings: { "8000/tcp": [{ HostIp: "127.0.0.1", HostPort: String(ports.grpc) }] }, Init: true },
      });
      try {
        await other.start();
        const result = await box.run(["serve", "--detach"], ports.env);
        expect(result.exitCode).toBe(1);
        expect(result.stderr).toContain(`Port ${ports.grpc} on 127.0.0.1 is in use (by a Docker container: see \`docker ps\`). Stop what uses it, or pass \`--grpc-port\` with a free port.`);
        expect(await servers()).toEqual([]);
      } finally {
        await other.remove({ force: true });
      }
    });

    it("taken between the check and the start: the engine's refusal gets the same message, and the Created container is removed", async () => {
      await using w = useWorld();
      const ports = await freePorts();
      const markers = join(box.dir, "markers");
      mkdirSync(markers, { recursive: true });
      const marker = join(markers, "before-start");
      const run = box.start(["serve", "--detach"], {
        ...ports.env,
        LLAMA3_TRT_TEST_PAUSE_AT: "serve:before-start",
        LLAMA3_TRT_TEST_PAUSE_MARKER: marker,
        LLAMA3_TRT_TEST_RESUME_ON_REMOVE: "1",
      });
      await until(() => existsSync(marker), "serve to pass its port check", 60_000);
      await using _held = await hold(ports.metrics);
      rmSync(marker);
      const result = await run.exited();
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toContain(`Port ${ports.metrics} on 127.0.0.1 is in use (by pid ${process.pid} `);
      expect(result.stderr).toContain("pass `--metrics-port` with a free port.");
      expect(await servers()).toEqual([]);
      // The engine refused the start itself: the server never ran.
      expect(await w.invocations("tritonserver")).toBe(0);
    });
  });

  describe("the bind address (case 39)", () => {
    const external = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === "IPv4" && !a.internal)?.address;

    it.skipIf(!external)(`by default the ports are on 127.0.0.1 only, not on ${external ?? "(no non-loopback IPv4 address: skipped)"}`, async () => {
      const ports = await freePorts();
      const served = await box.run(["serve", "--detach"], ports.env);
      expect(served.exitCode, served.stderr).toBe(0);
      expect(served.stderr).not.toContain("0.0.0.0");
      const [container] = await servers();
      const inspect = await docker().getContainer(container?.id as string).inspect();
      expect(inspect.HostConfig.PortBindings).toEqual({
        "8000/tcp": [{ HostIp: "127.0.0.1", HostPort: String(ports.http) }],
        "8001/tcp": [{ HostIp: "127.0.0.1", HostPort: String(ports.grpc) }],
        "8002/tcp": [{ HostIp: "127.0.0.1", HostPort: String(ports.metrics) }],
      });
      expect(inspect.HostConfig.NetworkMode).not.toBe("host");
      expect(await connects("127.0.0.1", ports.http)).toBe(true);
      expect(await connects(external as string, ports.http)).toBe(false);
      expect((await box.run(["stop"])).exitCode).toBe(0);
    });

    it.skipIf(!external)("--host 0.0.0.0 works from the network, with a warning, and status records it", async () => {
      const ports = await freePorts();
      const env = { ...ports.env, LLAMA3_TRT_HOST: "0.0.0.0" };
      const served = await box.run(["serve", "--detach"], env);
      expect(served.exitCode, served.stderr).toBe(0);
      expect(served.stderr).toContain("published on 0.0.0.0: anyone who can reach this host can use them, and Docker's published ports bypass host firewalls such as ufw");
      const response = await fetch(`http://${external}:${ports.http}/v2/health/ready`);
      expect(response.status).toBe(200);
      const status = await box.run(["status"], env);
      expect(status.stdout).toContain("published on 0.0.0.0: reachable from other machines");
      expect((await box.run(["ask", question], env)).stdout).toBe(`${standInAnswer(question)}\n`);
      expect((await box.run(["stop"])).exitCode).toBe(0);
    });
  });

  it("settings that differ from the build are refused before anything starts (exit 2)", async () => {
    await using w = useWorld();
    const ports = await freePorts();
    const bigger = await box.run(["serve", "--detach", "--max-batch-size", "128"], ports.env);
    expect(bigger.exitCode).toBe(2);
    expect(bigger.stderr).toContain("The settings differ from what was built:\n- engine: maxBatchSize changed 64 → 128");
    const noStream = await box.run(["serve", "--detach", "--streaming", "false"], ports.env);
    expect(noStream.exitCode).toBe(2);
    expect(noStream.stderr).toContain("- model-repo: decoupled_mode changed true → false");
    // A config edited by hand is caught too.
    const config = join(box.workdir, "model-repo/ensemble/config.pbtxt");
    const original = readFileSync(config, "utf8");
    writeFileSync(config, original.replace("max_batch_size: 64", "max_batch_size: 65"));
    try {
      const edited = await box.run(["serve", "--detach"], ports.env);
      expect(edited.exitCode).toBe(1);
      expect(edited.stderr).toContain(`${config} was changed since it was filled`);
    } finally {
      writeFileSync(config, original);
    }
    expect(await servers()).toEqual([]);
    expect(await w.invocations("tritonserver")).toBe(0);
  });

  it("logs -f follows the server's log until the server stops", async () => {
    const ports = await freePorts();
    expect((await box.run(["serve", "--detach"], ports.env)).exitCode).toBe(0);
    const follow = box.start(["logs", "-f"]);
    await until(() => follow.output().stdout.includes("Started HTTPService"), "the log to show the server", 60_000);
    expect((await box.run(["stop"])).exitCode).toBe(0);
    const result = await follow.exited();
    expect(result.exitCode, result.stderr).toBe(0);
    // It followed to the end: the shutdown is in what it printed.
    expect(result.stdout).toMatch(/Signal \(15\) received/);
  });

  it("pulls a missing Triton image with per-layer progress, then serves", async () => {
    const ref = `${world.world.registry}/llama3-trt-test/tritonserver:pull-test`;
    const [repo, tag] = [ref.slice(0, ref.lastIndexOf(":")), ref.slice(ref.lastIndexOf(":") + 1)];
    // An image of our own with one layer more than the world's, so that the pull has a layer to fetch.
    const seed = await docker().createContainer({ Image: world.env.LLAMA3_TRT_TRITON_IMAGE, Cmd: ["sh", "-c", "echo pull-test > /pull-test"], Labels: { [TEST_CONTAINER_LABEL]: "1" } });
    try {
      await seed.start();
      await seed.wait();
      await seed.commit({ repo, tag });
    } finally {
      await seed.remove({ force: true });
    }
    await consumeProgress((await docker().getImage(repo).push({ tag, authconfig: {} } as Record<string, unknown>)) as NodeJS.ReadableStream, `docker push ${ref}`);
    await removeImageTag(ref);
    expect(await imageId(ref)).toBeUndefined();
    const ports = await freePorts();
    try {
      const served = await box.run(["serve", "--detach"], { ...ports.env, LLAMA3_TRT_TRITON_IMAGE: ref });
      expect(served.exitCode, served.stderr).toBe(0);
      expect(served.stdout).toContain(`pulling ${ref}`);
      expect(served.stdout).toMatch(/ {2}[0-9a-f]{12}: Pull complete/);
      expect(served.stdout).toMatch(/ {2}[0-9a-f]{12}: Already exists/);
      expect(served.stdout).toMatch(new RegExp(`${ref.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: (\\d+)/\\1 layers`));
      expect(await imageId(ref)).toBeDefined();
      expect((await box.run(["stop"])).exitCode).toBe(0);
    } finally {
      await removeImageTag(ref, { force: true }).catch(() => {});
    }
  });

  it("ask --local runs the world's examples/run.py on the built engine and prints only its answer", async () => {
    await using w = useWorld();
    const result = await box.run(["ask", "--local", question]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${standInAnswer(question)}\n`);
    const [invocation, ...more] = await w.invocationList("run.py");
    expect(more).toEqual([]);
    expect(invocation?.argv).toEqual([
      "--engine_dir",
      "/llama3-trt/engine",
      "--tokenizer_dir",
      expect.stringMatching(/^\/llama3-trt\/weights\/snapshots\/[0-9a-f]{40}$/),
      "--max_output_len",
      "256",
      "--max_input_length",
      "4096",
      `--input_text=<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n${question}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`,
      "--no_add_special_tokens",
    ]);
    expect(invocation?.cwd).toBe("/llama3-trt/TensorRT-LLM/examples");
    expect(await servers()).toEqual([]);
    const json = JSON.parse((await box.run(["ask", "--local", "--json", "--max-tokens", "4", question])).stdout) as { answer: string; local: boolean };
    expect(json.local).toBe(true);
    // --max-tokens reaches run.py: four word pieces of the answer.
    expect(json.answer).toBe(standInAnswer(question).split(" ").slice(0, 4).join(" "));
  });

  it("a tp 2 engine is served by two ranks (world size from the engine) and asked locally through mpirun", async () => {
    await using w = useWorld();
    await using other = sandbox(w);
    const env = { ...(await freePorts()).env, LLAMA3_TRT_TP: "2" };
    expect((await other.run(["build"], env)).exitCode).toBe(0);
    expect((await other.run(["serve", "--detach"], env)).exitCode).toBe(0);
    try {
      expect((await other.run(["ask", question], env)).stdout).toBe(`${standInAnswer(question)}\n`);
      const argv = (await w.invocationList("mpirun"))[0]?.argv ?? [];
      expect(argv.filter((a) => a === "/opt/tritonserver/bin/tritonserver")).toHaveLength(2);
      expect(argv).toContain("--load-model=tensorrt_llm");
      expect(argv).toContain("--backend-config=python,shm-region-prefix-name=prefix1_");
      expect(await w.invocations("tritonserver")).toBe(2);
    } finally {
      expect((await other.run(["stop"], env)).exitCode).toBe(0);
    }
    const local = await other.run(["ask", "--local", question], env);
    expect(local.exitCode, local.stderr).toBe(0);
    expect(local.stdout).toBe(`${standInAnswer(question)}\n`);
    expect((await w.invocationList("mpirun")).at(-1)?.argv.slice(0, 5)).toEqual(["--allow-run-as-root", "-n", "2", "python3", "run.py"]);
    expect(await w.invocations("run.py")).toBe(2);
    expect(await containersWithLabel("dev.llama3-trt.workdir", other.workdirId)).toEqual([]);
  });

  it("serve while a build holds the workdir is refused, naming the build", async () => {
    await using w = useWorld();
    await using other = sandbox(w);
    const env = (await freePorts()).env;
    expect((await other.run(["build"], env)).exitCode).toBe(0);
    const marker = join(other.dir, "paused");
    const building = other.start(["build", "--force", "model-repo"], { LLAMA3_TRT_TEST_PAUSE_AT: "model-repo:before-record", LLAMA3_TRT_TEST_PAUSE_MARKER: marker });
    await until(() => existsSync(marker), "the build to hold the workdir", 60_000);
    const refused = await other.run(["serve", "--detach"], env);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain(`is locked by pid ${building.child.pid}`);
    expect(await containersWithLabel("dev.llama3-trt.workdir", other.workdirId)).toEqual([]);
    expect(await w.invocations("tritonserver")).toBe(0);
    building.child.kill("SIGKILL");
    await building.exited();
  });

  it("--stream on a deployment built without streaming says so (exit 1)", async () => {
    await using w = useWorld();
    await using other = sandbox(w);
    const env = { ...(await freePorts()).env, LLAMA3_TRT_STREAMING: "false" };
    expect((await other.run(["build"], env)).exitCode).toBe(0);
    expect((await other.run(["serve", "--detach"], env)).exitCode).toBe(0);
    try {
      const plain = await other.run(["ask", question], env);
      expect(plain.stdout).toBe(`${standInAnswer(question)}\n`);
      const streamed = await other.run(["ask", "--stream", question], env);
      expect(streamed.exitCode).toBe(1);
      expect(streamed.stderr).toContain("This deployment cannot stream: its tensorrt_llm model is not decoupled.");
    } finally {
      expect((await other.run(["stop"])).exitCode).toBe(0);
    }
    expect(await containersWithLabel("dev.llama3-trt.workdir", other.workdirId)).toEqual([]);
  });

  it("ask while the server is still loading: the model is not ready, said plainly", async () => {
    const ports = await freePorts();
    await setBehaviour(world, "tritonserver", { neverReady: true }, 1);
    const run = box.start(["serve", "--timeout", "120"], ports.env);
    await until(async () => (await fetch(`http://127.0.0.1:${ports.http}/v2/health/live`).catch(() => undefined))?.status === 200, "Triton to listen", 120_000);
    const asked = await box.run(["ask", question], ports.env);
    expect(asked.exitCode).toBe(1);
    expect(asked.stderr).toContain(`The server at http://127.0.0.1:${ports.http} answers, but the model is not ready`);
    run.child.kill("SIGINT");
    expect((await run.exited()).exitCode).toBe(130);
    expect(await servers()).toEqual([]);
  });
});
