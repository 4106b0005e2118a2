/**
 * The export's objects, proven without a cluster: every document of every file, read back from
 * its YAML, validates against the official Kubernetes OpenAPI schema (kubernetes-models, a
 * current release) or the Prometheus Operator's CRD schema; the folder is stable (file
 * snapshots a change must update); the fingerprint follows every setting that changes what is
 * built; the containers carry the plan's argv; the token is nowhere.
 */
import { Deployment } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { Job } from "kubernetes-models/batch/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { PersistentVolumeClaim, Service } from "kubernetes-models/v1";
import { PodMonitor, PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { describe, expect, it } from "vitest";
import { parseAllDocuments, parse } from "yaml";
import { exportFiles, splitImage, type ExportedFile } from "../../../src/kubernetes/files.ts";
import { buildManifests, cloneArgv, names, shQuote, startupProbe, stepScript, volumeSize } from "../../../src/kubernetes/manifests.ts";
import { productLabel } from "../../../src/kubernetes/export.ts";
import { containerPorts, tritonLaunchArgv } from "../../../src/triton/launch.ts";
import { commit, planFor, settingsWith } from "./plan-fixture.ts";

const validators: Record<string, (body: unknown) => void> = {
  Job: (b) => new Job(b as never).validate(),
  Deployment: (b) => new Deployment(b as never).validate(),
  Service: (b) => new Service(b as never).validate(),
  PersistentVolumeClaim: (b) => new PersistentVolumeClaim(b as never).validate(),
  PodDisruptionBudget: (b) => new PodDisruptionBudget(b as never).validate(),
  HorizontalPodAutoscaler: (b) => new HorizontalPodAutoscaler(b as never).validate(),
  PodMonitor: (b) => new PodMonitor(b as never).validate(),
  PrometheusRule: (b) => new PrometheusRule(b as never).validate(),
};

async function exported(overrides: Parameters<typeof settingsWith>[0] = {}, options: Parameters<typeof planFor>[1] = {}) {
  const settings = settingsWith(overrides);
  const plan = await planFor(settings, options);
  const manifests = buildManifests(plan);
  const files = exportFiles(manifests, {
    toolVersion: "0.1.0",
    model: plan.model,
    commit,
    dtype: settings.dtype,
    quantize: settings.quantize,
    tp: settings.tp,
    gpuProduct: plan.gpuProduct,
    namespace: "llama3-trt",
    images: [settings.buildImage, settings.tritonImage, ...(plan.gateway ? [plan.gateway.image] : [])],
    gateway: plan.gateway,
  });
  return { settings, plan, manifests, files };
}

function documents(file: ExportedFile): { kind: string; metadata: { name: string } }[] {
  return parseAllDocuments(file.text).map((d) => d.toJSON() as { kind: string; metadata: { name: string } });
}

type Container = { name: string; image: string; command: string[]; args: string[]; workingDir: string; env?: { name: string; value?: string }[]; volumeMounts: { mountPath: string; subPath: string; readOnly?: boolean }[]; resources?: { limits: Record<string, string> } };
type PodTemplate = { spec: { template: { spec: { initContainers: Container[]; containers: (Container & Record<string, unknown>)[]; affinity: unknown; volumes: unknown[] } } } };

function byKind(files: readonly ExportedFile[], kind: string): PodTemplate & Record<string, unknown> {
  for (const f of files) for (const d of documents(f)) if (d.kind === kind) return d as unknown as PodTemplate & Record<string, unknown>;
  throw new Error(`no ${kind}`);
}

describe("export kubernetes: the objects", () => {
  it.each([
    ["the defaults", {}],
    ["an API key", { apiKey: "sk-unit-test-key-0123" }],
    ["no gateway (--openai-port 0)", { openaiPort: 0 }],
  ] as const)("with %s, every document of every file validates against its schema, and each file holds what it says", async (_what, overrides) => {
    const { files } = await exported(overrides);
    const kinds: string[] = [];
    for (const file of files) {
      if (file.objects.length === 0) continue;
      const docs = documents(file);
      expect(docs.map((d) => ({ kind: d.kind, name: d.metadata.name })), file.path).toEqual(file.objects);
      for (const doc of docs) {
        const validate = validators[doc.kind];
        if (!validate) throw new Error(`${file.path}: no validator for ${doc.kind}`);
        validate(doc);
        kinds.push(doc.kind);
      }
    }
    expect(kinds.sort()).toEqual(Object.keys(validators).sort());
  });

  it("the schemas do refuse a wrong object (the validation can fail)", async () => {
    const job = byKind((await exported()).files, "Job");
    const broken = structuredClone(job) as unknown as { spec: { template: { spec: { containers: { args: unknown }[] } } } };
    (broken.spec.template.spec.containers[0] as { args: unknown }).args = "not a list";
    expect(() => validators.Job?.(broken)).toThrow(/args/);
    const hpa = byKind((await exported()).files, "HorizontalPodAutoscaler") as unknown as { spec: { metrics: { pods: { target: { type: string } } }[] } };
    const badHpa = structuredClone(hpa);
    (badHpa.spec.metrics[0] as { pods: { target: Record<string, unknown> } }).pods.target = { averageValue: "1" };
    expect(() => validators.HorizontalPodAutoscaler?.(badHpa)).toThrow();
  });

  it("the folder is stable: a change to any file must update its snapshot", async () => {
    const { files } = await exported();
    for (const file of files) {
      await expect(file.text).toMatchFileSnapshot(`./__snapshots__/export/${file.path}`);
    }
  });

  it("kustomization.yaml and the autoscaling component list exactly the object files", async () => {
    const { files } = await exported();
    const text = (path: string) => files.find((f) => f.path === path)?.text ?? "";
    const top = parse(text("kustomization.yaml")) as { kind: string; namespace: string; resources: string[]; images: { name: string; newName: string; newTag: string }[]; replicas: { name: string }[] };
    expect(top.kind).toBe("Kustomization");
    const component = parse(text("autoscaling/kustomization.yaml")) as { kind: string; resources: string[] };
    expect(component.kind).toBe("Component");
    const objectFiles = files.filter((f) => f.objects.length > 0).map((f) => f.path).sort();
    expect([...top.resources, ...component.resources.map((r) => `autoscaling/${r}`)].sort()).toEqual(objectFiles);
    expect(top.replicas.map((r) => r.name)).toEqual([names.deployment]);
    expect(top.images).toEqual([
      { name: "registry.example.com/llama3-trt/tensorrt-llm", newName: "registry.example.com/llama3-trt/tensorrt-llm", newTag: "0.8.0" },
      { name: "nvcr.io/nvidia/tritonserver", newName: "nvcr.io/nvidia/tritonserver", newTag: "24.03-trtllm-python-py3" },
      { name: "llama3-trt/gateway", newName: "llama3-trt/gateway", newTag: "0.1.0" },
    ]);
    // The commented-out block at the end is valid kustomize once uncommented.
    const lines = text("kustomization.yaml").trimEnd().split("\n");
    const tail = lines.slice(lines.findLastIndex((l) => !l.startsWith("#")) + 1);
    const uncommented = parse(tail.map((l) => l.replace(/^# /, "")).join("\n")) as {
      components: string[];
      patches: { target: { kind: string; name: string }; patch: string }[];
    };
    expect(uncommented.components).toEqual(["autoscaling"]);
    expect(uncommented.patches[0]?.target).toEqual({ kind: "PersistentVolumeClaim", name: names.claim });
    expect(parse(uncommented.patches[0]?.patch ?? "")).toEqual([{ op: "add", path: "/spec/storageClassName", value: "<your storage class>" }]);
  });

  it("the Job runs the plan's steps in order, each container with the plan's own argv, image and working folder", async () => {
    const { plan, files, manifests } = await exported();
    const job = byKind(files, "Job");
    const pod = job.spec.template.spec;
    const all = [...pod.initContainers, ...pod.containers];
    expect(all.map((c) => c.name)).toEqual(["trtllm-repo", "backend-repo", "weights", "checkpoint", "engine", "model-repo"]);
    for (const id of ["checkpoint", "engine"] as const) {
      const work = plan.steps.find((s) => s.id === id)?.work;
      if (work?.kind !== "container") throw new Error(id);
      const container = all.find((c) => c.name === id);
      expect(container?.args).toEqual(work.container.cmd);
      expect(container?.image).toBe(work.container.image);
      expect(container?.workingDir).toBe(work.container.workingDir);
      // GPUs for the engine's ranks; every read-only mount of the plan, from the build's folder or the cache.
      expect(container?.resources?.limits["nvidia.com/gpu"]).toBe("1");
      const readOnly = container?.volumeMounts.filter((m) => m.readOnly).map((m) => m.mountPath).sort();
      expect(readOnly).toEqual(work.container.mounts.filter((m) => m.readOnly).map((m) => m.container).sort());
      expect(container?.volumeMounts.find((m) => m.mountPath === "/llama3-trt/output")?.subPath).toBe(`${manifests.layout.build}/${id}`);
    }
    const git = (id: string) => all.find((c) => c.name === id)?.args;
    expect(git("trtllm-repo")).toEqual(["git", "clone", "--depth", "1", "--branch", "v0.8.0", "--single-branch", "--", "https://github.com/NVIDIA/TensorRT-LLM.git", "/llama3-trt/output"]);
    const weights = all.find((c) => c.name === "weights");
    expect(weights?.args.slice(0, 3)).toEqual(["huggingface-cli", "download", "meta-llama/Meta-Llama-3-8B-Instruct"]);
    expect(weights?.args.slice(-4)).toEqual(["--revision", commit, "--cache-dir", "/llama3-trt/hub"]);
    // The checkpoint reads the snapshot the download writes.
    const checkpoint = all.find((c) => c.name === "checkpoint");
    expect(checkpoint?.args).toContain(`/llama3-trt/weights/snapshots/${commit}`);
    expect(checkpoint?.volumeMounts.find((m) => m.mountPath === "/llama3-trt/weights")?.subPath).toBe("hub/models--meta-llama--Meta-Llama-3-8B-Instruct");
  });

  it("the token comes from the Secret, and no value of it is in any file", async () => {
    const token = "hf_unitTESTtoken0123456789";
    const { files } = await exported({}, { hfEndpoint: "https://hf-mirror.example.com" });
    for (const f of files) expect(f.text).not.toContain(token);
    const weights = byKind(files, "Job").spec.template.spec.initContainers.find((c) => c.name === "weights");
    expect(weights?.env).toEqual([
      { name: "HF_TOKEN", valueFrom: { secretKeyRef: { name: "llama3-trt-hf-token", key: "HF_TOKEN" } } },
      { name: "HF_ENDPOINT", value: "https://hf-mirror.example.com" },
      { name: "HF_HUB_DISABLE_PROGRESS_BARS", value: "1" },
    ]);
  });

  it("Triton runs serve's mpirun line, one rank and one GPU per tp, probes on Triton's health paths and named ports, the volume read-only", async () => {
    const { files } = await exported({ tp: 2 });
    const deployment = byKind(files, "Deployment");
    const pod = deployment.spec.template.spec;
    const [triton, ...sidecars] = pod.containers;
    expect(sidecars.map((c) => c.name)).toEqual(["gateway"]);
    expect(triton?.command).toEqual(tritonLaunchArgv({ worldSize: 2, modelRepo: "/llama3-trt/model-repo" }));
    expect(triton?.resources?.limits).toEqual({ "nvidia.com/gpu": "2" });
    expect(triton?.ports).toEqual([
      { name: "http", containerPort: containerPorts.http },
      { name: "grpc", containerPort: containerPorts.grpc },
      { name: "metrics", containerPort: containerPorts.metrics },
    ]);
    expect(triton?.startupProbe).toMatchObject({ httpGet: { path: "/v2/health/ready", port: "http" }, ...startupProbe });
    expect(triton?.readinessProbe).toMatchObject({ httpGet: { path: "/v2/health/ready", port: "http" } });
    expect(triton?.livenessProbe).toMatchObject({ httpGet: { path: "/v2/health/live", port: "http" } });
    expect(triton?.volumeMounts.every((m) => m.readOnly === true || m.mountPath === "/dev/shm")).toBe(true);
    expect(pod.volumes).toContainEqual({ name: "shm", emptyDir: { medium: "Memory", sizeLimit: "2Gi" } });
    expect(pod.affinity).toEqual({
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: "nvidia.com/gpu.product", operator: "In", values: ["NVIDIA-H100-80GB-HBM3"] }] }],
        },
      },
    });
    const service = byKind(files, "Service") as unknown as { spec: { ports: { name: string; targetPort: string }[] } };
    expect(service.spec.ports.map((p) => p.targetPort)).toEqual(["http", "grpc", "metrics", "openai"]);
  });

  it("the gateway sidecar runs `llama3-trt gateway` in front of Triton on the pod's loopback, on openai_port, the model's snapshot read-only, ready on /health", async () => {
    const { files, manifests } = await exported({ openaiPort: 9100, maxInputLen: 2048, maxOutputLen: 512 });
    const pod = byKind(files, "Deployment").spec.template.spec;
    const gateway = pod.containers.find((c) => c.name === "gateway") as (Container & { ports: unknown; readinessProbe: unknown; livenessProbe?: unknown }) | undefined;
    expect(gateway?.image).toBe("llama3-trt/gateway:0.1.0");
    expect(gateway?.command).toEqual(["llama3-trt"]);
    expect(gateway?.args).toEqual([
      "gateway",
      "--triton-url",
      `http://127.0.0.1:${containerPorts.http}`,
      "--triton-grpc",
      `127.0.0.1:${containerPorts.grpc}`,
      "--host",
      "0.0.0.0",
      "--port",
      "9100",
      "--model",
      "meta-llama/Meta-Llama-3-8B-Instruct",
      "--model-dir",
      `/llama3-trt/weights/snapshots/${commit}`,
      // No engine record in the sidecar: the engine's limits come as flags.
      "--max-input-len",
      "2048",
      "--max-output-len",
      "512",
    ]);
    expect(gateway?.ports).toEqual([{ name: "openai", containerPort: 9100 }]);
    expect(gateway?.readinessProbe).toMatchObject({ httpGet: { path: "/health", port: "openai" } });
    // Its /health follows Triton: a liveness probe on it would restart a healthy gateway.
    expect(gateway?.livenessProbe).toBeUndefined();
    expect(gateway?.env).toBeUndefined();
    // The cache folder the Job downloaded into, so the snapshot's links to its blobs resolve.
    expect(gateway?.volumeMounts).toEqual([{ name: "volume", mountPath: "/llama3-trt/weights", subPath: "hub/models--meta-llama--Meta-Llama-3-8B-Instruct", readOnly: true }]);
    const triton = pod.containers.find((c) => c.name === "triton");
    expect(triton?.volumeMounts.find((m) => m.mountPath === "/llama3-trt/weights")?.subPath).toBe(manifests.layout.modelCache);
    const service = byKind(files, "Service") as unknown as { spec: { ports: { name: string; port: number; targetPort: string }[] } };
    expect(service.spec.ports.find((p) => p.name === "openai")).toEqual({ name: "openai", port: 9100, targetPort: "openai" });
  });

  it("an API key comes from the Secret the person creates, and its value is in no file", async () => {
    const key = "sk-unit-test-key-0123";
    const { files } = await exported({ apiKey: key });
    for (const f of files) expect(f.text).not.toContain(key);
    const gateway = byKind(files, "Deployment").spec.template.spec.containers.find((c) => c.name === "gateway");
    expect(gateway?.env).toEqual([{ name: "LLAMA3_TRT_API_KEY", valueFrom: { secretKeyRef: { name: "llama3-trt-api-key", key: "LLAMA3_TRT_API_KEY" } } }]);
    expect(gateway?.args.join(" ")).not.toContain("api-key");
    const kustomization = files.find((f) => f.path === "kustomization.yaml")?.text ?? "";
    expect(kustomization).toContain("create secret generic llama3-trt-api-key --from-file=LLAMA3_TRT_API_KEY=");
    // Without a key the header asks for no such Secret.
    const plain = (await exported()).files.find((f) => f.path === "kustomization.yaml")?.text ?? "";
    expect(plain).not.toContain("llama3-trt-api-key");
  });

  it("with --openai-port 0 there is no gateway: no sidecar, no Service port, no gateway image", async () => {
    const { files } = await exported({ openaiPort: 0 });
    const pod = byKind(files, "Deployment").spec.template.spec;
    expect(pod.containers.map((c) => c.name)).toEqual(["triton"]);
    const service = byKind(files, "Service") as unknown as { spec: { ports: { name: string }[] } };
    expect(service.spec.ports.map((p) => p.name)).toEqual(["http", "grpc", "metrics"]);
    for (const f of files) expect(f.text, f.path).not.toContain("gateway");
  });

  it("the HPA asks for the metric the Prometheus adapter serves, from the series the PrometheusRule records", async () => {
    const { manifests } = await exported();
    const hpa = manifests.autoscaling.hpa.body as { spec: { metrics: { type: string; pods: { metric: { name: string } } }[]; scaleTargetRef: { name: string } } };
    expect(hpa.spec.scaleTargetRef.name).toBe(names.deployment);
    expect(hpa.spec.metrics[0]?.type).toBe("Pods");
    const rule = (manifests.adapterRules as { rules: { custom: { seriesQuery: string; name: { as: string; matches: string }; resources: { overrides: Record<string, unknown> } }[] } }).rules.custom[0];
    expect(rule?.name.as).toBe(hpa.spec.metrics[0]?.pods.metric.name);
    const recorded = (manifests.autoscaling.rule.body as { spec: { groups: { rules: { record: string; expr: string }[] }[] } }).spec.groups[0]?.rules[0];
    expect(rule?.seriesQuery.startsWith(`${recorded?.record}{`)).toBe(true);
    expect(new RegExp(rule?.name.matches ?? "").test(recorded?.record ?? "")).toBe(true);
    expect(recorded?.expr).toMatch(/nv_inference_queue_duration_us.*\/.*nv_inference_compute_infer_duration_us/);
    // The HPA's Pods metric is per pod: the adapter maps the series' pod and namespace labels.
    expect(Object.keys(rule?.resources.overrides ?? {}).sort()).toEqual(["namespace", "pod"]);
    const monitor = manifests.autoscaling.podMonitor.body as { spec: { podMetricsEndpoints: { port: string }[] } };
    expect(monitor.spec.podMetricsEndpoints[0]?.port).toBe("metrics");
  });
});

