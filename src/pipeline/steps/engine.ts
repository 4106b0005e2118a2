import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Settings } from "../../config/schema.ts";
import type { ContainerSpec } from "../../docker/container-spec.ts";
import type { StepInputs } from "../fingerprint.ts";
import { trtllmBuildArgv } from "../../trtllm/argv.ts";
import { containerUser, inContainer, mount } from "../container-paths.ts";
import { runIntoFolder } from "../container-step.ts";
import { ensureGpus } from "../gpus.ts";
import { ensureModelFits } from "../model-check.ts";
import { stagingFor } from "../staging.ts";
import type { ContainerWork, Step, StepContext } from "../step.ts";
import type { ImageOut } from "./build-image.ts";
import type { CheckpointOut } from "./checkpoint.ts";
import { filesExist, rankFiles } from "./outputs.ts";

/** The engine folder and the limits it was built with, as read back from its own config.json. */
export type EngineOut = {
  readonly dir: string;
  readonly tp: number;
  readonly maxBatchSize: number;
  readonly maxInputLen: number;
  readonly maxOutputLen: number;
};

function spec(ctx: StepContext, staging: string): ContainerSpec {
  const s = ctx.settings;
  const checkpoint = ctx.upstream<CheckpointOut>("checkpoint");
  const image = ctx.upstream<ImageOut>("build-image");
  const user = containerUser();
  return {
    image: image.ref,
    cmd: trtllmBuildArgv({
      checkpointDir: inContainer.checkpoint,
      outputDir: inContainer.output,
      dtype: s.dtype,
      tp: s.tp,
      maxBatchSize: s.maxBatchSize,
      maxInputLen: s.maxInputLen,
      maxOutputLen: s.maxOutputLen,
    }),
    // trtllm-build writes its timing cache (model.cache) to the working folder: keep it with the engine.
    workingDir: inContainer.output,
    mounts: [mount(checkpoint.dir, inContainer.checkpoint), mount(staging, inContainer.output, false)],
    gpus: s.gpus,
    ...(user ? { user } : {}),
  };
}

/** Reads the limits an engine really has from its config.json (v0.8.0: build_config). */
export async function readEngineConfig(dir: string): Promise<Omit<EngineOut, "dir">> {
  const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as {
    pretrained_config?: { mapping?: { tp_size?: number; world_size?: number } };
    build_config?: { max_batch_size?: number; max_input_len?: number; max_output_len?: number };
  };
  const build = config.build_config ?? {};
  return {
    tp: config.pretrained_config?.mapping?.tp_size ?? config.pretrained_config?.mapping?.world_size ?? 1,
    maxBatchSize: build.max_batch_size ?? 0,
    maxInputLen: build.max_input_len ?? 0,
    maxOutputLen: build.max_output_len ?? 0,
  };
}

/** The settings an engine is built from; `serve` compares them with the record too. */
export function engineInputs(s: Settings): StepInputs {
  // Which GPUs build it does not change the engine (only their model does), so --gpus is not an input.
  return { dtype: s.dtype, tp: s.tp, quantize: s.quantize, maxBatchSize: s.maxBatchSize, maxInputLen: s.maxInputLen, maxOutputLen: s.maxOutputLen };
}

export const engineStep: Step<EngineOut, ContainerWork> = {
  id: "engine",
  title: "Build the TensorRT engine",
  reads: ["checkpoint", "build-image"],
  async inputs(ctx) {
    return engineInputs(ctx.settings);
  },
  async expectedOut(ctx) {
    const s = ctx.settings;
    return { dir: ctx.paths.engine, tp: s.tp, maxBatchSize: s.maxBatchSize, maxInputLen: s.maxInputLen, maxOutputLen: s.maxOutputLen };
  },
  async plan(ctx) {
    const staging = stagingFor(ctx.paths.engine);
    return {
      kind: "container",
      container: spec(ctx, staging),
      output: { dir: ctx.paths.engine, staging, files: ["config.json", ...rankFiles(ctx.settings.tp, "engine")] },
    };
  },
  async run(ctx, work) {
    await ensureGpus(ctx);
    await ensureModelFits(ctx);
    await runIntoFolder(ctx, work);
    return { dir: work.output.dir, ...(await readEngineConfig(work.output.dir)) };
  },
  async verify(_ctx, out) {
    const present = await filesExist(out.dir, ["config.json", ...rankFiles(out.tp, "engine")]);
    if (!present.ok) return present;
    const actual = await readEngineConfig(out.dir);
    const mismatch = (Object.keys(actual) as (keyof typeof actual)[]).find((k) => actual[k] !== out[k]);
    return mismatch ? { ok: false, reason: `${out.dir}/config.json says ${mismatch} ${actual[mismatch]}, expected ${out[mismatch]}` } : { ok: true };
  },
  async preflight(ctx) {
    await ensureModelFits(ctx);
    await ensureGpus(ctx, { onlyIfImagePresent: true });
  },
};
