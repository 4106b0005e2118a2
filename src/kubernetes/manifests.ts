/**
 * The Kubernetes objects of `export kubernetes`, made from the plan that `build` runs and the
 * container `serve` starts: the very images, argv, working folders and mount table, with the
 * PersistentVolumeClaim in place of the workdir. Pure: the plan goes in, objects come out, each
 * built with kubernetes-models and checked against the official OpenAPI schema (or the
 * Prometheus Operator's CRD schema) before anything is written.
 */
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { Job } from "kubernetes-models/batch/v1";
import { PersistentVolumeClaim, Service } from "kubernetes-models/v1";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IEnvVar } from "kubernetes-models/v1/EnvVar";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import type { IVolumeMount } from "kubernetes-models/v1/VolumeMount";
import { PodMonitor, PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { shmSizeBytes, type ContainerSpec } from "../docker/container-spec.ts";
import { fingerprint } from "../pipeline/fingerprint.ts";
import { inContainer } from "../pipeline/container-paths.ts";
import type { StepStatus } from "../pipeline/runner.ts";
import type { ContainerWork, FilesWork, GitWork, ImageWork, StepWork, WeightsWork } from "../pipeline/step.ts";
import type { StepId } from "../pipeline/step-ids.ts";
import { repoMustContain } from "../pipeline/steps/git-repo.ts";
import { containerPorts } from "../triton/launch.ts";
import { valueProblem } from "../triton/model-repo.ts";
import { healthPaths } from "../triton/wait.ts";
import { inCluster, VolumeLayout } from "./layout.ts";

/** What the export is made from: the plan of `build`, the Triton container of `serve`, the cluster's GPUs. */
export interface ExportPlan {
  readonly model: string;
  /** `plan`'s steps, in run order, each with its exact work. */
  readonly steps: readonly StepStatus[];
  /** The container `serve` would start (serverContainerSpec): image, the mpirun … tritonserver line, mounts. */
  readonly triton: ContainerSpec;
  /** The engine's tp × pp: GPUs per Triton pod, one rank each. */
  readonly worldSize: number;
  /** `nvidia.com/gpu.product` of the nodes: an engine runs only on the GPU model it was built for. */
  readonly gpuProduct: string;
  /** The Hub mirror (HF_ENDPOINT) when one is set: not a secret, and the Job must use it too. */
  readonly hfEndpoint: string | undefined;
  /** Bytes of the model's files, for the volume's size. */
  readonly weightsBytes: number;
  /** The OpenAI-compatible gateway beside Triton in each pod; undefined with `--openai-port 0`. */
  readonly gateway: GatewaySidecar | undefined;
}

/** What the gateway sidecar needs that the plan's steps do not say. */
export interface GatewaySidecar {
  /** Built from templates/gateway-image (no Node image is published for llama3-trt). */
  readonly image: string;
  /** openai_port: the container's and the Service's port. */
  readonly port: number;
  /** The engine's limits: the sidecar has no workdir with the engine's record to read them from. */
  readonly maxInputLen: number;
  readonly maxOutputLen: number;
  /** Whether clients must send an API key; its value comes from a Secret the person creates, never from the export. */
  readonly apiKey: boolean;
}

/** The names every object of the export uses; a person finds them with `kubectl get … -l app.kubernetes.io/name=llama3-trt`. */
export const names = {
  app: "llama3-trt",
  claim: "llama3-trt",
  deployment: "llama3-trt-triton",
  service: "llama3-trt",
  /** A Secret the person creates; the export never contains the token. */
  tokenSecret: "llama3-trt-hf-token",
  tokenKey: "HF_TOKEN",
  /** The gateway's API key, when one is set: a Secret the person creates, read by the gateway as its environment. */
  apiKeySecret: "llama3-trt-api-key",
  apiKeyKey: "LLAMA3_TRT_API_KEY",
  metric: "llama3_trt_queue_compute_ratio",
  recordedSeries: "llama3_trt:queue_compute:ratio",
} as const;

export const gpuResource = "nvidia.com/gpu";
export const gpuProductLabel = "nvidia.com/gpu.product";

/** How long Triton may take to load the engine before the kubelet restarts it: 180 × 10 s = 30 min. */
export const startupProbe = { periodSeconds: 10, failureThreshold: 180 } as const;

export interface KubernetesObject {
  readonly kind: string;
  readonly name: string;
  /** The plain object, as written to YAML. */
  readonly body: Record<string, unknown>;
}

export interface Manifests {
  /** Names the build's folder on the volume and its Job. */
  readonly fingerprint: string;
  readonly layout: VolumeLayout;
  readonly claim: KubernetesObject;
  readonly job: KubernetesObject;
  readonly deployment: KubernetesObject;
  readonly service: KubernetesObject;
  readonly disruptionBudget: KubernetesObject;
  /** Optional (a kustomize component): they need the Prometheus Operator and the Prometheus adapter. */
  readonly autoscaling: { readonly podMonitor: KubernetesObject; readonly rule: KubernetesObject; readonly hpa: KubernetesObject };
  /** The Prometheus adapter's rule that serves the HPA's metric (Helm values of prometheus-adapter). */
  readonly adapterRules: Record<string, unknown>;
  readonly volumeBytes: number;
}

function work<K extends StepWork["kind"]>(plan: ExportPlan, id: StepId, kind: K): Extract<StepWork, { kind: K }> {
  const step = plan.steps.find((s) => s.id === id);
  if (!step || step.work.kind !== kind) throw new Error(`the plan has no ${kind} work for ${id}`);
  return step.work as Extract<StepWork, { kind: K }>;
}

/** The plan's works that decide what the build writes, by step. */
function planned(plan: ExportPlan) {
  return {
    trtllm: work(plan, "trtllm-repo", "git") as GitWork,
    backend: work(plan, "backend-repo", "git") as GitWork,
    weights: work(plan, "weights", "weights") as WeightsWork,
    image: work(plan, "build-image", "image") as ImageWork,
    checkpoint: work(plan, "checkpoint", "container") as ContainerWork,
    engine: work(plan, "engine", "container") as ContainerWork,
    modelRepo: work(plan, "model-repo", "files") as FilesWork,
  };
}

/**
 * Everything that decides what the build writes, so that the same settings give the same folder
 * (re-applying does nothing) and any change gives a new one beside it. Host paths are left out:
 * the same settings on another machine name the same build.
 */
export function buildFingerprint(plan: ExportPlan): string {
  const w = planned(plan);
  const container = (c: ContainerWork) => ({ image: c.container.image, cmd: [...c.container.cmd], workingDir: c.container.workingDir });
  return fingerprint("kubernetes-build", {
    trtllm: { url: w.trtllm.git.url, ref: w.trtllm.git.ref },
    backend: { url: w.backend.git.url, ref: w.backend.git.ref },
    weights: { repo: w.weights.weights.repo, commit: w.weights.weights.commit, files: w.weights.weights.files.map((f) => f.path) },
    checkpoint: container(w.checkpoint),
    engine: container(w.engine),
    values: { ...w.modelRepo.files.values },
    gpuProduct: plan.gpuProduct,
  });
}

/** The fingerprint's first 16 hex digits: the build's folder and Job name (64 bits: no two builds share one). */
export function buildId(fp: string): string {
  return fp.slice(0, 16);
}

/** One build step as a container of the Job: the plan's argv, run by `stepScript`. */
interface BuildStep {
  readonly name: StepId;
  readonly image: string;
  readonly argv: readonly string[];
  readonly workingDir: string;
  /** Read-only inputs: path in the container → folder on the volume. */
  readonly inputs: readonly { readonly path: string; readonly subPath: string }[];
  /** The one writable folder, and the files it must hold afterwards (relative to it). */
  readonly output: { readonly path: string; readonly subPath: string; readonly clear: boolean; readonly files: readonly string[] };
  readonly gpus: number;
  readonly env?: readonly IEnvVar[];
}

/** Single quotes for sh: the only character to escape is the quote itself. */
export function shQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * What runs around the plan's argv (`"$@"`) in each container of the Job: skip a step whose
 * outputs are complete (a retried pod, or the Job applied again after it was deleted), clear
 * what a killed run left, run the argv, check every expected file, then mark the step done.
 * The marker is the only sign of completeness: a half-written folder never looks finished.
 */
export function stepScript(step: Pick<BuildStep, "output">): string {
  const out = step.output.path;
  return [
    "set -eu",
    `done_file=${inCluster.status}/"$0".done`,
    `if [ -e "$done_file" ]; then echo "$0: done already ($done_file), nothing to do"; exit 0; fi`,
    ...(step.output.clear ? [`find ${shQuote(out)} -mindepth 1 -delete`] : []),
    `echo "$0: running $*"`,
    `"$@"`,
    `for file in ${step.output.files.map(shQuote).join(" ")}; do`,
    `  [ -e ${shQuote(out)}/"$file" ] || { echo "$0: $file is missing from ${out} after the run" >&2; exit 1; }`,
    "done",
    `touch "$done_file"`,
    `echo "$0: done"`,
  ].join("\n");
}

function buildContainer(step: BuildStep, layout: VolumeLayout): IContainer {
  const mounts: IVolumeMount[] = [
    ...step.inputs.map((i) => ({ name: "volume", mountPath: i.path, subPath: i.subPath, readOnly: true })),
    { name: "volume", mountPath: step.output.path, subPath: step.output.subPath },
    { name: "volume", mountPath: inCluster.status, subPath: layout.status },
    // What NVIDIA runs TensorRT-LLM containers with (--shm-size=2g), for the GPU steps.
    ...(step.gpus > 0 ? [{ name: "shm", mountPath: inCluster.shm }] : []),
  ];
  return {
    name: step.name,
    image: step.image,
    command: ["/bin/sh", "-c", stepScript(step), step.name],
    args: [...step.argv],
    workingDir: step.workingDir,
    ...(step.env ? { env: [...step.env] } : {}),
    volumeMounts: mounts,
    ...(step.gpus > 0 ? { resources: { limits: { [gpuResource]: String(step.gpus) } } } : {}),
  };
}

/**
 * `git clone` as SimpleGitClient runs it (shallow, at the tag or branch, `--` before the URL);
 * a commit is fetched by itself, since `--branch` cannot name one.
 */
export function cloneArgv(git: GitWork["git"], into: string): string[] {
  if (/^[0-9a-f]{40}$/.test(git.ref)) {
    return ["/bin/sh", "-c", 'git init -q "$1" && git -C "$1" fetch --depth 1 -- "$2" "$3" && git -C "$1" checkout -q --detach FETCH_HEAD', "clone", into, git.url, git.ref];
  }
  return ["git", "clone", "--depth", "1", "--branch", git.ref, "--single-branch", "--", git.url, into];
}

/**
 * The download, by huggingface-cli (it comes with tensorrt_llm's transformers dependency in the
 * build image): exactly the files and the commit the plan names, into the Hugging Face cache on
 * the volume, so the snapshot is where the checkpoint step's argv reads it
 * (`/llama3-trt/weights/snapshots/<commit>`). It skips files the cache already has.
 */
export function downloadArgv(weights: WeightsWork["weights"]): string[] {
  if (!weights.commit) throw new Error("the weights have no commit to download");
  return ["huggingface-cli", "download", weights.repo, ...weights.files.map((f) => f.path), "--revision", weights.commit, "--cache-dir", inCluster.hub];
}

/**
 * The model repository as NVIDIA's walkthrough fills it: the five model folders copied from the
 * backend's templates, then tools/fill_template.py of that same checkout on each config.pbtxt
 * with the values `build` uses. fill_template.py is string.Template's safe_substitute, the same
 * substitution as the tool's own fill (triton/template.ts), so both give the same files.
 */
export function fillArgv(files: FilesWork["files"], out: string): string[] {
  const substitutions = Object.entries(files.values).map(([key, value]) => {
    // The same checks as the tool's own fill (no quote, `$`, backslash or line break), and
    // fill_template.py splits on "," and ":", so a value holding one would be cut.
    const problem = valueProblem(key, value) ?? (/[,:]/.test(value) ? `${key} holds "," or ":", which fill_template.py cannot pass` : undefined);
    if (problem) throw new Error(`model repository fill: ${problem}`);
    return `${key}:${value}`;
  });
  const templates = `${inCluster.backend}/all_models/inflight_batcher_llm`;
  const line = (...words: string[]) => words.map(shQuote).join(" ");
  const lines = files.paths.map((path) => path.split("/")[0] ?? path).map((model) => line("cp", "-R", `${templates}/${model}`, `${out}/`));
  for (const path of files.paths) {
    lines.push(line("python3", `${inCluster.backend}/tools/fill_template.py`, "-i", `${out}/${path}`, substitutions.join(",")));
  }
  return ["/bin/sh", "-c", lines.join("\n")];
}

function labels(component: string, fp?: string): Record<string, string> {
  return {
    "app.kubernetes.io/name": names.app,
    "app.kubernetes.io/component": component,
    ...(fp ? { "llama3-trt.dev/build": buildId(fp) } : {}),
  };
}

/** Both the build and Triton need nodes with the GPU model the engine is for, and tolerate their taint. */
function gpuScheduling(product: string): Pick<IPodSpec, "affinity" | "tolerations"> {
  return {
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: gpuProductLabel, operator: "In", values: [product] }] }],
        },
      },
    },
    tolerations: [{ key: gpuResource, operator: "Exists", effect: "NoSchedule" }],
  };
}

