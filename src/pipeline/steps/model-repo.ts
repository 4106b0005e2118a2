import { createHash } from "node:crypto";
import { cp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FailedError } from "../../common/errors.ts";
import { pausePoint } from "../../common/test-hooks.ts";
import type { Settings } from "../../config/schema.ts";
import { deploymentProblems, deploymentValues, fillConfig, readTensorrtLlmConfig, TemplateError, tritonModels, type FillValues } from "../../triton/model-repo.ts";
import { readConversation } from "../../model/conversation.ts";
import { inContainer, tokenizerDirIn } from "../container-paths.ts";
import { buildFolder, stagingFor } from "../staging.ts";
import type { FilesWork, Step, StepContext, Verdict } from "../step.ts";
import { readEngineConfig, type EngineOut } from "./engine.ts";
import type { RepoOut } from "./git-repo.ts";
import type { WeightsOut } from "./weights/index.ts";

/**
 * The repository, the sha256 of each filled config.pbtxt (so an edit by hand makes it stale), and
 * the end_id requests to it must send: the model's own (generation_config.json; the v0.8.0
 * backend takes one end_id per request and defaults to the tokenizer's eos token).
 */
export type ModelRepoOut = {
  readonly dir: string;
  readonly configs: { readonly [model: string]: string };
  readonly endId?: number;
  readonly endTokenIds?: readonly number[];
};

const templatesDir = "all_models/inflight_batcher_llm";

/**
 * The fill values, from the settings and the recorded weights: the paths are those inside the
 * Triton container (one mount table with `serve`), never host paths. The engine is not part of
 * the repository: `serve` mounts it where engine_dir points.
 */
/*
 * Streaming is on by default so that `ask --stream` works out of the box; `ask` without it uses
 * /generate on the same decoupled model. *Unverified against a running Triton 24.03*: that
 * /generate answers a decoupled ensemble with its one final response (Triton's HandleGenerate,
 * unlike HandleInfer, does not refuse decoupled models: triton-inference-server/server#7151).
 * `--streaming false` gives the walkthrough's non-decoupled deployment.
 */
export function modelRepoValues(settings: Settings, weights: Pick<WeightsOut, "modelPath">): FillValues {
  return deploymentValues({
    maxBatchSize: settings.maxBatchSize,
    decoupled: settings.streaming,
    tokenizerDir: tokenizerDirIn(weights.modelPath),
    engineDir: inContainer.engine,
  });
}

function values(ctx: StepContext): FillValues {
  // While planning, the weights' output may not be known yet; the path then is a placeholder.
  const weights = ctx.upstream<WeightsOut>("weights") ?? { modelPath: "." };
  return modelRepoValues(ctx.settings, weights);
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export const modelRepoStep: Step<ModelRepoOut, FilesWork> = {
  id: "model-repo",
  title: "Assemble the Triton model repository",
  reads: ["backend-repo", "engine", "weights"],
  async inputs(ctx) {
    return { values: values(ctx) };
  },
  async expectedOut(ctx) {
    return { dir: ctx.paths.modelRepo, configs: {} };
  },
  async plan(ctx) {
    return {
      kind: "files",
      files: {
        dir: ctx.paths.modelRepo,
        paths: tritonModels.map((m) => `${m}/config.pbtxt`),
        templates: join(ctx.upstream<RepoOut>("backend-repo").dir, templatesDir),
        values: values(ctx),
        engine: ctx.upstream<EngineOut>("engine").dir,
      },
    };
  },
  async run(ctx, work) {
    const { dir: final, templates, values: fill, engine } = work.files;
    // The engine's own config.json, not the record: what Triton will load is what counts.
    const limits = await readEngineConfig(engine);
    const configs: Record<string, string> = {};
    await buildFolder(final, stagingFor(final), async (staging) => {
      for (const model of tritonModels) {
        await cp(join(templates, model), join(staging, model), { recursive: true });
        const configPath = join(staging, model, "config.pbtxt");
        let filled: string;
        try {
          filled = fillConfig(model, await readFile(configPath, "utf8"), fill);
        } catch (error) {
          if (error instanceof TemplateError) throw new FailedError(error.message, { cause: error });
          throw error;
        }
        if (model === "tensorrt_llm") {
          const problems = deploymentProblems({
            engine: limits,
            tensorrtLlm: readTensorrtLlmConfig(filled),
            engineDir: inContainer.engine,
            streaming: ctx.settings.streaming,
            gpus: ctx.settings.gpus,
          });
          if (problems.length > 0) throw new FailedError(`the model repository would not match the engine in ${engine}:\n- ${problems.join("\n- ")}`);
        }
        await writeFile(configPath, filled);
        configs[model] = sha256(filled);
        ctx.log.line(`${model}/config.pbtxt filled`);
        // Tests kill the build here, with some configs filled and some not (reliability case 21).
        if (Object.keys(configs).length === 2) await pausePoint("model-repo:mid-fill");
      }
    });
    const weights = ctx.upstream<WeightsOut>("weights");
    const rules = await readConversation(join(weights.mountDir, weights.modelPath), ctx.settings.model);
    ctx.log.line(`end tokens ${rules.endTokenIds.join(", ")}: requests send end_id ${rules.endId}`);
    if (rules.tokenizerEos && rules.tokenizerEos.id !== rules.endId) {
      // preprocessing/1/model.py of v0.8.0 defaults END_ID to the tokenizer's eos_token.
      ctx.log.line(
        `warning: the tokenizer's eos_token is ${rules.tokenizerEos.text} (${rules.tokenizerEos.id ?? "?"}), not ${rules.endId}: a client that sends no end_id runs on past the answer; \`llama3-trt ask\` sends end_id ${rules.endId}`,
      );
    }
    return { dir: final, configs, endId: rules.endId, endTokenIds: rules.endTokenIds };
  },
  verify: (_ctx, out) => verifyModelRepo(out),
};

/** Every config.pbtxt still there and as it was filled. */
export async function verifyModelRepo(out: ModelRepoOut): Promise<Verdict> {
  for (const model of tritonModels) {
    const path = join(out.dir, model, "config.pbtxt");
    const text = await readFile(path, "utf8").catch(() => undefined);
    if (text === undefined) return { ok: false, reason: `${model}/config.pbtxt is missing from ${out.dir}` };
    // Records from before the hashes were kept have none: presence is all they can check.
    const expected = out.configs?.[model];
    if (expected !== undefined && sha256(text) !== expected) return { ok: false, reason: `${path} was changed since it was filled` };
  }
  return { ok: true };
}
