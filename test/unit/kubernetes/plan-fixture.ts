/**
 * An export plan made by the real steps' own `plan()` (clones, checkpoint, engine, model
 * repository) and `serve`'s serverContainerSpec, with the model's listing and small files given
 * as the memo would hold them after the Hub answered: no Hub, Docker or disk is touched.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { settingKeys, settingsSchema, type Settings } from "../../../src/config/schema.ts";
import { gatewaySidecar } from "../../../src/kubernetes/export.ts";
import type { ExportPlan } from "../../../src/kubernetes/manifests.ts";
import type { StepStatus } from "../../../src/pipeline/runner.ts";
import type { Step, StepContext, StepWork } from "../../../src/pipeline/step.ts";
import { allSteps } from "../../../src/pipeline/steps/index.ts";
import { WorkdirPaths } from "../../../src/pipeline/workdir.ts";
import { serverContainerSpec } from "../../../src/server/server.ts";

export const commit = "5c37e6f6c3c05698e1235ae43cd6b80040afc44a";
const model = "meta-llama/Meta-Llama-3-8B-Instruct";
const fixture = (name: string) =>
  readFileSync(fileURLToPath(new URL(`../../fixtures/models/meta-llama--Meta-Llama-3-8B-Instruct/${name}`, import.meta.url)), "utf8");

export const files = [
  { path: "config.json", size: 654 },
  { path: "generation_config.json", size: 187 },
  { path: "model-00001-of-00004.safetensors", size: 4_976_698_672 },
  { path: "model-00002-of-00004.safetensors", size: 4_999_802_720 },
  { path: "model-00003-of-00004.safetensors", size: 4_915_916_176 },
  { path: "model-00004-of-00004.safetensors", size: 1_168_138_808 },
  { path: "model.safetensors.index.json", size: 23_950 },
  { path: "special_tokens_map.json", size: 73 },
  { path: "tokenizer.json", size: 9_085_657 },
  { path: "tokenizer_config.json", size: 51_007 },
];

export function settingsWith(overrides: Partial<Settings> = {}): Settings {
  const defaults = Object.fromEntries(settingKeys.map((k) => [k, settingsSchema[k].default])) as unknown as Settings;
  return { ...defaults, workdir: "/home/user/llama3-trt", buildImage: "registry.example.com/llama3-trt/tensorrt-llm:0.8.0", ...overrides };
}

export async function planFor(settings: Settings, options: { gpuProduct?: string; hfEndpoint?: string } = {}): Promise<ExportPlan> {
  const paths = new WorkdirPaths(settings.workdir);
  const mountDir = `/home/user/.cache/huggingface/hub/models--${model.replace("/", "--")}`;
  const modelPath = `snapshots/${commit}`;
  const listing = { commit, mountDir, modelPath, files };
  const small = { from: `${model}@main`, config: fixture("config.json"), generationConfig: fixture("generation_config.json"), tokenizerConfig: fixture("tokenizer_config.json") };
  const outs: Record<string, unknown> = {
    "trtllm-repo": { dir: paths.trtllmRepo, commit: null },
    "backend-repo": { dir: paths.backendRepo, commit: null },
    weights: listing,
    "build-image": { ref: settings.buildImage, id: null },
    checkpoint: { dir: paths.checkpoint, tp: settings.tp },
    engine: { dir: paths.engine, tp: settings.tp, maxBatchSize: settings.maxBatchSize, maxInputLen: settings.maxInputLen, maxOutputLen: settings.maxOutputLen },
  };
  const ctx = {
    settings,
    paths,
    env: {},
    runId: "test",
    containerLabels: {},
    deepVerify: false,
    labelsFor: () => ({}),
    engine: () => Promise.reject(new Error("no engine in a unit test")),
    memo: async (key: string, compute: () => Promise<unknown>) => (key.startsWith("weights:") ? listing : key.startsWith("small-files:") ? small : compute()),
    upstream: (id: string) => outs[id],
  } as unknown as StepContext;
  const planned = async (step: Step): Promise<StepWork> => {
    if (step.id === "weights") {
      return { kind: "weights", weights: { repo: model, revision: settings.revision, commit, source: "hub", dir: `${mountDir}/${modelPath}`, mountDir, modelPath, files, bytesToDownload: 0 } };
    }
    if (step.id === "build-image") return { kind: "image", image: { ref: settings.buildImage, action: "pull" } };
    return step.plan(ctx);
  };
  const steps: StepStatus[] = [];
  for (const step of allSteps) steps.push({ id: step.id, title: step.title, state: "pending", reason: "not built yet", work: await planned(step) });
  const triton = serverContainerSpec(settings, {
    engine: outs.engine as never,
    weights: listing,
    modelRepo: { dir: paths.modelRepo, configs: {} },
  });
  return {
    model,
    steps,
    triton,
    worldSize: settings.tp,
    gpuProduct: options.gpuProduct ?? "NVIDIA-H100-80GB-HBM3",
    hfEndpoint: options.hfEndpoint,
    weightsBytes: files.reduce((n, f) => n + f.size, 0),
    gateway: gatewaySidecar(settings, "0.1.0"),
  };
}
