/**
 * `export kubernetes` against the test world: the manifests do real work. The generated Job's
 * containers run in order on the world's Docker engine (image, command, args, workingDir, env,
 * volumeMounts), with a host folder standing in for the PersistentVolumeClaim; they build an
 * engine and a model repository under the build's folder; then the Deployment's containers run
 * the same way and the Triton container becomes ready on the probe's path and port and answers
 * a prompt. What Kubernetes adds (scheduling, probes, the HPA) is checked against the schemas in
 * test/unit/kubernetes/ and, for the probes, against the Triton stand-in here.
 *
 * The world's build image is a stand-in with TensorRT-LLM's tools only; the real one (the
 * build-image recipe) also has git and huggingface-cli. The test adds them as binds: the host's
 * own git (the world's base is the same Debian), and a strict huggingface-cli stand-in
 * (test/fixtures/kubernetes/huggingface-cli). The world's git repositories are file:// URLs on
 * this host: they are bound at the same path, standing in for the network.
 *
 * The gateway sidecar's image (templates/gateway-image: Node and this package) is not published
 * and the world has no Node image: the world's Debian base stands in for it, with the host's node
 * binary and this project folder bound read-only, and the sidecar's `command` (`llama3-trt`)
 * replaced by the CLI from this project's sources (test/helpers/llama3-trt.ts, as every test
 * runs it, so never a stale dist/). Its args, env, ports, probe and mounts are the manifest's. It
 * joins the Triton container's network namespace, as the containers of one pod share theirs.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { fillConfig, tritonModels } from "../../src/triton/model-repo.ts";
import { freePorts } from "../helpers/ports.ts";
import { type PodContainer, type PodRunOptions, type PodVolume, createPodContainer, runPodContainer } from "../helpers/pod.ts";
import { type Sandbox, sandbox } from "../helpers/product.ts";
import { useWorld, type World } from "../helpers/world.ts";

const huggingfaceCli = fileURLToPath(new URL("../fixtures/kubernetes/huggingface-cli", import.meta.url));
const projectRoot = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");
const cliFromSources = fileURLToPath(new URL("../helpers/llama3-trt.ts", import.meta.url));
/** The world's Debian base, standing in for the gateway image (see above). */
const worldBase = "llama3-trt-world/debian:bookworm";
const nodeInContainer = "/opt/node/bin/node";
/** The API key the export is made with: it reaches the gateway from the Secret only. */
const apiKey = "sk-k8s-integration-key-0123";

interface PodSpec {
  initContainers?: PodContainer[];
  containers: PodContainer[];
  volumes: PodVolume[];
}

interface ExportDocument {
  out: string;
  written: boolean;
  fingerprint: string;
  job: string;
  buildFolder: string;
  files: { path: string; text: string }[];
}

function podSpecOf(out: string, file: string, kind: string): PodSpec {
  const docs = parseAllDocuments(readFileSync(join(out, file), "utf8")).map((d) => d.toJSON() as { kind: string; spec: { template: { spec: PodSpec } } });
  const object = docs.find((d) => d.kind === kind);
  if (!object) throw new Error(`${file} holds no ${kind}`);
  return object.spec.template.spec;
}

