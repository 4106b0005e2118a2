import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ContainerSpec } from "../../docker/container-spec.ts";
import { rotaryScalingArgs } from "../../model/compatibility.ts";
import { parseModelConfig } from "../../model/hf-config.ts";
import { convertCheckpointArgv } from "../../trtllm/argv.ts";
import { ensureModelFits, smallFiles } from "../model-check.ts";
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

async function spec(ctx: StepContext, staging: string): Promise<ContainerSpec> {
  const s = ctx.settings;
  const weights = ctx.upstream<WeightsOut>("weights");
  const repo = ctx.upstream<RepoOut>("trtllm-repo");
  const image = ctx.upstream<ImageOut>("build-image");
  const user = containerUser();
  const config = parseModelConfig((await smallFiles(ctx)).config);
  return {
    image: image.ref,
    cmd: convertCheckpointArgv({
      script: "convert_checkpoint.py",
      modelDir: `${inContainer.weights}/${weights.modelPath}`,
      outputDir: inContainer.output,
      dtype: s.dtype,
      tp: s.tp,
      quantize: s.quantize,
      // RoPE as the model's own config.json says (v0.8.0 reads neither rope_theta nor rope_scaling
      // from it for Llama: examples/llama/convert_checkpoint.py:1212-1238).
      rotaryBase: config.ropeTheta,
      rotaryScaling: rotaryScalingArgs(config),
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
    // Again, now that nvidia-smi can be asked in the build image: a fresh host knows its GPUs only now.
    await ensureModelFits(ctx);
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
    await ensureModelFits(ctx);
    await ensureGpus(ctx, { onlyIfImagePresent: true });
  },
};