const shmVolume = { name: "shm", emptyDir: { medium: "Memory", sizeLimit: `${shmSizeBytes / 1024 ** 3}Gi` } };

/**
 * The build Job: one init container per step, in the plan's order (Kubernetes runs them one
 * after the other, each only once the one before succeeded), the model repository fill last.
 */
function buildJob(plan: ExportPlan, fp: string, layout: VolumeLayout): Job {
  const w = planned(plan);
  const buildImage = w.image.image.ref;
  const fromPlan = (id: "checkpoint" | "engine", c: ContainerWork, output: string): BuildStep => ({
    name: id,
    image: c.container.image,
    argv: c.container.cmd,
    workingDir: c.container.workingDir,
    inputs: c.container.mounts
      .filter((m) => m.container !== inContainer.output)
      .map((m) => {
        const subPath = layout.inputFor(m.container);
        if (!subPath) throw new Error(`${id} mounts ${m.container}, which has no place on the volume`);
        return { path: m.container, subPath };
      }),
    output: { path: inContainer.output, subPath: output, clear: true, files: c.output.files },
    gpus: plan.worldSize,
  });
  const clone = (id: "trtllm-repo" | "backend-repo", git: GitWork, subPath: string): BuildStep => ({
    name: id,
    image: buildImage,
    argv: cloneArgv(git.git, inContainer.output),
    workingDir: "/",
    inputs: [],
    output: { path: inContainer.output, subPath, clear: true, files: repoMustContain[id] },
    gpus: 0,
  });
  const weights = w.weights.weights;
  const snapshot = `${layout.modelCache.slice(layout.hub.length + 1)}/snapshots/${weights.commit}`;
  const steps: BuildStep[] = [
    clone("trtllm-repo", w.trtllm, layout.trtllmRepo),
    clone("backend-repo", w.backend, layout.backendRepo),
    {
      name: "weights",
      image: buildImage,
      argv: downloadArgv(weights),
      workingDir: "/",
      inputs: [],
      // The shared cache: never cleared, other builds' files are there.
      output: { path: inCluster.hub, subPath: layout.hub, clear: false, files: weights.files.map((f) => `${snapshot}/${f.path}`) },
      gpus: 0,
      env: [
        { name: "HF_TOKEN", valueFrom: { secretKeyRef: { name: names.tokenSecret, key: names.tokenKey } } },
        ...(plan.hfEndpoint ? [{ name: "HF_ENDPOINT", value: plan.hfEndpoint }] : []),
        { name: "HF_HUB_DISABLE_PROGRESS_BARS", value: "1" },
      ],
    },
    fromPlan("checkpoint", w.checkpoint, layout.checkpoint),
    fromPlan("engine", w.engine, layout.engine),
    {
      name: "model-repo",
      image: buildImage,
      argv: fillArgv(w.modelRepo.files, inContainer.output),
      workingDir: "/",
      inputs: [{ path: inCluster.backend, subPath: layout.backendRepo }],
      output: { path: inContainer.output, subPath: layout.modelRepo, clear: true, files: w.modelRepo.files.paths },
      gpus: 0,
    },
  ];
  const containers = steps.map((s) => buildContainer(s, layout));
  const last = containers.pop() as IContainer;
  return new Job({
    metadata: { name: `llama3-trt-build-${buildId(fp)}`, labels: labels("build", fp) },
    spec: {
      // A failed step is retried in a new pod; the steps done before it are skipped by their markers.
      backoffLimit: 2,
      template: {
        metadata: { labels: labels("build", fp) },
        spec: {
          restartPolicy: "Never",
          ...gpuScheduling(plan.gpuProduct),
          initContainers: containers,
          containers: [last],
          volumes: [{ name: "volume", persistentVolumeClaim: { claimName: names.claim } }, shmVolume],
        },
      },
    },
  });
}