describe("export kubernetes: the build's fingerprint", () => {
  it("is the same for the same settings, whatever the workdir", async () => {
    const a = await exported();
    const b = await exported({ workdir: "/elsewhere/llama3-trt" });
    expect(b.manifests.fingerprint).toBe(a.manifests.fingerprint);
    expect(b.files.map((f) => f.text)).toEqual(a.files.map((f) => f.text));
  });

  it.each([
    ["dtype", { dtype: "float16" }],
    ["tp", { tp: 2 }],
    ["quantize", { quantize: "int8" }],
    ["max batch size", { maxBatchSize: 32 }],
    ["max input length", { maxInputLen: 2048 }],
    ["max output length", { maxOutputLen: 512 }],
    ["streaming", { streaming: false }],
    ["the TensorRT-LLM ref", { trtllmRepoRef: "v0.8.1" }],
    ["the backend's URL", { backendRepoUrl: "https://mirror.example.com/tensorrtllm_backend.git" }],
    ["the build image", { buildImage: "registry.example.com/trtllm:other" }],
  ] as const)("changes with %s, and with it the build's folder, every subPath and the Job's name", async (_what, overrides) => {
    const base = await exported();
    const changed = await exported(overrides as never);
    expect(changed.manifests.fingerprint).not.toBe(base.manifests.fingerprint);
    expect(changed.manifests.layout.build).not.toBe(base.manifests.layout.build);
    expect(changed.manifests.job.name).not.toBe(base.manifests.job.name);
    const subPaths = (m: typeof base) => JSON.stringify(m.manifests.deployment.body).match(/builds\/[0-9a-f]{16}/g) ?? [];
    expect(new Set(subPaths(changed))).toEqual(new Set([changed.manifests.layout.build]));
  });

  it("changes with the GPU model: an engine runs only on the GPUs it was built for", async () => {
    const h100 = await exported();
    const a100 = await exported({}, { gpuProduct: "NVIDIA-A100-SXM4-80GB" });
    expect(a100.manifests.fingerprint).not.toBe(h100.manifests.fingerprint);
  });

  it("does not change with serving-only settings (ports, host)", async () => {
    const base = await exported();
    const other = await exported({ port: 9100, host: "0.0.0.0" });
    expect(other.manifests.fingerprint).toBe(base.manifests.fingerprint);
  });
});

