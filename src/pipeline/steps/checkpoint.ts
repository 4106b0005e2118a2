import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ContainerSpec } from "../../docker/container-spec.ts";
import { convertCheckpointArgv, llama3RopeTheta } from "../../trtllm/argv.ts";
import { containerUser, inContainer, mount } from "../container-paths.ts";
import { runIntoFolder } from "../container-step.ts";
import { ensureGpus } from "../gpus.ts";
import { stagingFor } from "../staging.ts";
import type { ContainerWork, Step, StepContext } from "../step.ts";
import { filesExist, rankFiles } from "./outputs.ts";
import type { ImageOut } from "./build-image.ts";
import type { RepoOut } from "./git-repo.ts";
import type { WeightsOut } from "./weights/index.ts";

export type CheckpointOut = { readonly dir: string; readonly tp: number };

/** `rope_theta` from the model's config.json; Llama 3's value until the weights are there. */
async function ropeTheta(weights: WeightsOut): Promise<number> {
  try {
    const config = JSON.parse(await readFile(join(weights.mountDir, weights.modelPath, "config.json"), "utf8")) as { rope_theta?: unknown };
    return typeof config.rope_theta === "number" ? config.rope_theta : llama3RopeTheta;
  } catch {
    return llama3RopeTheta;
  }
}

async function spec(ctx: StepContext, staging: string): Promise<ContainerSpec> {
  const s = ctx.settings;
  const weights = ctx.upstream<WeightsOut>("weights");
  const repo = ctx.upstream<RepoOut>("trtllm-repo");
  const image = ctx.upstream<ImageOut>("build-image");
  const user = containerUser();
  return {
    image: image.ref,
    cmd: convertCheckpointArgv({
      script: "convert_checkpoint.py",
      modelDir: `${inContainer.weights}/${weights.modelPath}`,
      outputDir: inContainer.output,
      dtype: s.dtype,
      tp: s.tp,
      quantize: s.quantize,
      rotaryBase: await ropeTheta(weights),
    }),
    workingDir: `${inContainer.trtllm}/examples/llama`,
    mounts: [
      mount(repo.dir, inContainer.trtllm),
      // The model's whole cache folder: snapshot links point into its blobs/.
      mount(weights.mountDir, inContainer.weights),
      mount(staging, inContainer.output, false),
    ],
    gpus: s.gpus,
    ...(user ? { user } : {}),
  };
}

export const checkpointStep: Step<CheckpointOut, ContainerWork> = {
  id: "checkpoint",
  title: "Convert the weights to a TensorRT-LLM checkpoint",
  reads: ["trtllm-repo", "weights", "build-image"],
  async inputs(ctx) {
    // Which GPUs run it does not change the checkpoint, so --gpus is not an input.
    return { dtype: ctx.settings.dtype, tp: ctx.settings.tp, quantize: ctx.settings.quantize };
  },
  async expectedOut(ctx) {
    return { dir: ctx.paths.checkpoint, tp: ctx.settings.tp };
  },
  async plan(ctx) {
    const staging = stagingFor(ctx.paths.checkpoint);
    return {
      kind: "container",
      container: await spec(ctx, staging),
      output: { dir: ctx.paths.checkpoint, staging, files: ["config.json", ...rankFiles(ctx.settings.tp, "safetensors")] },
    };
  },
  async run(ctx, work) {
    await ensureGpus(ctx);
    await runIntoFolder(ctx, work);
    return { dir: work.output.dir, tp: ctx.settings.tp };
  },
  async verify(_ctx, out) {
    const verdict = await filesExist(out.dir, ["config.json", ...rankFiles(out.tp, "safetensors")]);
    if (!verdict.ok) return verdict;
    const config = JSON.parse(await readFile(join(out.dir, "config.json"), "utf8")) as { mapping?: { tp_size?: number } };
    return config.mapping?.tp_size === out.tp ? { ok: true } : { ok: false, reason: `${out.dir} is not a tp ${out.tp} checkpoint` };
  },
  async preflight(ctx) {
    await ensureGpus(ctx, { onlyIfImagePresent: true });
  },
};
