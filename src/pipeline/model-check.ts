import { UsageError } from "../common/errors.ts";
import { hostGpus } from "../doctor/nvidia-smi.ts";
import { ConversationError } from "../model/conversation.ts";
import { ModelFileError } from "../model/hf-config.ts";
import { assess, refuseIfNeeded, type Assessment, type SmallFilesText } from "../model/assessment.ts";
import { gpuSituation } from "./gpus.ts";
import type { StepContext } from "./step.ts";
import { listedModel, weightsSource } from "./steps/weights/index.ts";

export type ModelCheckContext = Pick<StepContext, "settings" | "clients" | "memo" | "recorded" | "signal" | "engine" | "labelsFor">;

/**
 * config.json, generation_config.json and tokenizer_config.json of the model, once per command:
 * from --model-dir, the cache, or (for a model not downloaded yet) the Hub, before any weight.
 */
export function smallFiles(ctx: ModelCheckContext): Promise<SmallFilesText> {
  const { modelDir, model: repo, revision } = ctx.settings;
  return ctx.memo(`small-files:${modelDir ?? `${repo}@${revision}`}`, async () => {
    const model = await listedModel(ctx);
    const source = weightsSource(ctx);
    const config = await source.readText(model, "config.json");
    // The listing already refuses a model without config.json (missingForConversion).
    if (config === undefined) throw new Error(`config.json of ${repo} vanished between listing and reading`);
    return {
      from: modelDir ?? `${repo}@${revision}${model.commit ? ` (${model.commit.slice(0, 12)})` : ""}`,
      config,
      generationConfig: await source.readText(model, "generation_config.json"),
      tokenizerConfig: await source.readText(model, "tokenizer_config.json"),
    };
  });
}

/**
 * The model judged against the settings and the GPUs. `probe` (build) may ask nvidia-smi in a
 * container of the build image; plan and doctor ask only the host's nvidia-smi. Once per command
 * and GPU source: after the build image is built, a build asks again, in it.
 */
export async function modelAssessment(ctx: ModelCheckContext, how: { probe: boolean }): Promise<Assessment> {
  const present = how.probe && ctx.settings.gpus !== "none" && ctx.settings.gpu === null
    ? Boolean(await ctx.clients.docker.inspectImage(ctx.settings.buildImage).catch(() => undefined))
    : false;
  return ctx.memo(`model-assessment:${how.probe}:${present}`, async () => {
    const files = await smallFiles(ctx);
    const situation = await gpuSituation(ctx, { probe: present, hostGpus: () => hostGpus(ctx.signal) });
    try {
      return assess(files, ctx.settings, situation);
    } catch (error) {
      // A config.json or chat template that cannot be read is the model's problem, not a bug.
      if (error instanceof ModelFileError || error instanceof ConversationError) {
        throw new UsageError(`${files.from}: ${error.message}. llama3-trt needs the model's own Hugging Face config files.`, { cause: error });
      }
      throw error;
    }
  });
}

/** Before any step of a build runs, and again before GPU work: refuse (exit 2) what cannot work. */
export async function ensureModelFits(ctx: ModelCheckContext): Promise<Assessment> {
  const assessment = await modelAssessment(ctx, { probe: true });
  refuseIfNeeded(assessment);
  return assessment;
}