/** What the world's stand-in model answers to a Llama 3 chat prompt (llama3_trt_standin/textgen.py). */
function standInAnswer(message: string): string {
  const words = (message.match(/[\w'-]+/g) ?? []).slice(0, 8);
  const tag = createHash("sha256").update(message).digest("hex").slice(0, 8);
  return `Stand-in answer ${tag}: you asked about ${words.length > 0 ? words.join(" ") : "nothing in particular"}.`;
}

const question = "How do I count to nine in French?";

describe("export kubernetes: the manifests do real work", { timeout: 300_000 }, () => {
  let world: World;
  let box: Sandbox;
  let doc: ExportDocument;
  let pvc: string;

  beforeAll(async () => {
    world = useWorld();
    box = sandbox(world);
    const exported = await box.run(["export", "kubernetes", "--gpu", "h100-80gb", "--out", join(box.dir, "out"), "--json"], { LLAMA3_TRT_API_KEY: apiKey });
    expect(exported.exitCode, exported.stderr).toBe(0);
    expect(exported.stdout + exported.stderr).not.toContain(world.env.HF_TOKEN);
    expect(exported.stdout + exported.stderr).not.toContain(apiKey);
    // The gateway's image is one to build and push, as a llama3-trt/ build image is.
    expect(exported.stderr).toContain("The gateway image llama3-trt/gateway:0.1.0 is not published");
    doc = JSON.parse(exported.stdout) as ExportDocument;
    pvc = join(box.dir, "pvc");
  });

  afterAll(async () => {
    await box?.[Symbol.asyncDispose]();
    await world?.[Symbol.asyncDispose]();
  });

  const runOptions = (spec: PodSpec, extra: Partial<PodRunOptions> = {}): PodRunOptions => {
    const gitRoot = world.world.gitRepos.trtllm.replace(/^file:\/\//, "");
    return {
      claims: { "llama3-trt": pvc },
      volumes: spec.volumes,
      secrets: { "llama3-trt-hf-token": { HF_TOKEN: world.env.HF_TOKEN }, "llama3-trt-api-key": { LLAMA3_TRT_API_KEY: apiKey } },
      extraBinds: [
        "/usr/bin/git:/usr/bin/git:ro",
        "/usr/lib/git-core:/usr/lib/git-core:ro",
        "/usr/share/git-core:/usr/share/git-core:ro",
        `${huggingfaceCli}:/usr/local/bin/huggingface-cli:ro`,
        `${dirname(gitRoot)}:${dirname(gitRoot)}:ro`,
      ],
      network: "host",
      ...extra,
    };
  };

  it("writes the kustomize folder it reports, without the token", () => {
    expect(doc.written).toBe(true);
    expect(doc.job).toBe(`llama3-trt-build-${doc.fingerprint.slice(0, 16)}`);
    expect(doc.buildFolder).toBe(`builds/${doc.fingerprint.slice(0, 16)}`);
    const onDisk = readdirSync(doc.out, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name).slice(doc.out.length + 1))
      .sort();
    expect(onDisk).toEqual(doc.files.map((f) => f.path).sort());
    for (const f of doc.files) {
      const text = readFileSync(join(doc.out, f.path), "utf8");
      expect(text).toBe(f.text);
      expect(text).not.toContain(world.env.HF_TOKEN);
      expect(text).not.toContain(apiKey);
    }
  });

  it("the Job's containers, run in order, build the engine and model repository under the build's folder; run again, they do nothing", async () => {
    await using w = useWorld();
    const job = podSpecOf(doc.out, "build-job.yaml", "Job");
    const steps = [...(job.initContainers ?? []), ...job.containers];
    expect(steps.map((c) => c.name)).toEqual(["trtllm-repo", "backend-repo", "weights", "checkpoint", "engine", "model-repo"]);
    for (const step of steps) {
      const result = await runPodContainer(step, runOptions(job));
      expect(result.exitCode, `${step.name}:\n${result.output}`).toBe(0);
      expect(result.output).toContain(`${step.name}: done`);
    }
    const build = join(pvc, doc.buildFolder);
    expect(readdirSync(join(build, "status")).sort()).toEqual(steps.map((s) => `${s.name}.done`).sort());
    expect(existsSync(join(build, "engine", "rank0.engine"))).toBe(true);
    expect(JSON.parse(readFileSync(join(build, "engine", "config.json"), "utf8")).build_config.max_batch_size).toBe(64);
    // The weights came from the world's Hub into the shared cache, with the token of the Secret.
    expect(readdirSync(join(pvc, "hub", "models--meta-llama--Meta-Llama-3-8B-Instruct", "snapshots"))).toHaveLength(1);
    const resolves = (await w.hubRequests()).filter((r) => r.path.includes("/resolve/5c37") || r.path.includes("/resolve/"));
    expect(resolves.length).toBeGreaterThan(0);
    expect(resolves.filter((r) => r.origin === "hub").every((r) => r.authorization && r.userAgent?.startsWith("huggingface_hub/"))).toBe(true);
    expect(await w.invocations("trtllm-build")).toBe(1);
    expect(await w.invocations("huggingface-cli")).toBe(1);

    // The model repository fill (the backend's own fill_template.py) gives what `build` writes.
    const plan = JSON.parse((await box.run(["plan", "--json"])).stdout) as { steps: { id: string; files?: { values: Record<string, string> } }[] };
    const values = plan.steps.find((s) => s.id === "model-repo")?.files?.values ?? {};
    for (const model of tritonModels) {
      const template = readFileSync(join(build, "tensorrtllm_backend", "all_models", "inflight_batcher_llm", model, "config.pbtxt"), "utf8");
      expect(readFileSync(join(build, "model-repo", model, "config.pbtxt"), "utf8"), model).toBe(fillConfig(model, template, values));
    }

    // Applied again (a retried pod, a re-created Job): every step sees its marker and runs nothing.
    await using again = useWorld();
    for (const step of steps) {
      const result = await runPodContainer(step, runOptions(job));
      expect(result.exitCode, result.output).toBe(0);
      expect(result.output).toContain(`${step.name}: done already`);
    }
    expect(await again.invocationList()).toEqual([]);
  });

  it("the Deployment's Triton container gets ready on the probes' path and port and answers a prompt; its gateway sidecar answers the OpenAI client with the Secret's key", async () => {
    const pod = podSpecOf(doc.out, "triton.yaml", "Deployment");
    const [wait, ...otherInits] = pod.initContainers ?? [];
    expect(otherInits).toEqual([]);
    // The build of the test above is there: the wait ends at once.
    const waited = await runPodContainer(wait as PodContainer, runOptions(pod, { network: "bridge", extraBinds: [] }), 30_000);
    expect(waited.exitCode, waited.output).toBe(0);

    const [triton, ...sidecars] = pod.containers as (PodContainer & {
      startupProbe: { httpGet: { path: string; port: string } };
      readinessProbe: { httpGet: { path: string; port: string } };
      livenessProbe: { httpGet: { path: string; port: string } };
    })[];
    const gateway = sidecars.find((c) => c.name === "gateway") as (PodContainer & { readinessProbe: { httpGet: { path: string; port: string } } }) | undefined;
    expect(sidecars.map((c) => c.name)).toEqual(["gateway"]);
    if (!triton || !gateway) throw new Error("no Triton or gateway container");
    const ports = await freePorts();
    // The pod's ports, published on the container that owns the pod's network (Triton's).
    const byName = new Map([...(triton.ports ?? []), ...(gateway.ports ?? [])].map((p) => [p.name, p.containerPort]));
    const hostPort = new Map([
      [byName.get("http"), ports.http],
      [byName.get("grpc"), ports.grpc],
      [byName.get("metrics"), ports.metrics],
      [byName.get("openai"), ports.openai],
    ]);
    const publish = Object.fromEntries([...hostPort].map(([c, h]) => [c as number, h]));
    const container = await createPodContainer(triton, runOptions(pod, { network: "bridge", extraBinds: [], publish }));
    let sidecar: Awaited<ReturnType<typeof createPodContainer>> | undefined;
    try {
      await container.start();
      // As the kubelet does, the sidecar starts beside Triton, not once it is ready.
      const standIn: PodContainer = { ...gateway, image: worldBase, command: [nodeInContainer, "--disable-warning=ExperimentalWarning", cliFromSources] };
      sidecar = await createPodContainer(
        standIn,
        runOptions(pod, { network: `container:${container.id}`, extraBinds: [`${process.execPath}:${nodeInContainer}:ro`, `${projectRoot}:${projectRoot}:ro`] }),
      );
      await sidecar.start();
      const url = (probe: { httpGet: { path: string; port: string } }) => `http://127.0.0.1:${hostPort.get(byName.get(probe.httpGet.port))}${probe.httpGet.path}`;
      let ready = false;
      for (let i = 0; i < 120 && !ready; i++) {
        const state = (await container.inspect()).State;
        if (!state.Running) throw new Error(`Triton exited with ${state.ExitCode}`);
        ready = await fetch(url(triton.startupProbe)).then((r) => r.status === 200, () => false);
        if (!ready) await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
      expect(ready).toBe(true);
      expect((await fetch(url(triton.readinessProbe))).status).toBe(200);
      expect((await fetch(url(triton.livenessProbe))).status).toBe(200);
      // The metrics port the PodMonitor scrapes.
      expect((await fetch(`http://127.0.0.1:${ports.metrics}/metrics`)).status).toBe(200);

      const asked = await box.run(["ask", "--url", `http://127.0.0.1:${ports.http}`, question, "--json"]);
      expect(asked.exitCode, asked.stderr).toBe(0);
      expect((JSON.parse(asked.stdout) as { answer: string }).answer).toBe(standInAnswer(question));

      // The gateway: ready on its probe once Triton is, then the official client through it.
      const sidecarLog = async () => ((await sidecar?.logs({ stdout: true, stderr: true })) as Buffer | undefined)?.toString("utf8") ?? "";
      let gatewayReady = false;
      for (let i = 0; i < 60 && !gatewayReady; i++) {
        const state = (await sidecar.inspect()).State;
        if (!state.Running) throw new Error(`the gateway exited with ${state.ExitCode}:\n${await sidecarLog()}`);
        gatewayReady = await fetch(url(gateway.readinessProbe)).then((r) => r.status === 200, () => false);
        if (!gatewayReady) await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
      expect(gatewayReady, await sidecarLog()).toBe(true);
      const baseURL = `http://127.0.0.1:${ports.openai}/v1`;
      const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
      const completion = await client.chat.completions.create({ model: "meta-llama/Meta-Llama-3-8B-Instruct", messages: [{ role: "user", content: question }] });
      expect(completion.choices[0]?.message.content).toBe(standInAnswer(question));
      // The key came from the Secret: without it the gateway refuses.
      const keyless = new OpenAI({ baseURL, apiKey: "sk-not-the-key-0000", maxRetries: 0 });
      await expect(keyless.chat.completions.create({ model: "meta-llama/Meta-Llama-3-8B-Instruct", messages: [{ role: "user", content: question }] })).rejects.toMatchObject({ status: 401 });
      const log = await sidecarLog();
      expect(log).not.toContain(apiKey);
      expect(log).not.toContain(question);
    } finally {
      await sidecar?.remove({ force: true, v: true });
      await container.remove({ force: true, v: true });
    }
  });

  it("a changed setting names a new build folder and Job, which builds beside the old engine from the cached weights; tp beyond a node's GPUs, no GPU model and --model-dir are refused with the reason", async () => {
    const changed = await box.run(["export", "kubernetes", "--gpu", "h100-80gb", "--dtype", "float16", "--out", join(box.dir, "out2"), "--json"]);
    expect(changed.exitCode, changed.stderr).toBe(0);
    const float16 = JSON.parse(changed.stdout) as ExportDocument;
    expect(float16.buildFolder).not.toBe(doc.buildFolder);
    expect(float16.job).not.toBe(doc.job);

    // Its Job on the same volume builds beside the first engine, from the weights already in the
    // shared cache: the Hub is asked for metadata only, nothing comes from the CDN.
    const oldEngine = readFileSync(join(pvc, doc.buildFolder, "engine", "config.json"), "utf8");
    await using w = useWorld();
    const job = podSpecOf(float16.out, "build-job.yaml", "Job");
    for (const step of [...(job.initContainers ?? []), ...job.containers]) {
      const result = await runPodContainer(step, runOptions(job));
      expect(result.exitCode, `${step.name}:\n${result.output}`).toBe(0);
    }
    expect(readFileSync(join(pvc, doc.buildFolder, "engine", "config.json"), "utf8")).toBe(oldEngine);
    expect(JSON.parse(readFileSync(join(pvc, float16.buildFolder, "engine", "config.json"), "utf8")).pretrained_config.dtype).toBe("float16");
    expect(await w.invocations("trtllm-build")).toBe(1);
    const requests = await w.hubRequests();
    expect(requests.filter((r) => r.origin === "cdn")).toEqual([]);
    expect(requests.filter((r) => r.origin === "hub" && r.path.includes("/resolve/")).every((r) => r.method === "HEAD")).toBe(true);

    const same = await box.run(["plan", "--target", "kubernetes", "--gpu", "h100-80gb", "--json"], { LLAMA3_TRT_API_KEY: apiKey });
    expect(same.exitCode, same.stderr).toBe(0);
    const dry = JSON.parse(same.stdout) as ExportDocument;
    expect(dry.written).toBe(false);
    expect(dry.fingerprint).toBe(doc.fingerprint);
    expect(dry.files.map((f) => f.text)).toEqual(doc.files.map((f) => f.text));

    const refused = await box.run(["export", "kubernetes", "--gpu", "h100-80gb", "--tp", "8", "--gpus-per-node", "4", "--out", join(box.dir, "out3")]);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain("tp × pp = 8 × 1 = 8 GPUs in one Triton pod, but a node has 4");
    expect(existsSync(join(box.dir, "out3"))).toBe(false);

    // No GPUs here and none named: which GPU model the engine is for cannot be guessed.
    const unnamed = await box.run(["export", "kubernetes", "--out", join(box.dir, "out4")]);
    expect(unnamed.exitCode).toBe(2);
    expect(unnamed.stderr).toContain("Pass `--gpu <profile>`");
    const local = await box.run(["export", "kubernetes", "--gpu", "h100-80gb", "--model-dir", box.dir, "--out", join(box.dir, "out5")]);
    expect(local.exitCode).toBe(2);
    expect(local.stderr).toContain("the build Job downloads the model from the Hub");
    const other = await box.run(["export", "helm"]);
    expect(other.exitCode).toBe(2);
    expect(other.stderr).toContain("the one target is `kubernetes`");
  });
});