describe("export kubernetes: small parts", () => {
  it("the step script skips a finished step, clears a killed run's leftovers, and checks every file", () => {
    const script = stepScript({ output: { path: "/llama3-trt/output", subPath: "x", clear: true, files: ["config.json", "it's odd.bin"] } });
    expect(script).toContain('if [ -e "$done_file" ]');
    expect(script).toContain("find /llama3-trt/output -mindepth 1 -delete");
    expect(script).toContain(`for file in config.json 'it'\\''s odd.bin'; do`);
    expect(script.indexOf('"$@"')).toBeLessThan(script.indexOf('touch "$done_file"'));
    expect(stepScript({ output: { path: "/llama3-trt/hub", subPath: "hub", clear: false, files: ["a"] } })).not.toContain("find");
  });

  it("clones a tag or branch shallow as build does, and a commit by fetching exactly it", () => {
    expect(cloneArgv({ url: "https://x/y.git", ref: "v0.8.0", dir: "/w" }, "/out")).toEqual(["git", "clone", "--depth", "1", "--branch", "v0.8.0", "--single-branch", "--", "https://x/y.git", "/out"]);
    const sha = "a".repeat(40);
    const byCommit = cloneArgv({ url: "https://x/y.git", ref: sha, dir: "/w" }, "/out");
    expect(byCommit.slice(0, 2)).toEqual(["/bin/sh", "-c"]);
    expect(byCommit.slice(3)).toEqual(["clone", "/out", "https://x/y.git", sha]);
    expect(byCommit[2]).toContain('fetch --depth 1 -- "$2" "$3"');
  });

  it("quotes for sh", () => {
    expect(shQuote("plain/path-1.0")).toBe("plain/path-1.0");
    expect(shQuote("$(rm -rf /)")).toBe("'$(rm -rf /)'");
  });

  it("names GPUs the way GPU Feature Discovery labels them", () => {
    expect(productLabel("NVIDIA H100 80GB HBM3")).toBe("NVIDIA-H100-80GB-HBM3");
    expect(productLabel("NVIDIA A100-SXM4-80GB")).toBe("NVIDIA-A100-SXM4-80GB");
  });

  it("splits image references as kustomize's images: matches them", () => {
    expect(splitImage("127.0.0.1:5055/nvidia/tritonserver:24.03-trtllm-python-py3")).toEqual({ name: "127.0.0.1:5055/nvidia/tritonserver", tag: "24.03-trtllm-python-py3" });
    expect(splitImage("registry:5000/x")).toEqual({ name: "registry:5000/x" });
    expect(splitImage(`a/b@sha256:${"0".repeat(64)}`)).toEqual({ name: "a/b", digest: `sha256:${"0".repeat(64)}` });
  });

  it("sizes the volume for weights, checkpoint and engine", () => {
    expect(volumeSize(16_060_522_000)).toBe("57Gi");
    expect(volumeSize(1_000)).toBe("20Gi");
  });

  it("the model repository fill refuses a value sh or fill_template.py would misread", async () => {
    const { plan } = await exported();
    const step = plan.steps.find((s) => s.id === "model-repo");
    if (step?.work.kind !== "files") throw new Error("model-repo");
    const hostile = { ...step.work, files: { ...step.work.files, values: { ...step.work.files.values, tokenizer_dir: "/x/$(reboot)" } } };
    const steps = plan.steps.map((s) => (s.id === "model-repo" ? { ...s, work: hostile } : s));
    expect(() => buildManifests({ ...plan, steps })).toThrow(/tokenizer_dir/);
  });
});