/** The gateway's image as a person builds it from templates/gateway-image, for this version of llama3-trt. */
export function gatewayImage(toolVersion: string): string {
  return `llama3-trt/gateway:${toolVersion}`;
}

/**
 * The sidecars of the serving pod: the OpenAI-compatible gateway, `llama3-trt gateway` in front
 * of Triton on the pod's own loopback, with the model's tokenizer files read-only from the
 * snapshot Triton's tokenizer reads too. Ready when its /health is (it answers 200 only while
 * Triton and its ensemble are ready); no liveness probe, since that /health follows Triton and
 * a restart of the gateway would not help it.
 */
export function servingSidecars(plan: ExportPlan, layout: VolumeLayout): IContainer[] {
  const g = plan.gateway;
  if (!g) return [];
  const weights = planned(plan).weights.weights;
  return [
    {
      name: "gateway",
      image: g.image,
      command: ["llama3-trt"],
      args: [
        "gateway",
        "--triton-url",
        `http://127.0.0.1:${containerPorts.http}`,
        "--triton-grpc",
        `127.0.0.1:${containerPorts.grpc}`,
        "--host",
        "0.0.0.0",
        "--port",
        String(g.port),
        "--model",
        plan.model,
        "--model-dir",
        // Where the Job's download put the snapshot (huggingface-cli's cache layout).
        `${inContainer.weights}/snapshots/${weights.commit}`,
        "--max-input-len",
        String(g.maxInputLen),
        "--max-output-len",
        String(g.maxOutputLen),
      ],
      // The key only by reference: the export never holds it, and it is never on a command line.
      ...(g.apiKey ? { env: [{ name: names.apiKeyKey, valueFrom: { secretKeyRef: { name: names.apiKeySecret, key: names.apiKeyKey } } }] } : {}),
      ports: [{ name: "openai", containerPort: g.port }],
      readinessProbe: { httpGet: { path: "/health", port: "openai" }, periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 5 },
      volumeMounts: [{ name: "volume", mountPath: inContainer.weights, subPath: layout.modelCache, readOnly: true }],
    },
  ];
}

/** The serving Deployment: `serve`'s Triton container, its mounts read-only from the build's folder. */
function tritonDeployment(plan: ExportPlan, fp: string, layout: VolumeLayout): Deployment {
  const t = plan.triton;
  const mounts: IVolumeMount[] = t.mounts.map((m) => {
    const subPath = layout.inputFor(m.container);
    if (!subPath) throw new Error(`Triton mounts ${m.container}, which has no place on the volume`);
    return { name: "volume", mountPath: m.container, subPath, readOnly: true };
  });
  const selector = { "app.kubernetes.io/name": names.app, "app.kubernetes.io/component": "triton" };
  const marker = `${inCluster.status}/model-repo.done`;
  return new Deployment({
    metadata: { name: names.deployment, labels: labels("triton", fp) },
    spec: {
      replicas: 1,
      selector: { matchLabels: selector },
      // A new engine starts beside the old one and takes over once ready: never fewer servers.
      strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: labels("triton", fp) },
        spec: {
          ...gpuScheduling(plan.gpuProduct),
          // The Deployment may be applied before the build is done: wait for its last step.
          initContainers: [
            {
              name: "wait-for-build",
              image: t.image,
              command: [
                "/bin/sh",
                "-c",
                `until [ -e ${marker} ]; do echo "waiting for Job llama3-trt-build-${buildId(fp)} to finish (${marker})"; sleep 15; done`,
              ],
              volumeMounts: [{ name: "volume", mountPath: inCluster.status, subPath: layout.status, readOnly: true }],
            },
          ],
          containers: [
            {
              name: "triton",
              image: t.image,
              command: [...t.cmd],
              workingDir: t.workingDir,
              ports: [
                { name: "http", containerPort: containerPorts.http },
                { name: "grpc", containerPort: containerPorts.grpc },
                { name: "metrics", containerPort: containerPorts.metrics },
              ],
              resources: { limits: { [gpuResource]: String(plan.worldSize) } },
              startupProbe: { httpGet: { path: healthPaths.ready, port: "http" }, ...startupProbe, timeoutSeconds: 5 },
              readinessProbe: { httpGet: { path: healthPaths.ready, port: "http" }, periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 5 },
              livenessProbe: { httpGet: { path: healthPaths.live, port: "http" }, periodSeconds: 20, failureThreshold: 3, timeoutSeconds: 5 },
              volumeMounts: [...mounts, { name: "shm", mountPath: inCluster.shm }],
            },
            ...servingSidecars(plan, layout),
          ],
          volumes: [{ name: "volume", persistentVolumeClaim: { claimName: names.claim, readOnly: true } }, shmVolume],
        },
      },
    },
  });
}

const gibibyte = 1024 ** 3;

/** The weights, the checkpoint and the engine are each about the model's size; a quarter more for the rest. */
export function volumeSize(weightsBytes: number): string {
  return `${Math.max(20, Math.ceil((weightsBytes * 3 * 1.25) / gibibyte))}Gi`;
}

function object(model: { kind: string; metadata?: { name?: string }; validate(): void; toJSON(): unknown }): KubernetesObject {
  // Against the official schema now, so an export that writes is an export that validates.
  model.validate();
  return { kind: model.kind, name: model.metadata?.name ?? "", body: JSON.parse(JSON.stringify(model.toJSON())) as Record<string, unknown> };
}

export function buildManifests(plan: ExportPlan): Manifests {
  const fp = buildFingerprint(plan);
  const layout = new VolumeLayout(buildId(fp), plan.model);
  const selector = { "app.kubernetes.io/name": names.app, "app.kubernetes.io/component": "triton" };
  const volume = volumeSize(plan.weightsBytes);
  return {
    fingerprint: fp,
    layout,
    volumeBytes: plan.weightsBytes,
    claim: object(
      new PersistentVolumeClaim({
        metadata: { name: names.claim, labels: labels("volume") },
        // ReadWriteMany: the build and every Triton pod mount it, on whichever nodes they land.
        spec: { accessModes: ["ReadWriteMany"], resources: { requests: { storage: volume } } },
      }),
    ),
    job: object(buildJob(plan, fp, layout)),
    deployment: object(tritonDeployment(plan, fp, layout)),
    service: object(
      new Service({
        metadata: { name: names.service, labels: labels("triton") },
        spec: {
          selector,
          ports: [
            { name: "http", port: containerPorts.http, targetPort: "http" },
            { name: "grpc", port: containerPorts.grpc, targetPort: "grpc", appProtocol: "grpc" },
            { name: "metrics", port: containerPorts.metrics, targetPort: "metrics" },
            ...(plan.gateway ? [{ name: "openai", port: plan.gateway.port, targetPort: "openai" }] : []),
          ],
        },
      }),
    ),
    disruptionBudget: object(
      new PodDisruptionBudget({
        metadata: { name: names.deployment, labels: labels("triton") },
        // One pod at a time may be evicted (a node drain): with one replica it is evicted, not stuck.
        spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
      }),
    ),
    autoscaling: {
      podMonitor: object(
        new PodMonitor({
          metadata: { name: names.deployment, labels: labels("triton") },
          spec: { selector: { matchLabels: selector }, podMetricsEndpoints: [{ port: "metrics", path: "/metrics", interval: "15s" }] },
        }),
      ),
      rule: object(
        new PrometheusRule({
          metadata: { name: names.deployment, labels: labels("triton") },
          spec: {
            groups: [
              {
                name: "llama3-trt",
                rules: [
                  {
                    // Time requests wait in Triton's queue per unit of compute time (the ratio of
                    // Triton's TensorRT-LLM autoscaling tutorial), per pod: above 1 they wait longer
                    // than they compute.
                    record: names.recordedSeries,
                    expr:
                      "sum by (namespace, pod) (rate(nv_inference_queue_duration_us[1m])) / " +
                      "clamp_min(sum by (namespace, pod) (rate(nv_inference_compute_infer_duration_us[1m])), 1)",
                  },
                ],
              },
            ],
          },
        }),
      ),
      hpa: object(
        new HorizontalPodAutoscaler({
          metadata: { name: names.deployment, labels: labels("triton") },
          spec: {
            scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: names.deployment },
            minReplicas: 1,
            maxReplicas: 4,
            metrics: [{ type: "Pods", pods: { metric: { name: names.metric }, target: { type: "AverageValue", averageValue: "1" } } }],
            // Loading an engine takes minutes: scale down slowly, so a lull does not cost a reload.
            behavior: { scaleDown: { stabilizationWindowSeconds: 600 } },
          },
        }),
      ),
    },
    adapterRules: {
      rules: {
        custom: [
          {
            seriesQuery: `${names.recordedSeries}{namespace!="",pod!=""}`,
            resources: { overrides: { namespace: { resource: "namespace" }, pod: { resource: "pod" } } },
            name: { matches: `^${names.recordedSeries}$`, as: names.metric },
            metricsQuery: "avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
          },
        ],
      },
    },
  };
}
